//! Sender-constrained tokens at the layer: what a validated token is bound
//! to (`cnf`), checked against the request on every request, cached
//! principal or not. A DPoP-bound token needs the `DPoP` scheme and its
//! proof; a certificate-bound one the client certificate; an issuer whose
//! policy requires DPoP refuses bearer tokens.

use super::layer::Config;
use super::token::Scheme;
use crate::error::AuthnError;
use crate::mtls;
use crate::principal::Principal;
use http::Request;

/// A binding that held, or one that waits for the replay check.
pub(super) enum Bound {
    Ready,
    #[cfg(feature = "dpop")]
    Replay(crate::dpop::PendingReplay),
}

/// Checks that `principal`, whose `token` came with `scheme`, may be used
/// by the sender of `req`.
pub(super) fn check<B, E>(
    req: &Request<B>,
    scheme: Scheme,
    token: &str,
    principal: &Principal<E>,
    config: &Config,
) -> Result<Bound, AuthnError> {
    let cnf = principal.confirmation();
    if let Some(cnf) = cnf {
        if !cnf.unsupported_methods().is_empty() {
            return Err(AuthnError::UnsupportedConfirmation);
        }
        if let Some(x5t) = cnf.x5t_s256() {
            mtls::check(x5t, config.certificates.certificate(req).as_ref())?;
        }
    }
    let jkt = cnf.and_then(|c| c.jkt());
    #[cfg(feature = "dpop")]
    let policy = config
        .dpop
        .as_ref()
        .map(|d| d.policy_for(principal.issuer()));
    match scheme {
        Scheme::Bearer => {
            if jkt.is_some() {
                return Err(AuthnError::BoundToken);
            }
            #[cfg(feature = "dpop")]
            if policy.is_some_and(|p| !p.bearer()) {
                return Err(AuthnError::DpopRequired);
            }
            Ok(Bound::Ready)
        }
        #[cfg(feature = "dpop")]
        Scheme::Dpop => {
            let (Some(dpop), Some(policy)) = (&config.dpop, policy) else {
                return Err(AuthnError::DpopNotAccepted);
            };
            if !policy.dpop() {
                return Err(AuthnError::DpopNotAccepted);
            }
            let jkt = jkt.ok_or(AuthnError::TokenNotBound)?;
            dpop.check_request(req, token, jkt).map(Bound::Replay)
        }
        #[cfg(not(feature = "dpop"))]
        Scheme::Dpop => {
            let _ = token;
            Err(AuthnError::MissingToken)
        }
    }
}

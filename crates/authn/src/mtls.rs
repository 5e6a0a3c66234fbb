//! Certificate-bound tokens (RFC 8705 §3): a token whose `cnf` carries
//! `x5t#S256` is accepted only from the client holding that certificate.
//!
//! The layer learns the certificate from a [`ClientCertificate`] in the
//! request's extensions, which the server's TLS acceptor inserts (with
//! rustls: the first of `ServerConnection::peer_certificates()`), or,
//! when [`AuthnLayer::client_certificate_from`](crate::AuthnLayer::client_certificate_from)
//! names one, from a header set by a trusted TLS-terminating proxy.
//!
//! ```
//! use http::Request;
//! use tessera_authn::ClientCertificate;
//!
//! let mut req = Request::new(());
//! // In the acceptor, after the handshake:
//! req.extensions_mut().insert(ClientCertificate::from_der(b"...DER...".to_vec()));
//! assert!(req.extensions().get::<ClientCertificate>().is_some());
//! ```

use crate::error::AuthnError;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use bytes::Bytes;
use http::{HeaderName, Request};
use sha2::{Digest, Sha256};

/// The DER of the client certificate the server saw in the TLS handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificate(Bytes);

impl ClientCertificate {
    /// The certificate of this DER encoding.
    pub fn from_der(der: impl Into<Bytes>) -> Self {
        Self(der.into())
    }

    /// The DER encoding.
    #[must_use]
    pub fn der(&self) -> &[u8] {
        &self.0
    }

    /// `x5t#S256`: base64url(SHA-256(DER)), as a bound token's `cnf` names it.
    #[must_use]
    pub fn thumbprint(&self) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(&self.0))
    }
}

/// Where the layer finds the client certificate.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum CertificateSource {
    /// A [`ClientCertificate`] in the request's extensions (the default).
    #[default]
    Extension,
    /// A header set by a TLS-terminating proxy: the certificate as PEM,
    /// URL-encoded PEM (nginx `$ssl_client_escaped_cert`, AWS ALB) or
    /// base64 DER. Only safe when the proxy removes the header from what
    /// clients send; a [`ClientCertificate`] extension still wins.
    TrustedHeader(HeaderName),
}

impl CertificateSource {
    /// The client certificate of `req`, if any; a header that is not a
    /// certificate counts as none.
    pub(crate) fn certificate<B>(&self, req: &Request<B>) -> Option<ClientCertificate> {
        if let Some(cert) = req.extensions().get::<ClientCertificate>() {
            return Some(cert.clone());
        }
        match self {
            Self::Extension => None,
            Self::TrustedHeader(name) => {
                let mut values = req.headers().get_all(name).iter();
                let (Some(value), None) = (values.next(), values.next()) else {
                    return None;
                };
                from_header(value.as_bytes()).map(ClientCertificate::from_der)
            }
        }
    }
}

/// Checks a token bound to the certificate with thumbprint `x5t` against
/// the certificate of the request.
pub(crate) fn check(x5t: &str, cert: Option<&ClientCertificate>) -> Result<(), AuthnError> {
    let cert = cert.ok_or(AuthnError::MissingCertificate)?;
    if cert.thumbprint() == x5t {
        Ok(())
    } else {
        Err(AuthnError::CertificateMismatch)
    }
}

/// The DER of the first certificate in a header value.
fn from_header(value: &[u8]) -> Option<Vec<u8>> {
    let text = percent_decode(value)?;
    let text = std::str::from_utf8(&text).ok()?;
    let body = match text.find("-----BEGIN CERTIFICATE-----") {
        Some(start) => {
            let rest = &text[start + "-----BEGIN CERTIFICATE-----".len()..];
            &rest[..rest.find("-----END CERTIFICATE-----")?]
        }
        None => text,
    };
    let b64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    STANDARD.decode(b64).ok().filter(|der| !der.is_empty())
}

fn percent_decode(value: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(value.len());
    let mut i = 0;
    while i < value.len() {
        if value[i] == b'%' {
            let hex = std::str::from_utf8(value.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(value[i]);
            i += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DER: &[u8] = b"\x30\x03\x02\x01\x01";

    fn pem() -> String {
        format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            STANDARD.encode(DER)
        )
    }

    #[test]
    fn header_forms_all_give_the_der() {
        let escaped: String = pem()
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() {
                    char::from(b).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        for value in [escaped, STANDARD.encode(DER)] {
            assert_eq!(
                from_header(value.as_bytes()).as_deref(),
                Some(DER),
                "{value}"
            );
        }
        assert_eq!(from_header(b"%zz"), None);
        assert_eq!(from_header(b"not base64!"), None);
    }

    #[test]
    fn the_header_is_read_only_when_trusted() {
        let name = HeaderName::from_static("x-client-cert");
        let req = Request::get("/")
            .header(&name, STANDARD.encode(DER))
            .body(())
            .unwrap();
        assert_eq!(CertificateSource::Extension.certificate(&req), None);
        let cert = CertificateSource::TrustedHeader(name).certificate(&req);
        assert_eq!(cert.as_ref().map(ClientCertificate::der), Some(DER));
    }

    #[test]
    fn binding_needs_the_very_certificate() {
        let cert = ClientCertificate::from_der(DER.to_vec());
        assert_eq!(check(&cert.thumbprint(), Some(&cert)), Ok(()));
        assert_eq!(
            check(&cert.thumbprint(), None),
            Err(AuthnError::MissingCertificate)
        );
        let other = ClientCertificate::from_der(b"\x30\x00".to_vec());
        assert_eq!(
            check(&cert.thumbprint(), Some(&other)),
            Err(AuthnError::CertificateMismatch)
        );
    }
}

//! The other side of a [`TestIssuer`]: an [`Issuer`] and a [`JwtValidator`]
//! that trust it, as a service under test would be configured.

use super::issuer::TestIssuer;
use crate::validator::{Issuer, JwtValidator};

impl TestIssuer {
    /// This issuer as a service trusts it: its `iss`, its audience, keys
    /// found through OIDC discovery.
    pub fn trusted(&self) -> Issuer {
        Issuer::new(self.issuer())
            .audience(self.audience())
            .discovery()
    }

    /// A validator trusting this issuer only, with the builder's defaults
    /// otherwise. The configuration is always valid, so this never fails.
    #[must_use]
    pub fn validator(&self) -> JwtValidator {
        JwtValidator::builder()
            .issuer(self.trusted())
            .build()
            .expect("a test issuer's configuration is valid")
    }
}

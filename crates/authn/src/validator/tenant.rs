//! Multi-tenant issuers: [`TENANT_PLACEHOLDER`], the tenants accepted, and
//! the template a token's `iss` is matched against.

use crate::error::ConfigError;

/// What stands for the tenant in a multi-tenant issuer (see
/// [`Issuer::tenants`](crate::Issuer::tenants)).
pub const TENANT_PLACEHOLDER: &str = "{tenantid}";

/// The tenants a multi-tenant issuer accepts.
#[derive(Debug, Clone)]
pub(super) enum Tenants {
    Any,
    Only(Vec<String>),
}

/// A multi-tenant issuer's `iss` around the tenant, and the tenants accepted.
pub(super) struct TenantTemplate {
    prefix: Box<str>,
    suffix: Box<str>,
    /// `None`: any tenant.
    allowed: Option<std::collections::HashSet<Box<str>>>,
}

impl TenantTemplate {
    /// The tenant of `iss` when it fits the template and is accepted.
    pub(super) fn tenant_of<'i>(&self, iss: &'i str) -> Option<&'i str> {
        let tenant = iss
            .strip_prefix(&*self.prefix)?
            .strip_suffix(&*self.suffix)?;
        let well_formed = !tenant.is_empty()
            && tenant.len() <= 64
            && tenant
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        let accepted = self.allowed.as_ref().is_none_or(|a| a.contains(tenant));
        (well_formed && accepted).then_some(tenant)
    }
}

/// Checks a multi-tenant issuer's settings and builds its template:
/// `None` for an issuer without [`TENANT_PLACEHOLDER`]. `unsupported` is why
/// the issuer's other settings rule out tenants, if they do.
pub(super) fn tenant_template(
    iss: &str,
    tenants: Option<&Tenants>,
    unsupported: Option<&str>,
) -> Result<Option<TenantTemplate>, ConfigError> {
    let placeholder = iss.matches(TENANT_PLACEHOLDER).count();
    let invalid = |why: &str| Err(ConfigError::Tenants(format!("{iss}: {why}")));
    let tenants = match (tenants, placeholder) {
        (None, 0) => return Ok(None),
        (None, _) => {
            return invalid(
                "the issuer names {tenantid}; say which tenants with .tenants(..) or .any_tenant()",
            );
        }
        (Some(_), 0) => return invalid(".tenants(..) needs {tenantid} in the issuer"),
        (Some(tenants), 1) => tenants,
        (Some(_), _) => return invalid("{tenantid} appears more than once"),
    };
    if let Some(why) = unsupported {
        return invalid(why);
    }
    let (prefix, suffix) = iss.split_once(TENANT_PLACEHOLDER).unwrap_or((iss, ""));
    let allowed = match tenants {
        Tenants::Only(list) => {
            if list.is_empty() {
                return invalid(".tenants(..) lists no tenant");
            }
            Some(list.iter().map(|t| Box::from(t.as_str())).collect())
        }
        Tenants::Any => None,
    };
    Ok(Some(TenantTemplate {
        prefix: prefix.into(),
        suffix: suffix.into(),
        allowed,
    }))
}

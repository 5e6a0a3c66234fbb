//! [`InjectTokenLayer`]: adds `Authorization: Bearer` to outgoing requests,
//! and retries once with a fresh token when the downstream refuses it.

mod body;
mod error;
mod layer;
mod service;

pub use body::ReplayBody;
pub use error::InjectTokenError;
pub use layer::InjectTokenLayer;
pub use service::InjectToken;

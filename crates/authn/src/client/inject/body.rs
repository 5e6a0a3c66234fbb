//! [`ReplayBody`]: request bodies that can be sent a second time.

use bytes::Bytes;

/// A request body that can be copied for one retry. Bodies that cannot
/// (streams) answer `None`, and their requests are not retried.
pub trait ReplayBody: Sized {
    /// A copy of the body, if it can be made without consuming it.
    fn try_clone(&self) -> Option<Self>;
}

macro_rules! replay_by_clone {
    ($($ty:ty),*) => {$(
        impl ReplayBody for $ty {
            fn try_clone(&self) -> Option<Self> {
                Some(self.clone())
            }
        }
    )*};
}

replay_by_clone!((), String, Vec<u8>, Bytes, &'static str);

impl<D: Clone> ReplayBody for http_body_util::Full<D> {
    fn try_clone(&self) -> Option<Self> {
        Some(self.clone())
    }
}

impl<D> ReplayBody for http_body_util::Empty<D> {
    fn try_clone(&self) -> Option<Self> {
        Some(Self::new())
    }
}

impl ReplayBody for reqwest::Body {
    fn try_clone(&self) -> Option<Self> {
        self.as_bytes().map(|b| Self::from(b.to_vec()))
    }
}

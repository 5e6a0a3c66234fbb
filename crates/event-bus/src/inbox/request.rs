//! [`InboxRequest`]: what an inbox-wrapped handler service gets.

use std::fmt;

use super::tx::InboxTransaction;
use crate::{Envelope, EventContext};

/// What an inbox-wrapped handler service gets: the open transaction (with
/// the inbox record already in it), the event and its context.
#[non_exhaustive]
pub struct InboxRequest<E> {
    /// The transaction to write the effects in; answer with it to commit.
    pub tx: InboxTransaction,
    /// The decoded event.
    pub envelope: Envelope<E>,
    /// The delivery's context.
    pub context: EventContext,
}

impl<E: fmt::Debug> fmt::Debug for InboxRequest<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InboxRequest")
            .field("envelope", &self.envelope)
            .field("context", &self.context)
            .finish_non_exhaustive()
    }
}

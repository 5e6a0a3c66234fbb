//! The replica as a router handler.

use std::{
    fmt,
    task::{Context, Poll},
};

use tessera_event_bus::{
    Envelope, HandlerError,
    router::{BoxFuture, EventRequest},
};
use tower_service::Service;

use super::user_replica::UserReplica;
use crate::{
    error::{ApplyError, InvalidEvent},
    events::{UserDeleted, UserEvent, UserProfileUpdated, UserRegistered},
    store::ReplicaStore,
};

/// A `tower::Service` applying user events to a [`UserReplica`]; made by
/// [`UserReplica::service`].
///
/// Maps [`ApplyError`]s to router errors: invalid events are permanent,
/// store and hook failures transient.
pub struct ReplicaService<S: ReplicaStore> {
    replica: UserReplica<S>,
}

impl<S: ReplicaStore> ReplicaService<S> {
    pub(super) fn new(replica: UserReplica<S>) -> Self {
        Self { replica }
    }
}

impl<S: ReplicaStore> Clone for ReplicaService<S> {
    fn clone(&self) -> Self {
        Self {
            replica: self.replica.clone(),
        }
    }
}

impl<S: ReplicaStore> fmt::Debug for ReplicaService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplicaService")
            .field("replica", &self.replica.name())
            .finish()
    }
}

fn to_handler_error(error: ApplyError) -> HandlerError {
    if error.is_transient() {
        HandlerError::transient(error)
    } else {
        HandlerError::permanent(error)
    }
}

/// The data's user id must be the envelope's subject when it has one.
fn check_subject<E>(envelope: &Envelope<E>, user_id: &str) -> Result<(), HandlerError> {
    match envelope.attributes().subject.as_deref() {
        Some(subject) if subject != user_id => Err(HandlerError::permanent(ApplyError::Invalid(
            InvalidEvent::SubjectMismatch {
                subject: subject.to_owned(),
                user_id: user_id.to_owned(),
            },
        ))),
        _ => Ok(()),
    }
}

macro_rules! replica_service_for {
    ($event:ty) => {
        impl<S: ReplicaStore> Service<EventRequest<$event>> for ReplicaService<S> {
            type Response = ();
            type Error = HandlerError;
            type Future = BoxFuture<Result<(), HandlerError>>;

            fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), HandlerError>> {
                Poll::Ready(Ok(()))
            }

            fn call(&mut self, req: EventRequest<$event>) -> Self::Future {
                let replica = self.replica.clone();
                Box::pin(async move {
                    let envelope = req.envelope;
                    if let Err(e) = check_subject(&envelope, &envelope.data().user_id) {
                        replica.count("invalid", 1);
                        return Err(e);
                    }
                    let event = UserEvent::from(envelope.into_data());
                    if let Some(batcher) = &replica.inner.batcher {
                        if let Err(e) = event.validate() {
                            replica.count("invalid", 1);
                            return Err(HandlerError::permanent(ApplyError::Invalid(e)));
                        }
                        return replica
                            .apply_batched(batcher, event)
                            .await
                            .map_err(HandlerError::transient);
                    }
                    let outcome = replica.apply(event).await.map_err(to_handler_error)?;
                    tracing::debug!(
                        replica = replica.name(),
                        outcome = outcome.as_str(),
                        "user event applied"
                    );
                    Ok(())
                })
            }
        }
    };
}

replica_service_for!(UserRegistered);
replica_service_for!(UserProfileUpdated);
replica_service_for!(UserDeleted);

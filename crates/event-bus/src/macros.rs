//! `define_inner_service_accessors!`: the `get_ref` / `get_mut` /
//! `into_inner` trio every router middleware service has, written once (as
//! tower-http does for its own middleware).

/// Expands to `get_ref`, `get_mut` and `into_inner` for a service struct
/// whose wrapped service is the field `inner`. Use it inside an
/// `impl<S, ..> Foo<S, ..> { .. }` block.
macro_rules! define_inner_service_accessors {
    () => {
        /// The inner service.
        #[must_use]
        pub fn get_ref(&self) -> &S {
            &self.inner
        }

        /// The inner service, mutably.
        pub fn get_mut(&mut self) -> &mut S {
            &mut self.inner
        }

        /// Consumes `self`, returning the inner service.
        pub fn into_inner(self) -> S {
            self.inner
        }
    };
}

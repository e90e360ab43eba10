//! Who is signed in, shared by every page through a Yew context.

use yew::prelude::*;

use crate::api::User;

#[derive(Debug, Clone, PartialEq)]
pub enum Session {
    /// Asking the API who we are.
    Loading,
    SignedOut,
    SignedIn(User),
}

pub type SessionHandle = UseStateHandle<Session>;

/// The session of the page (set by `App`).
#[hook]
pub fn use_session() -> SessionHandle {
    use_context::<SessionHandle>().expect("App provides the session")
}

//! Who is signed in, shared by every page through a Yew context.
//!
//! A reducer rather than a plain state: the first "who am I?" answer can arrive after
//! the user has already signed in or out (a page that signs out as soon as it opens,
//! say), and it must not undo that. The reducer sees the session as it is when the
//! answer arrives, not as it was when the question was asked.

use std::rc::Rc;

use yew::prelude::*;

use crate::api::User;

#[derive(Debug, Clone, PartialEq)]
pub enum Session {
    /// Asking the API who we are.
    Loading,
    SignedOut,
    SignedIn(User),
}

/// What changes the session.
pub enum SessionEvent {
    /// The API's answer to "who am I?" when the app starts (`None`: signed out, or no
    /// answer). Applied only while still loading.
    Found(Option<User>),
    SignedIn(User),
    SignedOut,
}

impl Reducible for Session {
    type Action = SessionEvent;

    fn reduce(self: Rc<Session>, event: SessionEvent) -> Rc<Session> {
        match event {
            SessionEvent::Found(user) if *self == Session::Loading => Rc::new(match user {
                Some(user) => Session::SignedIn(user),
                None => Session::SignedOut,
            }),
            SessionEvent::Found(_) => self,
            SessionEvent::SignedIn(user) => Rc::new(Session::SignedIn(user)),
            SessionEvent::SignedOut => Rc::new(Session::SignedOut),
        }
    }
}

pub type SessionHandle = UseReducerHandle<Session>;

/// The session of the page (set by `App`).
#[hook]
pub fn use_session() -> SessionHandle {
    use_context::<SessionHandle>().expect("App provides the session")
}

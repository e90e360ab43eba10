//! Sign up, sign in (one form, two modes) and sign out.

use yew::prelude::*;
use yew_router::prelude::*;

use super::{Errors, Field, field_error};
use crate::api::{self, ApiError};
use crate::app::Route;
use crate::session::{SessionEvent, use_session};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    SignUp,
    SignIn,
}

#[derive(Properties, PartialEq)]
pub struct AuthProps {
    pub mode: Mode,
}

#[function_component(AuthForm)]
pub fn auth_form(props: &AuthProps) -> Html {
    let session = use_session();
    let navigator = use_navigator();
    let email = use_state(String::new);
    let password = use_state(String::new);
    let error = use_state(|| None::<ApiError>);
    let busy = use_state(|| false);
    let mode = props.mode;
    let (title, action) = match mode {
        Mode::SignUp => ("Sign up", "Sign up"),
        Mode::SignIn => ("Sign in", "Sign in"),
    };
    let onsubmit = {
        let (email, password, error, busy) =
            (email.clone(), password.clone(), error.clone(), busy.clone());
        let session = session.clone();
        Callback::from(move |event: SubmitEvent| {
            event.prevent_default();
            if *busy {
                return;
            }
            busy.set(true);
            let (email, password) = ((*email).clone(), (*password).clone());
            let (error, busy, session, navigator) = (
                error.clone(),
                busy.clone(),
                session.clone(),
                navigator.clone(),
            );
            wasm_bindgen_futures::spawn_local(async move {
                let result = match mode {
                    Mode::SignUp => api::sign_up(&email, &password).await,
                    Mode::SignIn => api::sign_in(&email, &password).await,
                };
                busy.set(false);
                match result {
                    Ok(user) => {
                        session.dispatch(SessionEvent::SignedIn(user));
                        if let Some(navigator) = navigator {
                            navigator.push(&Route::Home);
                        }
                    }
                    Err(err) => error.set(Some(err)),
                }
            });
        })
    };
    let on_email = {
        let email = email.clone();
        Callback::from(move |value| email.set(value))
    };
    let on_password = {
        let password = password.clone();
        Callback::from(move |value| password.set(value))
    };
    html! {
        <section class="card narrow">
            <h1>{ title }</h1>
            <form {onsubmit} novalidate=true>
                <Field id="email" label="Email address" kind="email" value={(*email).clone()}
                    oninput={on_email} autocomplete="email"
                    error={field_error(&error, "email")} />
                <Field id="password" label="Password" kind="password" value={(*password).clone()}
                    oninput={on_password}
                    autocomplete={if mode == Mode::SignUp { "new-password" } else { "current-password" }}
                    error={field_error(&error, "password")} />
                <Errors error={(*error).clone()} />
                <button type="submit" class="primary" disabled={*busy}>{ action }</button>
            </form>
        </section>
    }
}

#[function_component(SignOut)]
pub fn sign_out() -> Html {
    let session = use_session();
    let navigator = use_navigator();
    let failed = use_state(|| false);
    {
        let failed = failed.clone();
        use_effect_with((), move |_| {
            wasm_bindgen_futures::spawn_local(async move {
                match api::sign_out().await {
                    Ok(()) => {
                        session.dispatch(SessionEvent::SignedOut);
                        if let Some(navigator) = navigator {
                            navigator.push(&Route::Home);
                        }
                    }
                    Err(_) => failed.set(true),
                }
            });
        });
    }
    html! {
        <section class="card narrow">
            if *failed {
                <p class="alert" role="alert">{ "Signing out failed. Try again in a moment." }</p>
            } else {
                <p role="status">{ "Signing you out…" }</p>
            }
        </section>
    }
}

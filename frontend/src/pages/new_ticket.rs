//! Sell a ticket: title and price.

use yew::prelude::*;
use yew_router::prelude::*;

use super::{Errors, Field, field_error};
use crate::api::{self, ApiError};
use crate::app::Route;
use crate::format;
use crate::session::{Session, use_session};

#[function_component(NewTicket)]
pub fn new_ticket() -> Html {
    let session = use_session();
    let navigator = use_navigator();
    let title = use_state(String::new);
    let price = use_state(String::new);
    let error = use_state(|| None::<ApiError>);
    let busy = use_state(|| false);
    if *session == Session::SignedOut {
        return html! {
            <section class="card narrow">
                <h1>{ "Sell a ticket" }</h1>
                <p><Link<Route> to={Route::SignIn}>{ "Sign in" }</Link<Route>>{ " to sell tickets." }</p>
            </section>
        };
    }
    let onsubmit = {
        let (title, price, error, busy) =
            (title.clone(), price.clone(), error.clone(), busy.clone());
        Callback::from(move |event: SubmitEvent| {
            event.prevent_default();
            if *busy {
                return;
            }
            busy.set(true);
            let (title_text, price_text) = ((*title).clone(), (*price).clone());
            let (error, busy, navigator) = (error.clone(), busy.clone(), navigator.clone());
            wasm_bindgen_futures::spawn_local(async move {
                let result = api::create_ticket(&title_text, &price_text).await;
                busy.set(false);
                match result {
                    Ok(_) => {
                        if let Some(navigator) = navigator {
                            navigator.push(&Route::Home);
                        }
                    }
                    Err(err) => error.set(Some(err)),
                }
            });
        })
    };
    let on_title = {
        let title = title.clone();
        Callback::from(move |value| title.set(value))
    };
    let on_price = {
        let price = price.clone();
        Callback::from(move |value| price.set(value))
    };
    let on_price_blur = {
        let price = price.clone();
        Callback::from(move |()| price.set(format::price_input(&price)))
    };
    html! {
        <section class="card narrow">
            <h1>{ "Sell a ticket" }</h1>
            <form {onsubmit} novalidate=true>
                <Field id="title" label="Title" value={(*title).clone()} oninput={on_title}
                    error={field_error(&error, "title")} />
                <Field id="price" label="Price (USD)" value={(*price).clone()} oninput={on_price}
                    onblur={on_price_blur} inputmode="decimal"
                    error={field_error(&error, "price")} />
                <Errors error={(*error).clone()} />
                <button type="submit" class="primary" disabled={*busy}>{ "Sell" }</button>
            </form>
        </section>
    }
}

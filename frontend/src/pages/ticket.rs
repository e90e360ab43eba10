//! One ticket, with "Purchase".

use yew::prelude::*;
use yew_router::prelude::*;

use super::{Errors, Loading};
use crate::api::{self, ApiError, Ticket};
use crate::app::Route;
use crate::format;
use crate::session::{Session, use_session};

#[derive(Properties, PartialEq)]
pub struct TicketProps {
    pub id: String,
}

#[function_component(TicketPage)]
pub fn ticket_page(props: &TicketProps) -> Html {
    let session = use_session();
    let navigator = use_navigator();
    let ticket = use_state(|| None::<Result<Ticket, ApiError>>);
    let error = use_state(|| None::<ApiError>);
    let busy = use_state(|| false);
    {
        let ticket = ticket.clone();
        use_effect_with(props.id.clone(), move |id| {
            let id = id.clone();
            wasm_bindgen_futures::spawn_local(async move {
                ticket.set(Some(api::ticket(&id).await));
            });
        });
    }
    let purchase = {
        let (error, busy, id) = (error.clone(), busy.clone(), props.id.clone());
        Callback::from(move |_: MouseEvent| {
            if *busy {
                return;
            }
            busy.set(true);
            let (error, busy, navigator, id) =
                (error.clone(), busy.clone(), navigator.clone(), id.clone());
            wasm_bindgen_futures::spawn_local(async move {
                let result = api::create_order(&id).await;
                busy.set(false);
                match result {
                    Ok(order) => {
                        if let Some(navigator) = navigator {
                            navigator.push(&Route::Order { id: order.id });
                        }
                    }
                    // The page shows the ticket, so orders has not heard of it yet
                    // (it learns of new tickets through events, a moment later).
                    Err(err) if err.is_not_found() => error.set(Some(ApiError::message(
                        "This ticket cannot be ordered yet. Try again in a moment.",
                    ))),
                    Err(err) => error.set(Some(err)),
                }
            });
        })
    };
    let body = match &*ticket {
        None => html! { <Loading /> },
        Some(Err(err)) if err.is_not_found() => html! {
            <>
                <h1>{ "Ticket not found" }</h1>
                <p><Link<Route> to={Route::Home}>{ "Back to the tickets" }</Link<Route>></p>
            </>
        },
        Some(Err(err)) => html! { <Errors error={Some(err.clone())} /> },
        Some(Ok(ticket)) => {
            let action = match &*session {
                _ if ticket.order_id.is_some() => html! {
                    <p class="notice" role="status">
                        { "Reserved: a buyer is paying for this ticket. It goes back on sale if they do not pay in time." }
                    </p>
                },
                Session::Loading => html! {},
                Session::SignedOut => html! {
                    <p><Link<Route> to={Route::SignIn}>{ "Sign in" }</Link<Route>>{ " to buy this ticket." }</p>
                },
                Session::SignedIn(_) => html! {
                    <button class="primary" onclick={purchase} disabled={*busy}>{ "Purchase" }</button>
                },
            };
            html! {
                <>
                    <h1>{ &ticket.title }</h1>
                    <p class="price big">{ format::price(ticket.price) }</p>
                    <Errors error={(*error).clone()} />
                    { action }
                </>
            }
        }
    };
    html! { <section class="card narrow">{ body }</section> }
}

//! My orders.

use gloo_timers::callback::Timeout;
use yew::prelude::*;
use yew_router::prelude::*;

use super::{Errors, Loading};
use crate::api::{self, ApiError, Order};
use crate::app::Route;
use crate::format;
use crate::session::{Session, use_session};

/// How often the page looks again while an order is open.
const RELOAD_MS: u32 = 2_000;

#[function_component(Orders)]
pub fn orders() -> Html {
    let session = use_session();
    let orders = use_state(|| None::<Result<Vec<Order>, ApiError>>);
    // Bumped to read the orders again.
    let reloads = use_state(|| 0u32);
    {
        let orders = orders.clone();
        use_effect_with(((*session).clone(), *reloads), move |(session, _)| {
            if matches!(session, Session::SignedIn(_)) {
                wasm_bindgen_futures::spawn_local(async move {
                    orders.set(Some(api::orders().await));
                });
            }
        });
    }
    {
        // An order that is paid, or whose time is up, changes a moment later (the
        // services hear of it through events): while one is open, look again.
        let is_waiting = matches!(&*orders, Some(Ok(list)) if list.iter().any(api::is_open));
        let reloads = reloads.clone();
        use_effect_with((is_waiting, *reloads), move |(is_waiting, count)| {
            let next = count.wrapping_add(1);
            let timer = is_waiting.then(|| Timeout::new(RELOAD_MS, move || reloads.set(next)));
            move || drop(timer)
        });
    }
    let body = match (&*session, &*orders) {
        (Session::SignedOut, _) => html! {
            <p><Link<Route> to={Route::SignIn}>{ "Sign in" }</Link<Route>>{ " to see your orders." }</p>
        },
        (_, None) => html! { <Loading /> },
        (_, Some(Err(err))) => html! { <Errors error={Some(err.clone())} /> },
        (_, Some(Ok(list))) if list.is_empty() => html! {
            <p class="empty">{ "No orders yet. " }<Link<Route> to={Route::Home}>{ "Find a ticket" }</Link<Route>></p>
        },
        (_, Some(Ok(list))) => html! {
            <ul class="orders">
                { for list.iter().map(|order| html! {
                    <li key={order.id.clone()}>
                        <Link<Route> to={Route::Order { id: order.id.clone() }}>{ &order.ticket.title }</Link<Route>>
                        <span class="price">{ format::price(order.ticket.price) }</span>
                        <span class={classes!("status", order.status.as_str().replace(':', "-"))}>{ format::status(order.status) }</span>
                    </li>
                }) }
            </ul>
        },
    };
    html! {
        <section class="card">
            <h1>{ "My orders" }</h1>
            { body }
        </section>
    }
}

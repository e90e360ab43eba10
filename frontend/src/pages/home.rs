//! The landing page: the tickets for sale.

use yew::prelude::*;
use yew_router::prelude::*;

use super::{Errors, Loading};
use crate::api::{self, ApiError, Ticket};
use crate::app::Route;
use crate::format;

#[function_component(Home)]
pub fn home() -> Html {
    let tickets = use_state(|| None::<Result<Vec<Ticket>, ApiError>>);
    {
        let tickets = tickets.clone();
        use_effect_with((), move |_| {
            wasm_bindgen_futures::spawn_local(async move {
                tickets.set(Some(api::tickets().await));
            });
        });
    }
    let body = match &*tickets {
        None => html! { <Loading /> },
        Some(Err(error)) => html! { <Errors error={Some(error.clone())} /> },
        Some(Ok(list)) if list.is_empty() => html! {
            <p class="empty">{ "No tickets for sale right now. " }
                <Link<Route> to={Route::NewTicket}>{ "Sell one" }</Link<Route>></p>
        },
        Some(Ok(list)) => html! {
            <table class="tickets">
                <thead><tr><th scope="col">{ "Title" }</th><th scope="col">{ "Price" }</th><th scope="col"><span class="visually-hidden">{ "Details" }</span></th></tr></thead>
                <tbody>
                    { for list.iter().map(|ticket| html! {
                        <tr key={ticket.id.clone()}>
                            <td>{ &ticket.title }</td>
                            <td class="price">{ format::price(ticket.price) }</td>
                            <td><Link<Route> to={Route::Ticket { id: ticket.id.clone() }}>{ "View" }<span class="visually-hidden">{ format!(" {}", ticket.title) }</span></Link<Route>></td>
                        </tr>
                    }) }
                </tbody>
            </table>
        },
    };
    html! {
        <section class="card">
            <h1>{ "Tickets" }</h1>
            { body }
        </section>
    }
}

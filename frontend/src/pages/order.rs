//! One order: the seconds left to pay, the payment form, and what became of it.

use gloo_timers::callback::Interval;
use yew::prelude::*;
use yew_router::prelude::*;

use super::{Errors, Field, Loading, field_error};
use crate::api::{self, ApiError, Order, OrderStatus, Provider};
use crate::app::{Route, use_payments};
use crate::format;
use crate::stripe;

#[derive(Properties, PartialEq)]
pub struct OrderProps {
    pub id: String,
}

#[function_component(OrderPage)]
pub fn order_page(props: &OrderProps) -> Html {
    let order = use_state(|| None::<Result<Order, ApiError>>);
    // Bumped to read the order again (after the deadline, to show the cancellation).
    let reloads = use_state(|| 0u32);
    // Counts seconds: each tick renders the countdown again.
    let ticks = use_state(|| 0u32);
    {
        let order = order.clone();
        use_effect_with((props.id.clone(), *reloads), move |(id, _)| {
            let id = id.clone();
            wasm_bindgen_futures::spawn_local(async move {
                order.set(Some(api::order(&id).await));
            });
        });
    }
    {
        let ticks = ticks.clone();
        use_effect_with((), move |_| {
            let mut count = 0u32;
            let interval = Interval::new(1_000, move || {
                count = count.wrapping_add(1);
                ticks.set(count);
            });
            move || drop(interval)
        });
    }
    let awaiting_cancellation = matches!(&*order, Some(Ok(order))
        if api::is_open(order) && format::seconds_until(&order.expires_at).unwrap_or(0) <= 0);
    {
        // Past the deadline: read the order again every other second until the
        // cancellation shows (at most 30 times).
        let reloads = reloads.clone();
        use_effect_with((awaiting_cancellation, *ticks / 2), move |(waiting, _)| {
            if *waiting && *reloads < 30 {
                reloads.set(*reloads + 1);
            }
        });
    }
    let body = match &*order {
        None => html! { <Loading /> },
        Some(Err(err)) if err.is_not_found() => html! {
            <>
                <h1>{ "Order not found" }</h1>
                <p><Link<Route> to={Route::Orders}>{ "My orders" }</Link<Route>></p>
            </>
        },
        Some(Err(err)) => html! { <Errors error={Some(err.clone())} /> },
        Some(Ok(order)) => {
            let left = format::seconds_until(&order.expires_at).unwrap_or(0);
            let state = match order.status {
                OrderStatus::Complete => html! {
                    <p class="notice success" role="status">{ "Paid. " }
                        <Link<Route> to={Route::Orders}>{ "My orders" }</Link<Route>></p>
                },
                OrderStatus::Cancelled if left <= 0 => html! {
                    <p class="notice" role="status">{ "Order expired. The ticket is for sale again." }</p>
                },
                OrderStatus::Cancelled => html! {
                    <p class="notice" role="status">{ "This order was cancelled." }</p>
                },
                OrderStatus::Created | OrderStatus::AwaitingPayment if left <= 0 => html! {
                    <p class="notice" role="status">{ "Order expired" }</p>
                },
                OrderStatus::Created | OrderStatus::AwaitingPayment => html! {
                    <>
                        <p class="countdown" aria-live="off">
                            { "Time left to pay: " }
                            <strong aria-label={format!("{left} seconds")}>{ format::countdown(left) }</strong>
                            { format!(" ({left} seconds)") }
                        </p>
                        <PayForm order_id={order.id.clone()} />
                    </>
                },
            };
            html! {
                <>
                    <h1>{ format!("Order: {}", order.ticket.title) }</h1>
                    <p class="price big">{ format::price(order.ticket.price) }</p>
                    <p>{ "Status: " }<span class={classes!("status", order.status.as_str().replace(':', "-"))}>{ format::status(order.status) }</span></p>
                    { state }
                </>
            }
        }
    };
    html! { <section class="card narrow">{ body }</section> }
}

#[derive(Properties, PartialEq)]
struct PayProps {
    order_id: String,
}

/// Where the card token comes from: typed (the sandbox) or Stripe.js's card field.
enum Source {
    Typed(String),
    Card(stripe::Card),
}

#[function_component(PayForm)]
fn pay_form(props: &PayProps) -> Html {
    let navigator = use_navigator();
    let config = use_payments().0;
    let card = use_state(|| None::<Result<stripe::Card, String>>);
    let token = use_state(|| "tok_visa".to_owned());
    let error = use_state(|| None::<ApiError>);
    let busy = use_state(|| false);
    let publishable_key = match &config {
        Some(Ok(config)) if config.provider == Provider::Stripe => config.publishable_key.clone(),
        _ => None,
    };
    {
        // With Stripe: load Stripe.js and mount its card field once the form is shown.
        let card = card.clone();
        use_effect_with(publishable_key.clone(), move |key| {
            if let Some(key) = key.clone() {
                wasm_bindgen_futures::spawn_local(async move {
                    let mounted = match stripe::load().await {
                        Ok(()) => stripe::mount(&key, "#card-element"),
                        Err(err) => Err(err),
                    };
                    card.set(Some(mounted));
                });
            }
        });
    }
    let onsubmit = {
        let (token, card, error, busy) = (token.clone(), card.clone(), error.clone(), busy.clone());
        let order_id = props.order_id.clone();
        let stripe = publishable_key.is_some();
        Callback::from(move |event: SubmitEvent| {
            event.prevent_default();
            if *busy {
                return;
            }
            let source = match (&*card, stripe) {
                (Some(Ok(card)), true) => Source::Card(card.clone()),
                (_, true) => return,
                (_, false) => Source::Typed((*token).clone()),
            };
            busy.set(true);
            let (error, busy, navigator, order_id) = (
                error.clone(),
                busy.clone(),
                navigator.clone(),
                order_id.clone(),
            );
            wasm_bindgen_futures::spawn_local(async move {
                let token = match source {
                    Source::Typed(token) => Ok(token),
                    Source::Card(card) => card.token().await.map_err(|err| ApiError::message(&err)),
                };
                let result = match token {
                    Ok(token) => api::pay(&order_id, &token).await,
                    Err(err) => Err(err),
                };
                busy.set(false);
                match result {
                    Ok(_) => {
                        if let Some(navigator) = navigator {
                            navigator.push(&Route::Orders);
                        }
                    }
                    Err(err) => error.set(Some(err)),
                }
            });
        })
    };
    let on_token = {
        let token = token.clone();
        Callback::from(move |value| token.set(value))
    };
    let entry = match (&config, &publishable_key) {
        (None, _) => return html! { <Loading /> },
        (Some(Err(err)), _) => return html! { <Errors error={Some(err.clone())} /> },
        (Some(Ok(config)), None) if config.provider == Provider::Stripe => {
            return html! {
                <p class="alert" role="alert">{ "Card payments are not set up: the app has no Stripe publishable key." }</p>
            };
        }
        (Some(Ok(config)), None) if config.provider != Provider::Sandbox => {
            return html! {
                <p class="alert" role="alert">{ "Payments are not available: no payment provider is configured." }</p>
            };
        }
        (Some(Ok(_)), Some(_)) => html! {
            <div class="field">
                <p class="label" id="card-label">{ "Card" }</p>
                <div id="card-element" class="card-input" aria-labelledby="card-label"></div>
                if let Some(Err(message)) = &*card {
                    <p class="field-error" role="alert">{ message.clone() }</p>
                }
            </div>
        },
        (Some(Ok(_)), None) => html! {
            <Field id="token" label="Card token" value={(*token).clone()} oninput={on_token}
                hint="Sandbox payments: tok_visa is charged, tok_chargeDeclined is declined."
                error={field_error(&error, "token")} />
        },
    };
    html! {
        <form class="pay" {onsubmit} novalidate=true>
            { entry }
            <Errors error={(*error).clone()} />
            <button type="submit" class="primary" disabled={*busy}>{ "Pay" }</button>
        </form>
    }
}

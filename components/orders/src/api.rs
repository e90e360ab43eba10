//! Thin HTTP handlers of the orders service (API.md, "orders").

use common::clock::Time;
use common::session::CurrentUser;
use common::{ApiError, Validator, json_response, respond, session};
use contract::http::{self, NewOrder, Sent};
use spin_sdk::http::{Params, Request, Response};

use crate::db::{self, BUS};
use crate::domain::{self, Order, Settled};

/// `POST /api/orders` `{ticketId}`: 201 the order, holding the ticket for the payment
/// window; publishes `order:created`.
pub fn create(req: Request, _params: Params) -> Response {
    respond(try_create(&req))
}

fn try_create(req: &Request) -> Result<Response, ApiError> {
    let user = session::require_auth(req)?;
    let body: NewOrder<Sent> = common::json_body(req)?;
    let mut rules = Validator::new();
    let ticket_id = rules.required(
        "ticketId",
        body.ticket_id.str(),
        "TicketId must be provided",
    );
    let Some(ticket_id) = ticket_id else {
        return Err(rules.into_error());
    };
    let window = domain::expiration_seconds(
        spin_sdk::variables::get("order_expiration_seconds")
            .ok()
            .as_deref(),
    );
    let expires_at = Time::now().plus_seconds(window);
    let conn = db::open()?;
    let order = BUS.transaction(&conn, |tx| {
        let ticket = db::find_ticket(tx, ticket_id)?.ok_or(ApiError::NotFound)?;
        let order = Order::new(common::new_id()?, user.id.clone(), ticket, expires_at);
        if !db::insert_order(tx, &order)? {
            return Err(ApiError::BadRequest(
                "Ticket is already reserved".to_owned(),
            ));
        }
        tx.publish(order.created_event())?;
        Ok(order)
    })?;
    Ok(json_response(201, &shown(order)))
}

/// `GET /api/orders`: the caller's orders, oldest first.
pub fn list(req: Request, _params: Params) -> Response {
    respond(try_list(&req))
}

fn try_list(req: &Request) -> Result<Response, ApiError> {
    let user = session::require_auth(req)?;
    let orders = BUS.read(|conn| db::orders_of(conn, &user.id))?;
    let orders: Vec<http::Order> = orders.into_iter().map(shown).collect();
    Ok(json_response(200, &orders))
}

/// `GET /api/orders/:id`: one of the caller's orders.
pub fn show(req: Request, params: Params) -> Response {
    respond(try_show(&req, &params))
}

fn try_show(req: &Request, params: &Params) -> Result<Response, ApiError> {
    let user = session::require_auth(req)?;
    let order = BUS.read(|conn| own_order(conn, params, &user))?;
    Ok(json_response(200, &shown(order)))
}

/// `DELETE /api/orders/:id`: 204, the order cancelled (once); publishes
/// `order:cancelled`. A completed order cannot be cancelled.
pub fn cancel(req: Request, params: Params) -> Response {
    respond(try_cancel(&req, &params))
}

fn try_cancel(req: &Request, params: &Params) -> Result<Response, ApiError> {
    let user = session::require_auth(req)?;
    let conn = db::open()?;
    BUS.transaction(&conn, |tx| {
        let mut order = own_order(tx, params, &user)?;
        match order.cancel() {
            Ok(_version) => {}
            Err(Settled::Cancelled) => return Ok(()),
            Err(Settled::Complete) => {
                return Err(ApiError::BadRequest(
                    "Cannot cancel a completed order".to_owned(),
                ));
            }
        }
        db::update_order(tx, &order)?;
        tx.publish(order.cancelled_event())
    })?;
    Ok(Response::builder().status(204).build())
}

/// The order of `:id`: 404 when unknown, 401 when someone else's.
fn own_order(
    conn: &spin_sdk::sqlite::Connection,
    params: &Params,
    user: &CurrentUser,
) -> Result<Order, ApiError> {
    let id = params.get("id").ok_or(ApiError::NotFound)?;
    let order = db::find_order(conn, id)?.ok_or(ApiError::NotFound)?;
    if order.user_id() != user.id {
        return Err(ApiError::NotAuthorized);
    }
    Ok(order)
}

/// The order as the API shows it.
fn shown(order: Order) -> http::Order {
    let ticket = order.ticket();
    http::Order {
        id: order.id().to_owned(),
        user_id: order.user_id().to_owned(),
        status: order.status(),
        expires_at: order.expires_at().to_string(),
        version: order.version(),
        ticket: http::OrderTicket {
            id: ticket.id.clone(),
            title: ticket.title.clone(),
            price: ticket.price,
            version: ticket.version,
        },
    }
}

//! Thin HTTP handlers of the tickets service (API.md, "tickets").

use common::{ApiError, Validator, json_response, respond, session};
use contract::http::{self, Sent, TicketForm};
use contract::price::Listing;
use spin_sdk::http::{Params, Request, Response};

use crate::db::{self, BUS};
use crate::domain::{Price, Ticket, Title};

/// `POST /api/tickets` `{title, price}`: 201 the new ticket; publishes `ticket:created`.
pub fn create(req: Request, _params: Params) -> Response {
    respond(try_create(&req))
}

fn try_create(req: &Request) -> Result<Response, ApiError> {
    let user = session::require_auth(req)?;
    let body = common::json_body(req)?;
    let (title, price) = title_and_price(&body, Listing::New)?;
    let ticket = Ticket::new(common::new_id()?, title, price, user.id);
    let conn = db::open()?;
    BUS.transaction(&conn, |tx| {
        db::insert_ticket(tx, &ticket)?;
        tx.publish(ticket.created_event())
    })?;
    Ok(json_response(201, &shown(ticket)))
}

/// `GET /api/tickets`: every ticket that is not reserved.
pub fn list(_req: Request, _params: Params) -> Response {
    respond(BUS.read(db::tickets_for_sale_json).map(|json| {
        Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .body(json.into_bytes())
            .build()
    }))
}

/// `GET /api/tickets/:id`.
pub fn show(_req: Request, params: Params) -> Response {
    respond(try_show(&params))
}

fn try_show(params: &Params) -> Result<Response, ApiError> {
    let id = params.get("id").ok_or(ApiError::NotFound)?;
    let ticket = BUS
        .read(|conn| db::find_ticket(conn, id))?
        .ok_or(ApiError::NotFound)?;
    Ok(json_response(200, &shown(ticket)))
}

/// `PUT /api/tickets/:id` `{title, price}`: the owner's edit of an unreserved ticket;
/// publishes `ticket:updated`. Checked in API.md's order: signed in, exists, not
/// reserved, owner, then the body.
pub fn update(req: Request, params: Params) -> Response {
    respond(try_update(&req, &params))
}

fn try_update(req: &Request, params: &Params) -> Result<Response, ApiError> {
    let user = session::require_auth(req)?;
    let id = params.get("id").ok_or(ApiError::NotFound)?;
    let body = common::json_body(req);
    let conn = db::open()?;
    // One transaction from the checks to the write: a reservation (applied in its own
    // transaction) lands either before the checks or after the edit, never between.
    let ticket = BUS.transaction(&conn, |tx| {
        let mut ticket = db::find_ticket(tx, id)?.ok_or(ApiError::NotFound)?;
        let reserved = || ApiError::BadRequest("Cannot edit a reserved ticket".to_owned());
        // Before the owner and the body, in API.md's order; `edit` refuses it too.
        if ticket.is_reserved() {
            return Err(reserved());
        }
        if ticket.user_id() != user.id {
            return Err(ApiError::NotAuthorized);
        }
        let body = body?;
        let (title, price) = title_and_price(&body, Listing::Edit)?;
        ticket.edit(title, price).map_err(|_| reserved())?;
        db::update_ticket(tx, &ticket)?;
        tx.publish(ticket.updated_event())?;
        Ok(ticket)
    })?;
    Ok(json_response(200, &shown(ticket)))
}

/// `{title, price}`, each checked by its rule (both failures reported), in the words
/// API.md gives for a new `listing` or an edited one.
fn title_and_price(body: &TicketForm<Sent>, listing: Listing) -> Result<(Title, Price), ApiError> {
    let mut rules = Validator::new();
    let title = rules.field("title", Title::parse(body.title.str()));
    let price = rules.field(
        "price",
        Price::parse(body.price.value()).map_err(|err| err.message(listing)),
    );
    match (title, price) {
        (Some(title), Some(price)) => Ok((title, price)),
        _ => Err(rules.into_error()),
    }
}

/// The ticket as the API shows it.
fn shown(ticket: Ticket) -> http::Ticket {
    http::Ticket {
        id: ticket.id().to_owned(),
        title: ticket.title().to_owned(),
        price: ticket.price(),
        user_id: ticket.user_id().to_owned(),
        version: ticket.version(),
        order_id: ticket.order_id().map(str::to_owned),
    }
}

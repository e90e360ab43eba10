//! The native baseline: the routes the bench measures, served by hyper and rusqlite
//! compiled for the machine, on a copy of the app's SQLite files.
//!
//! It does what the components do for these routes, minus WebAssembly: the same SQL
//! (copied from each service's `db.rs`; the list excepted, see `tickets_for_sale`), the
//! same bodies and JSON types (the `contract` crate's, `common`'s request parsing and
//! `common::session`, the bus's `Envelope`),
//! the same argon2 parameters, and for an order the same outbox row, relayed after the
//! commit with `XADD` and `PUBLISH` to a Redis of its own. What a native server would
//! do differently, it does: one SQLite connection per thread kept open (a component
//! opens its databases, and checks their schema version, on every request).

use std::cell::RefCell;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use bus::{Envelope, Event, OrderCreated, OrderedTicket};
use bytes::Bytes;
use common::clock::{Time, now_ms};
use common::session::{self, CurrentUser};
use common::trace::TraceContext;
use common::{ApiError, Validator};
use contract::http::{
    Credentials, CurrentUserAnswer, NewOrder, Order, OrderTicket, Sent, Ticket, User,
};
use contract::{OrderStatus, Price};
use http_body_util::{BodyExt, Full};
use hyper::Method;
use hyper::body::Incoming;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

/// The payment window orders uses when `order_expiration_seconds` is not set.
const EXPIRATION: Duration = Duration::from_secs(900);
/// As the host: a writer waits up to this long for another one.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

struct Settings {
    data: PathBuf,
    jwt_key: Vec<u8>,
    redis_url: String,
}

/// Each thread's open databases and Redis connection.
struct Handles {
    tickets: Connection,
    orders: Connection,
    auth: Connection,
    redis: redis::Connection,
}

thread_local! {
    static HANDLES: RefCell<Option<Handles>> = const { RefCell::new(None) };
}

/// Serves until killed. `data` holds `tickets.db`, `orders.db` and `auth.db`.
pub fn serve(listen: SocketAddr, data: &Path, redis_url: &str, jwt_key: &str) -> Result<()> {
    let settings = Arc::new(Settings {
        data: data.to_path_buf(),
        jwt_key: jwt_key.as_bytes().to_vec(),
        redis_url: redis_url.to_owned(),
    });
    crate::serve_http(listen, move |request| {
        let settings = settings.clone();
        async move { handle(&settings, request).await }
    })
}

type Answer = hyper::Response<Full<Bytes>>;

async fn handle(settings: &Settings, request: hyper::Request<Incoming>) -> Answer {
    let (parts, body) = request.into_parts();
    let body = match body.collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return error(&ApiError::BadRequest("Unreadable body".into())),
    };
    let cookie = parts
        .headers
        .get(hyper::header::COOKIE)
        .and_then(|value| value.to_str().ok())
        .and_then(session::cookie_value)
        .map(str::to_owned);
    let content_type = parts
        .headers
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok());
    let path = parts.uri.path();
    let result = with_handles(settings, |handles| {
        match (&parts.method, path.trim_end_matches('/')) {
            (&Method::GET, "/api/tickets") => tickets_for_sale(handles),
            (&Method::GET, "/api/users/currentuser") => current_user(settings, cookie),
            (&Method::POST, "/api/users/signin") => sign_in(
                settings,
                handles,
                common::json_body_from(content_type, &body)?,
            ),
            (&Method::POST, "/api/orders") => create_order(
                settings,
                handles,
                cookie,
                common::json_body_from(content_type, &body)?,
            ),
            (&Method::GET, path) => match path.strip_prefix("/api/tickets/") {
                Some(id) => show_ticket(handles, id),
                None => Err(ApiError::NotFound),
            },
            _ => Err(ApiError::NotFound),
        }
    });
    result.unwrap_or_else(|err| error(&err))
}

fn with_handles(
    settings: &Settings,
    route: impl FnOnce(&mut Handles) -> Result<Answer, ApiError>,
) -> Result<Answer, ApiError> {
    HANDLES.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.is_none() {
            *cell = Some(open(settings).map_err(ApiError::Internal)?);
        }
        route(cell.as_mut().expect("opened just above"))
    })
}

fn open(settings: &Settings) -> Result<Handles> {
    let db = |name: &str| -> Result<Connection> {
        let conn = Connection::open(settings.data.join(format!("{name}.db")))
            .with_context(|| format!("opening {name}.db"))?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        Ok(conn)
    };
    Ok(Handles {
        tickets: db("tickets")?,
        orders: db("orders")?,
        auth: db("auth")?,
        redis: redis::Client::open(settings.redis_url.as_str())?.get_connection()?,
    })
}

fn json_answer(status: u16, body: &impl Serialize) -> Answer {
    let bytes = serde_json::to_vec(body).expect("plain data serializes");
    hyper::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(bytes)))
        .expect("a valid response")
}

fn error(err: &ApiError) -> Answer {
    if let ApiError::Internal(detail) = err {
        eprintln!("internal error: {detail:#}");
    }
    json_answer(err.status(), &err.body())
}

fn internal(err: impl Into<anyhow::Error>) -> ApiError {
    ApiError::Internal(err.into())
}

const TICKET_COLUMNS: &str = "id, title, price_cents, user_id, version, order_id";

fn ticket(row: &rusqlite::Row<'_>) -> rusqlite::Result<Ticket> {
    Ok(Ticket {
        id: row.get(0)?,
        title: row.get(1)?,
        price: Price::from_cents(row.get(2)?).unwrap_or_else(|| Price::from_cents(1).unwrap()),
        user_id: row.get(3)?,
        version: row.get(4)?,
        order_id: row.get(5)?,
    })
}

fn tickets_for_sale(handles: &mut Handles) -> Result<Answer, ApiError> {
    // Not tickets' query, which has SQLite write the JSON (fewer pages written in the
    // guest): natively, serde over the rows serves the list 2.2-2.7 times faster
    // (docs/performance.md), and the baseline is the faster native server.
    let mut statement = handles
        .tickets
        .prepare_cached(&format!(
            "SELECT {TICKET_COLUMNS} FROM tickets WHERE order_id IS NULL ORDER BY seq"
        ))
        .map_err(internal)?;
    let tickets = statement
        .query_map([], ticket)
        .and_then(Iterator::collect::<rusqlite::Result<Vec<Ticket>>>)
        .map_err(internal)?;
    Ok(json_answer(200, &tickets))
}

fn show_ticket(handles: &mut Handles, id: &str) -> Result<Answer, ApiError> {
    let found = handles
        .tickets
        .prepare_cached(&format!(
            "SELECT {TICKET_COLUMNS} FROM tickets WHERE id = ?"
        ))
        .and_then(|mut statement| statement.query_row([id], ticket).optional())
        .map_err(internal)?;
    let ticket = found.ok_or(ApiError::NotFound)?;
    Ok(json_answer(200, &ticket))
}

fn signed_in(settings: &Settings, cookie: Option<String>) -> Option<CurrentUser> {
    cookie
        .and_then(|token| session::verify(&token, &settings.jwt_key, common::clock::now()))
        .map(CurrentUser::from)
}

fn current_user(settings: &Settings, cookie: Option<String>) -> Result<Answer, ApiError> {
    let user = signed_in(settings, cookie);
    Ok(json_answer(200, &CurrentUserAnswer { current_user: user }))
}

fn sign_in(
    settings: &Settings,
    handles: &mut Handles,
    body: Credentials<Sent>,
) -> Result<Answer, ApiError> {
    let invalid = || ApiError::BadRequest("Invalid credentials".into());
    let email = body.email.str().map(str::trim).ok_or_else(invalid)?;
    let password = body.password.str().map(str::trim).ok_or_else(invalid)?;
    let user: Option<(String, String, String)> = handles
        .auth
        .prepare_cached("SELECT id, email, password_hash FROM users WHERE email_key = ?")
        .and_then(|mut statement| {
            statement
                .query_row([email.to_lowercase()], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                })
                .optional()
        })
        .map_err(internal)?;
    let (id, email, hash) = user.ok_or_else(invalid)?;
    if !password_matches(password, &hash) {
        return Err(invalid());
    }
    let token = session::issue(&id, &email, &settings.jwt_key, common::clock::now())
        .map_err(ApiError::Internal)?;
    let mut answer = json_answer(200, &User { id, email });
    answer.headers_mut().insert(
        hyper::header::SET_COOKIE,
        session::set_cookie(&token, false)
            .parse()
            .expect("a cookie is a valid header value"),
    );
    Ok(answer)
}

/// auth's argon2id verification (components/auth/src/password.rs), same parameters.
fn password_matches(password: &str, stored: &str) -> bool {
    use argon2::password_hash::PasswordVerifier;
    use argon2::password_hash::phc::PasswordHash;
    let params = argon2::Params::new(19 * 1024, 2, 1, None).expect("valid argon2 parameters");
    let hasher = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    PasswordHash::new(stored)
        .is_ok_and(|parsed| hasher.verify_password(password.as_bytes(), &parsed).is_ok())
}

/// orders' `POST /api/orders`: in one `BEGIN IMMEDIATE` transaction, the ticket from
/// the replica, the order (the partial unique index decides the reservation) and the
/// `order:created` outbox row; after the commit, the relay.
fn create_order(
    settings: &Settings,
    handles: &mut Handles,
    cookie: Option<String>,
    body: NewOrder<Sent>,
) -> Result<Answer, ApiError> {
    let user = signed_in(settings, cookie).ok_or(ApiError::NotAuthorized)?;
    let mut rules = Validator::new();
    let ticket_id = rules.required(
        "ticketId",
        body.ticket_id.str(),
        "TicketId must be provided",
    );
    let Some(ticket_id) = ticket_id else {
        return Err(rules.into_error());
    };
    let expires_ms = now_ms() + i64::try_from(EXPIRATION.as_millis()).unwrap_or(0);

    let tx = handles
        .orders
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(internal)?;
    let ticket = tx
        .prepare_cached("SELECT id, title, price_cents, version FROM tickets WHERE id = ?")
        .and_then(|mut statement| {
            statement
                .query_row([ticket_id], |row| {
                    Ok(OrderTicket {
                        id: row.get(0)?,
                        title: row.get(1)?,
                        price: Price::from_cents(row.get(2)?)
                            .unwrap_or_else(|| Price::from_cents(1).unwrap()),
                        version: row.get(3)?,
                    })
                })
                .optional()
        })
        .map_err(internal)?
        .ok_or(ApiError::NotFound)?;
    let order = Order {
        id: common::new_id()?,
        user_id: user.id,
        status: OrderStatus::Created,
        expires_at: Time::from_ms(expires_ms).to_string(),
        version: 0,
        ticket,
    };
    let inserted = tx
        .prepare_cached(
            "INSERT INTO orders (id, user_id, status, expires_at, version, ticket_id)
             VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT DO NOTHING RETURNING id",
        )
        .and_then(|mut statement| {
            statement
                .query_row(
                    params![
                        order.id,
                        order.user_id,
                        order.status.as_str(),
                        order.expires_at,
                        order.version,
                        order.ticket.id
                    ],
                    |_| Ok(()),
                )
                .optional()
        })
        .map_err(internal)?;
    if inserted.is_none() {
        return Err(ApiError::BadRequest("Ticket is already reserved".into()));
    }
    // The bench's requests carry no `traceparent`: the service starts a trace, so here too.
    let context = TraceContext::start()?;
    let envelope = Envelope {
        id: common::new_id()?,
        occurred_at: Time::now().to_string(),
        source: "orders".into(),
        traceparent: Some(context.traceparent().to_owned()),
        tracestate: None,
        event: Event::OrderCreated(OrderCreated {
            id: order.id.clone(),
            version: order.version,
            status: order.status,
            user_id: order.user_id.clone(),
            expires_at: order.expires_at.clone(),
            ticket: OrderedTicket {
                id: order.ticket.id.clone(),
                price: order.ticket.price,
            },
        }),
    };
    let envelope_json = serde_json::to_string(&envelope).map_err(internal)?;
    tx.prepare_cached("INSERT INTO outbox (id, subject, envelope, created_ms) VALUES (?, ?, ?, ?)")
        .and_then(|mut statement| {
            statement.execute(params![
                envelope.id,
                "order:created",
                envelope_json,
                now_ms()
            ])
        })
        .map_err(internal)?;
    tx.commit().map_err(internal)?;

    relay(handles, &envelope.id, &envelope_json);
    Ok(json_answer(201, &order))
}

/// `XADD`, `PUBLISH`, then the row marked relayed, as the bus's relay does; a failure
/// leaves the row for later, as there.
fn relay(handles: &mut Handles, id: &str, envelope: &str) {
    let relayed = redis::pipe()
        .cmd("XADD")
        .arg("events:order:created")
        .arg("MAXLEN")
        .arg("~")
        .arg("100000")
        .arg("*")
        .arg("e")
        .arg(envelope)
        .ignore()
        .cmd("PUBLISH")
        .arg("order:created")
        .arg(envelope)
        .ignore()
        .exec(&mut handles.redis);
    if relayed.is_ok() {
        let _ = handles.orders.execute(
            "UPDATE outbox SET relayed_ms = ? WHERE id IN (?)",
            params![now_ms(), id],
        );
    }
}

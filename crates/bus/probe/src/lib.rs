//! bus-probe: a tiny service on the event bus, for the bus's behaviour tests
//! (`crates/bus/tests/`). It publishes ticket events and listens to them itself.
//!
//! - `POST /publish {"subject", "titles": [...], "fail"?}`: one event per title, all in
//!   one transaction (`version` = position); with `"fail": true` the transaction fails
//!   after publishing (500) and nothing may go out.
//! - `GET /applied`: the events applied, in the order they were applied.
//! - `GET /outbox`: how many events wait in the outbox.
//! - `POST /tick`: what the bus's tick does, now (relay leftovers, drain every stream).
//! - `POST /arm-ticks`: arms the bus's ticks, as expiration's health route does.
//!
//! Handlers fail on request: a title `poison` always fails; `fail-<n>…` fails its first
//! `n` deliveries (counted in Redis, outside the transaction that is rolled back).

use anyhow::anyhow;
use bus::{Bus, Listener, Received, TicketCreated, TicketUpdated, Tx};
use common::db::Migrations;
use common::{ApiError, json_response, respond};
use contract::price::Price;
use serde_json::{Value as Json, json};
use spin_sdk::http::{IncomingRequest, Params, Request, Response, Router};
use spin_sdk::sqlite::Value;

const MIGRATIONS: Migrations = &[
    bus::TABLES,
    &["CREATE TABLE applied (
        seq INTEGER PRIMARY KEY,
        event_id TEXT NOT NULL,
        subject TEXT NOT NULL,
        title TEXT NOT NULL,
        version INTEGER NOT NULL,
        source TEXT NOT NULL
    ) STRICT"],
    bus::RELAY_CLAIMS,
];

const BUS: Bus = Bus {
    service: "probe",
    database: "probe",
    migrations: MIGRATIONS,
};

fn listener() -> Listener {
    BUS.listener().on(on_ticket_created).on(on_ticket_updated)
}

#[cfg_attr(target_arch = "wasm32", spin_sdk::http_component)]
pub async fn handle(req: IncomingRequest) -> Response {
    common::serve(req, &router()).await
}

#[cfg_attr(target_arch = "wasm32", spin_sdk::redis_component)]
pub fn on_message(payload: bytes::Bytes) -> anyhow::Result<()> {
    listener().on_message(&payload).map(drop)
}

fn router() -> Router {
    let mut router = Router::new();
    router.post("/publish", |req: Request, _: Params| respond(publish(&req)));
    router.get("/applied", |_: Request, _: Params| respond(applied()));
    router.get("/outbox", |_: Request, _: Params| respond(outbox()));
    router.post("/tick", |_: Request, _: Params| {
        respond(
            listener()
                .on_tick()
                .map_err(ApiError::Internal)
                .map(|()| json_response(200, &json!({}))),
        )
    });
    router.post("/arm-ticks", |_: Request, _: Params| {
        respond(
            bus::tick::arm()
                .map_err(ApiError::Internal)
                .map(|()| json_response(200, &json!({}))),
        )
    });
    router.any("/*", |_: Request, _: Params| {
        ApiError::NotFound.into_response()
    });
    router
}

fn publish(req: &Request) -> Result<Response, ApiError> {
    #[derive(serde::Deserialize)]
    struct Publish {
        subject: String,
        titles: Vec<String>,
        #[serde(default)]
        fail: bool,
    }
    let Publish {
        subject,
        titles,
        fail,
    } = serde_json::from_slice(req.body())
        .map_err(|err| ApiError::BadRequest(format!("not a publish request: {err}")))?;
    let conn = BUS.open()?;
    let price = Price::from_cents(1000).expect("10.00 is a price");
    BUS.transaction(&conn, |tx| {
        for (version, title) in titles.iter().enumerate() {
            let version = u32::try_from(version).unwrap_or(u32::MAX);
            match subject.as_str() {
                "ticket:created" => tx.publish(TicketCreated {
                    id: format!("t{version}"),
                    version,
                    title: title.clone(),
                    price,
                    user_id: "u1".into(),
                })?,
                "ticket:updated" => tx.publish(TicketUpdated {
                    id: format!("t{version}"),
                    version,
                    title: title.clone(),
                    price,
                    user_id: "u1".into(),
                    order_id: None,
                })?,
                _ => return Err(ApiError::BadRequest("unknown subject".into())),
            }
        }
        if fail {
            return Err(ApiError::Internal(anyhow!(
                "failing after publishing, as asked"
            )));
        }
        Ok(())
    })?;
    Ok(json_response(201, &json!({ "published": titles.len() })))
}

fn applied() -> Result<Response, ApiError> {
    let conn = BUS.open()?;
    let rows = conn.execute(
        "SELECT event_id, subject, title, version, source FROM applied ORDER BY seq",
        &[],
    )?;
    let applied: Vec<Json> = rows
        .rows()
        .map(|row| {
            json!({
                "eventId": row.get::<&str>("event_id"),
                "subject": row.get::<&str>("subject"),
                "title": row.get::<&str>("title"),
                "version": row.get::<i64>("version"),
                "source": row.get::<&str>("source"),
            })
        })
        .collect();
    Ok(json_response(200, &applied))
}

fn outbox() -> Result<Response, ApiError> {
    let conn = BUS.open()?;
    let rows = conn.execute(
        "SELECT count(*) AS n FROM outbox WHERE relayed_ms IS NULL",
        &[],
    )?;
    let unrelayed = rows.rows().next().and_then(|row| row.get::<i64>("n"));
    Ok(json_response(200, &json!({ "unrelayed": unrelayed })))
}

fn on_ticket_created(tx: &Tx, event: Received<TicketCreated>) -> Result<(), ApiError> {
    let TicketCreated { title, version, .. } = &event.data;
    record(tx, &event, "ticket:created", title, *version)
}

fn on_ticket_updated(tx: &Tx, event: Received<TicketUpdated>) -> Result<(), ApiError> {
    let TicketUpdated { title, version, .. } = &event.data;
    record(tx, &event, "ticket:updated", title, *version)
}

fn record<T>(
    tx: &Tx,
    event: &Received<T>,
    subject: &str,
    title: &str,
    version: u32,
) -> Result<(), ApiError> {
    fail_if_asked(&event.id, title)?;
    tx.execute(
        "INSERT INTO applied (event_id, subject, title, version, source) VALUES (?, ?, ?, ?, ?)",
        &[
            Value::Text(event.id.clone()),
            Value::Text(subject.to_owned()),
            Value::Text(title.to_owned()),
            Value::Integer(i64::from(version)),
            Value::Text(event.source.clone()),
        ],
    )?;
    Ok(())
}

fn fail_if_asked(event_id: &str, title: &str) -> Result<(), ApiError> {
    if title == "poison" {
        return Err(ApiError::Internal(anyhow!(
            "poison: this handler always fails"
        )));
    }
    let Some(failures) = title
        .strip_prefix("fail-")
        .and_then(|rest| rest.split('-').next())
        .and_then(|count| count.parse::<i64>().ok())
    else {
        return Ok(());
    };
    let url = spin_sdk::variables::get("redis_url").map_err(|err| anyhow!("{err:?}"))?;
    let redis = spin_sdk::redis::Connection::open(&url).map_err(|err| anyhow!("{err:?}"))?;
    let attempt = redis
        .incr(&format!("probe:attempts:{event_id}"))
        .map_err(|err| anyhow!("{err:?}"))?;
    if attempt <= failures {
        return Err(ApiError::Internal(anyhow!(
            "failing attempt {attempt} of {failures}, as asked"
        )));
    }
    Ok(())
}

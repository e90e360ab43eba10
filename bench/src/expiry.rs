//! Expiration lateness: how long after an order's `expiresAt` its
//! `expiration:complete` reaches the stream, over many orders, woken only by the Redis
//! alarm (nothing calls the health route meanwhile).

use std::time::{Duration, Instant, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use harness::{App, Client, Redis};
use serde_json::{Value, json};

use crate::load;

/// Orders measured, and their payment window.
pub const ORDERS: usize = 200;
pub const WINDOW_SECONDS: u64 = 2;

pub struct Lateness {
    /// Sorted, in milliseconds; negative would be early.
    pub late_ms: Vec<i64>,
}

impl Lateness {
    /// One line for the report.
    pub fn summary(&self) -> String {
        format!(
            "Expiration: {} orders with a {WINDOW_SECONDS}-second window, each woken only by \
             the Redis alarm; from `expiresAt` to its `expiration:complete` on the stream: \
             p50 {}, p99 {}, max {} (goal: p99 under 1 s); published early: {}.",
            self.late_ms.len(),
            self.percentile(50.0),
            self.percentile(99.0),
            self.percentile(100.0),
            self.early(),
        )
    }

    pub fn percentile(&self, percent: f64) -> String {
        load::percentile(&self.late_ms, percent)
            .map_or_else(|| "n/a".into(), |ms| format!("{ms} ms"))
    }

    pub fn early(&self) -> usize {
        self.late_ms.iter().filter(|ms| **ms < 0).count()
    }
}

pub fn measure() -> Result<Lateness> {
    let app = App::builder(harness::workspace_root().join("spin.toml"))
        .with_redis(Redis::start())
        .variable("jwt_key", "bench")
        .variable("order_expiration_seconds", &WINDOW_SECONDS.to_string())
        .start();
    app.redis()
        .wait_for_subscribers("__keyevent@0__:expired", 1);
    let seller = app.signed_up("seller");
    let buyer = app.signed_up("buyer");
    let tickets: Vec<Value> = (0..ORDERS)
        .map(|n| {
            let reply = seller.post_json(
                "/api/tickets",
                &json!({"title": format!("t{n}"), "price": 10}),
            );
            reply.json()
        })
        .collect();
    let mut expires: Vec<(String, i64)> = Vec::new();
    for ticket in &tickets {
        let order = order(&buyer, ticket)?;
        let at = order["expiresAt"].as_str().context("expiresAt")?;
        expires.push((order["id"].as_str().context("id")?.to_owned(), millis(at)?));
    }
    let deadline = Instant::now() + Duration::from_secs(WINDOW_SECONDS + 30);
    loop {
        let published = published(&app);
        if published.len() >= ORDERS {
            let mut late_ms: Vec<i64> = expires
                .iter()
                .filter_map(|(id, at)| {
                    published
                        .iter()
                        .find(|(order, _)| order == id)
                        .map(|(_, ms)| ms - at)
                })
                .collect();
            late_ms.sort_unstable();
            return Ok(Lateness { late_ms });
        }
        if Instant::now() > deadline {
            let log = std::env::temp_dir().join("bench-expiry.log");
            let _ = std::fs::write(&log, app.logs().join("\n"));
            bail!(
                "only {} of {ORDERS} expiries were published within {} s; the app's output \
                 is in {}",
                published.len(),
                WINDOW_SECONDS + 30,
                log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn order(buyer: &Client, ticket: &Value) -> Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let reply = buyer.post_json("/api/orders", &json!({"ticketId": ticket["id"]}));
        match reply.status {
            201 => return Ok(reply.json()),
            404 if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            status => bail!("ordering answered {status}: {}", reply.text()),
        }
    }
}

/// (order id, when its entry was added: the entry id's milliseconds).
fn published(app: &App) -> Vec<(String, i64)> {
    app.redis()
        .stream("events:expiration:complete")
        .into_iter()
        .filter_map(|(id, fields)| {
            let envelope: Value = serde_json::from_str(&fields.first()?.1).ok()?;
            let added = id.split('-').next()?.parse().ok()?;
            Some((envelope["data"]["orderId"].as_str()?.to_owned(), added))
        })
        .collect()
}

fn millis(timestamp: &str) -> Result<i64> {
    let time = humantime::parse_rfc3339(timestamp)?;
    Ok(i64::try_from(
        time.duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis(),
    )?)
}

//! Redis restart mid-load: buyers order and pay, sellers list, everyone browses, while
//! `redis-server` (append-only file on, as deployed) is stopped and started again. Every
//! request gets 2xx or 4xx, or a 500 that a retry turns into one of those; every event
//! committed meanwhile reaches every service; every acknowledged listing is stored
//! exactly once (a retried request wrote no second ticket) and reaches orders; no
//! event is given up on; the Redis triggers subscribe again.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use harness::{Client, Method, Redis};
use serde_json::{Value, json};

use crate::users::try_send;
use crate::{Logbook, Report, Size, WAIT, bus, db, users};

const WORKERS: usize = 4;
/// How long a request is retried while it answers 500, and a payment while payments
/// has not heard of the order (404: that takes Redis).
const RETRY_FOR: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Tally {
    answers: usize,
    success: usize,
    refused: usize,
    /// 500s, each followed by a retry.
    errors: usize,
    /// Answers given while Redis was down.
    while_down: usize,
    /// Requests that never got a 2xx or 4xx, or got something else.
    broken: Vec<String>,
    /// Orders placed, and those paid.
    orders: Vec<Value>,
    paid: BTreeSet<String>,
    /// The longest time from an order to its payment's answer.
    longest_to_pay: Duration,
    /// The last answer to each payment that did not succeed.
    unpaid: Vec<String>,
    /// Listings answered 201: (title, user id, ticket id). Each title is listed once.
    listed: Vec<(String, String, String)>,
}

/// What became of the listings: acknowledged ones missing from tickets' database, extra
/// tickets (a title stored more often than it was acknowledged: a retried request that
/// wrote twice, or an unanswered one that wrote), and acknowledged ones orders never
/// applied (`ticket:created`).
#[derive(Debug, Default, PartialEq)]
struct Listings {
    lost: Vec<String>,
    extra: Vec<String>,
    not_in_orders: Vec<String>,
}

pub fn run(size: Size, logbook: &Logbook) -> Report {
    let rounds = size.pick(60, 12);
    let down_for = size.pick(Duration::from_secs(5), Duration::from_secs(2));
    let mut app = crate::spawn(Redis::start_persistent(), |app| {
        app.variable("order_expiration_seconds", "900")
    });
    let mut report = Report::default();
    let dead_letters = bus::DeadLetters::watch(app.redis());

    let workers: Vec<Client> = (0..WORKERS)
        .map(|n| users::sign_up(&app, &format!("restart-user{n}")))
        .collect();
    // Each worker buys the tickets of the next one.
    let tickets: Vec<Vec<Value>> = workers
        .iter()
        .enumerate()
        .map(|(n, seller)| {
            (0..rounds)
                .map(|round| seller.sell(&format!("restart {n}-{round}"), 30.0))
                .collect()
        })
        .collect();
    report.check(bus::settle(&app, app.redis(), WAIT), || {
        "orders did not hear of every ticket".to_owned()
    });

    let tally = Mutex::new(Tally::default());
    let done = AtomicUsize::new(0);
    let is_down = AtomicBool::new(false);
    let (mut down_took, mut resubscribe_took, mut resubscribed) = (None, Duration::ZERO, false);
    std::thread::scope(|scope| {
        for (n, worker) in workers.iter().enumerate() {
            let (tally, done, is_down) = (&tally, &done, &is_down);
            let to_buy = &tickets[(n + 1) % WORKERS];
            scope.spawn(move || {
                for (round, ticket) in to_buy.iter().enumerate() {
                    shop_round(worker, n, round, ticket, tally, is_down);
                    done.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
        // Stop Redis once a quarter of the work is done, while the rest goes on.
        let quarter = WORKERS * rounds / 4;
        while done.load(Ordering::SeqCst) < quarter {
            std::thread::sleep(Duration::from_millis(20));
        }
        app.redis_mut().stop();
        is_down.store(true, Ordering::SeqCst);
        let stopped = Instant::now();
        // The outage itself: a fixed time, the scenario's subject.
        std::thread::sleep(down_for);
        app.redis_mut().restart();
        is_down.store(false, Ordering::SeqCst);
        down_took = Some(stopped.elapsed());

        // The triggers come back (while the load goes on): every channel has its
        // subscriber again.
        let restarted = Instant::now();
        resubscribed = crate::poll_until(WAIT, || {
            let mut connection = app.redis().connection();
            bus::CONSUMERS.iter().all(|(subject, _)| {
                redis::cmd("PUBSUB")
                    .arg("NUMSUB")
                    .arg(subject)
                    .query::<(String, i64)>(&mut connection)
                    .is_ok_and(|(_, subscribers)| subscribers >= 1)
            })
        });
        resubscribe_took = restarted.elapsed();
    });
    report.check(resubscribed, || {
        "the Redis triggers did not subscribe again".to_owned()
    });

    // Nothing lost: every service applies every event, every outbox is relayed.
    let tally = tally
        .into_inner()
        .expect("no panics while holding the tally");
    let settled = crate::poll_until(WAIT, || {
        bus::settle(&app, app.redis(), Duration::from_secs(5))
            && db::WITH_OUTBOX
                .iter()
                .all(|database| db::unrelayed(&app, database) == 0)
    });
    report.check(settled, || {
        let unrelayed: Vec<String> = db::WITH_OUTBOX
            .iter()
            .map(|database| format!("{database} {}", db::unrelayed(&app, database)))
            .collect();
        format!(
            "not settled within {WAIT:?}: unrelayed {unrelayed:?}, behind {:?}",
            bus::behind(app.redis())
        )
    });
    let lost = lost_events(&app, &tally);
    report.check(lost.is_empty(), || {
        format!("events lost: {}", lost.join(", "))
    });
    let listings = check_listings(
        &tally.listed,
        &db::triples(
            &app,
            "tickets",
            "SELECT title, user_id, id FROM tickets WHERE title LIKE 'relisted %'",
        ),
        &db::strings(&app, "orders", "SELECT id FROM tickets"),
    );
    report.check(listings.lost.is_empty(), || {
        format!(
            "{} acknowledged listings lost: {}",
            listings.lost.len(),
            listings.lost.join(", ")
        )
    });
    report.check(listings.extra.is_empty(), || {
        format!(
            "{} tickets listed more often than acknowledged: {}",
            listings.extra.len(),
            listings.extra.join(", ")
        )
    });
    report.check(listings.not_in_orders.is_empty(), || {
        format!(
            "{} acknowledged listings orders never heard of: {}",
            listings.not_in_orders.len(),
            listings.not_in_orders.join(", ")
        )
    });
    let dead = dead_letters.check(app.redis(), &mut report);
    report.check(tally.broken.is_empty(), || {
        format!(
            "{} requests without a 2xx/4xx: {}",
            tally.broken.len(),
            tally.broken.join("; ")
        )
    });
    report.check(tally.unpaid.is_empty(), || {
        format!(
            "{} orders could not be paid: {}",
            tally.unpaid.len(),
            tally.unpaid.join("; ")
        )
    });
    report.check(tally.while_down > 0, || {
        "no request was answered while Redis was down".to_owned()
    });
    report.check(tally.orders.len() == WORKERS * rounds, || {
        format!(
            "{} of {} orders placed",
            tally.orders.len(),
            WORKERS * rounds
        )
    });

    report.figures = format!(
        "Redis (append-only file on) stopped for {:.1} s mid-load and started again: \
         {} answers ({} while Redis was down): {} 2xx, {} 4xx, {} 500 (each retried to a \
         2xx/4xx), {} never answered 2xx/4xx; triggers subscribed again {:.1} s after the \
         restart; {} orders and {} payments (the longest from order to payment: {:.1} s): {} \
         events lost; {} tickets listed: {} lost, {} extra (a retry that wrote twice), {} \
         not applied by orders; {dead} events dead-lettered",
        down_took.unwrap_or_default().as_secs_f64(),
        tally.answers,
        tally.while_down,
        tally.success,
        tally.refused,
        tally.errors,
        tally.broken.len(),
        resubscribe_took.as_secs_f64(),
        tally.orders.len(),
        tally.paid.len(),
        tally.longest_to_pay.as_secs_f64(),
        lost.len(),
        tally.listed.len(),
        listings.lost.len(),
        listings.extra.len(),
        listings.not_in_orders.len(),
    );
    logbook.keep(&app);
    report
}

/// One buyer's round: browse, order a ticket, pay for it, list a new one.
fn shop_round(
    worker: &Client,
    n: usize,
    round: usize,
    ticket: &Value,
    tally: &Mutex<Tally>,
    is_down: &AtomicBool,
) {
    let call = |method: Method, path: &str, body: Option<&Value>| {
        call(worker, method, path, body, tally, is_down)
    };
    let order_body = json!({"ticketId": ticket["id"]});
    let _ = call(Method::GET, "/api/tickets", None);
    if let Some(order) = call(Method::POST, "/api/orders", Some(&order_body))
        .filter(|(status, _)| *status == 201)
        .map(|(_, order)| order)
    {
        // As the web app does: the order's page loads the order, then the buyer pays;
        // while payments has not heard of the order (404), the buyer reloads the page
        // and tries again. Loading the order is also what gets orders' events out of
        // its outbox when Redis was down as they were committed (the outbox is relayed
        // by the service's own invocations).
        let ordered = Instant::now();
        let page = format!("/api/orders/{}", order["id"].as_str().unwrap_or_default());
        let payment = json!({"token": "tok_visa", "orderId": order["id"]});
        let paid = loop {
            let _ = call(Method::GET, &page, None);
            let paid = call(Method::POST, "/api/payments", Some(&payment));
            if !matches!(paid, Some((404, _))) || ordered.elapsed() > RETRY_FOR {
                break paid;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        let mut tally = tally.lock().expect("no panics while holding the tally");
        tally.longest_to_pay = tally.longest_to_pay.max(ordered.elapsed());
        match paid {
            Some((201, _)) => {
                tally
                    .paid
                    .insert(order["id"].as_str().unwrap_or_default().to_owned());
            }
            Some((status, body)) => tally
                .unpaid
                .push(format!("{}: {status} {body}", order["id"])),
            None => {}
        }
        tally.orders.push(order);
    }
    let title = format!("relisted {n}-{round}");
    let listing = json!({"title": title, "price": 12.5});
    if let Some((201, ticket)) = call(Method::POST, "/api/tickets", Some(&listing)) {
        let user = ticket["userId"].as_str().unwrap_or_default().to_owned();
        let id = ticket["id"].as_str().unwrap_or_default().to_owned();
        tally
            .lock()
            .expect("no panics while holding the tally")
            .listed
            .push((title, user, id));
    }
    let _ = call(Method::GET, "/api/orders", None);
}

/// Sends a request, retrying while it answers 500;
/// the final answer, or `None` (recorded as broken) when there was none.
fn call(
    client: &Client,
    method: Method,
    path: &str,
    body: Option<&Value>,
    tally: &Mutex<Tally>,
    is_down: &AtomicBool,
) -> Option<(u16, Value)> {
    let started = Instant::now();
    loop {
        let answer = try_send(client, method.clone(), path, body);
        let mut tally = tally.lock().expect("no panics while holding the tally");
        tally.answers += 1;
        if is_down.load(Ordering::SeqCst) {
            tally.while_down += 1;
        }
        match answer {
            Ok((status @ 200..=299, body)) => {
                tally.success += 1;
                return Some((status, body));
            }
            Ok((status @ 400..=499, body)) => {
                tally.refused += 1;
                return Some((status, body));
            }
            Ok((500, _)) if started.elapsed() < RETRY_FOR => tally.errors += 1,
            Ok((status, body)) => {
                tally
                    .broken
                    .push(format!("{method} {path}: {status} {body}"));
                return None;
            }
            Err(err) => {
                tally
                    .broken
                    .push(format!("{method} {path}: no answer: {err}"));
                return None;
            }
        }
        drop(tally);
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// What the services should have heard of and have not: each order's reservation in
/// tickets, its copy in payments, its expiry, and each payment's completion in orders.
fn lost_events(app: &harness::App, tally: &Tally) -> Vec<String> {
    let reserved: BTreeSet<(String, String)> = db::reservations(app).into_iter().collect();
    let in_payments: BTreeSet<String> = db::strings(app, "payments", "SELECT id FROM orders")
        .into_iter()
        .collect();
    let scheduled: BTreeSet<String> =
        db::strings(app, "expiration", "SELECT order_id FROM expirations")
            .into_iter()
            .collect();
    let complete: BTreeSet<String> = db::strings(
        app,
        "orders",
        "SELECT id FROM orders WHERE status = 'complete'",
    )
    .into_iter()
    .collect();
    let mut lost = Vec::new();
    for order in &tally.orders {
        let id = order["id"].as_str().unwrap_or_default().to_owned();
        let ticket = order["ticket"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if !reserved.contains(&(ticket, id.clone())) {
            lost.push(format!("order:created {id} (tickets)"));
        }
        if !in_payments.contains(&id) {
            lost.push(format!("order:created {id} (payments)"));
        }
        if !scheduled.contains(&id) {
            lost.push(format!("order:created {id} (expiration)"));
        }
        if tally.paid.contains(&id) && !complete.contains(&id) {
            lost.push(format!("payment:created for {id} (orders)"));
        }
    }
    lost
}

/// Compares the acknowledged listings (title, user, id) with the tickets stored under
/// those titles in tickets' database (title, user, id) and the tickets orders holds.
fn check_listings(
    acknowledged: &[(String, String, String)],
    stored: &[(String, String, String)],
    in_orders: &[String],
) -> Listings {
    let mut by_listing: BTreeMap<(&str, &str), Vec<&str>> = BTreeMap::new();
    for (title, user, id) in stored {
        by_listing.entry((title, user)).or_default().push(id);
    }
    let in_orders: BTreeSet<&str> = in_orders.iter().map(String::as_str).collect();
    let mut listings = Listings::default();
    for (title, user, id) in acknowledged {
        let stored = by_listing.remove(&(title.as_str(), user.as_str()));
        let stored = stored.unwrap_or_default();
        if !stored.contains(&id.as_str()) {
            listings.lost.push(format!("{title} ({id})"));
        }
        if stored.len() > 1 {
            listings
                .extra
                .push(format!("{title} stored {} times", stored.len()));
        }
        if !in_orders.contains(id.as_str()) {
            listings.not_in_orders.push(format!("{title} ({id})"));
        }
    }
    // Titles never acknowledged, yet stored.
    for ((title, _), ids) in by_listing {
        listings.extra.push(format!(
            "{title} stored {} times, never acknowledged",
            ids.len()
        ));
    }
    listings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(title: &str, user: &str, id: &str) -> (String, String, String) {
        (title.into(), user.into(), id.into())
    }

    #[test]
    fn listings_stored_once_and_applied_pass() {
        let acknowledged = [listing("relisted 0-0", "u0", "t1")];
        let listings = check_listings(&acknowledged, &acknowledged, &["t1".into()]);
        assert_eq!(listings, Listings::default());
    }

    #[test]
    fn a_lost_a_doubled_and_an_unacknowledged_listing_are_each_caught() {
        let acknowledged = [
            listing("relisted 0-0", "u0", "t1"),
            listing("relisted 0-1", "u0", "t2"),
        ];
        let stored = [
            // t1 is gone; t2 was written twice by a retried request; 1-0 was never
            // acknowledged.
            listing("relisted 0-1", "u0", "t2"),
            listing("relisted 0-1", "u0", "t3"),
            listing("relisted 1-0", "u1", "t4"),
        ];
        let listings = check_listings(&acknowledged, &stored, &["t2".into()]);
        assert_eq!(listings.lost, ["relisted 0-0 (t1)"]);
        assert_eq!(
            listings.extra,
            [
                "relisted 0-1 stored 2 times",
                "relisted 1-0 stored 1 times, never acknowledged"
            ]
        );
        assert_eq!(listings.not_in_orders, ["relisted 0-0 (t1)"]);
    }
}

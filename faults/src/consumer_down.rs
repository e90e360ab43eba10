//! Consumer down: tickets' listener (its `tickets-events` component, the pod of that
//! role on a cluster) is stopped while buyers order every ticket. Its doorbells ring
//! for nobody; the events wait on their stream in tickets' consumer group. Once it is
//! back, every ticket must be reserved by its order exactly once, with exactly one
//! reserving `ticket:updated` on the stream, and no event given up on. No request asks
//! for it: the bus's tick wakes the listener, which applies the backlog.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use harness::App;
use serde_json::{Value, json};

use crate::manifest::part;
use crate::{Logbook, Report, Size, WAIT, bus, db, users};

const CLIENTS: usize = 4;

pub fn run(size: Size, logbook: &Logbook) -> Report {
    let count = size.pick(1000, 100);
    let down_for = size.pick(Duration::from_secs(30), Duration::from_secs(5));
    let mut report = Report::default();

    // The app without tickets' listener (and without the web app, not needed here),
    // and that listener as a process of its own, on the same files and Redis.
    let main_part = part(|id| !matches!(id, "tickets-events" | "web"));
    let listener_part = part(|id| id == "tickets-events");
    let app = App::builder(&main_part.path)
        .with_redis(harness::Redis::start())
        .variable("jwt_key", &harness::random_hex(32))
        .variable("event_ack_wait_ms", "1000")
        .variable("order_expiration_seconds", "900")
        .start();
    let dead_letters = bus::DeadLetters::watch(app.redis());
    let mut listener = app.start_replica_from(&listener_part.path);
    app.redis().wait_for_subscribers("order:created", 2);
    app.redis().wait_for_subscribers("ticket:created", 1);

    let seller = users::sign_up(&app, "down-seller");
    let buyers: Vec<_> = (0..CLIENTS)
        .map(|n| users::sign_up(&app, &format!("down-buyer{n}")))
        .collect();
    let tickets: Vec<Value> = std::thread::scope(|scope| {
        let sellers: Vec<_> = (0..CLIENTS)
            .map(|part| {
                let seller = &seller;
                scope.spawn(move || {
                    (part..count)
                        .step_by(CLIENTS)
                        .map(|n| seller.sell(&format!("down {n}"), 15.0))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        sellers
            .into_iter()
            .flat_map(|seller| seller.join().expect("a seller does not panic"))
            .collect()
    });
    report.check(bus::settle(&app, app.redis(), WAIT), || {
        "orders did not hear of every ticket".to_owned()
    });

    // Down. (tickets' HTTP routes stay up: they apply no events, only the listener does.)
    listener.terminate();
    let went_down = Instant::now();
    let orders: Mutex<BTreeMap<String, String>> = Mutex::new(BTreeMap::new());
    let refused = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for (n, buyer) in buyers.iter().enumerate() {
            let (tickets, orders, refused) = (&tickets, &orders, &refused);
            scope.spawn(move || {
                for ticket in tickets.iter().skip(n).step_by(CLIENTS) {
                    let reply = buyer.post_json("/api/orders", &json!({"ticketId": ticket["id"]}));
                    let order = reply.json();
                    match (reply.status, order["id"].as_str()) {
                        (201, Some(id)) => {
                            let ticket = ticket["id"].as_str().unwrap_or_default();
                            orders
                                .lock()
                                .expect("no panics while holding the orders")
                                .insert(ticket.to_owned(), id.to_owned());
                        }
                        _ => refused
                            .lock()
                            .expect("no panics while holding the refusals")
                            .push(format!("{} {}", reply.status, reply.text())),
                    }
                }
            });
        }
    });
    let ordering_took = went_down.elapsed();
    let orders = orders
        .into_inner()
        .expect("no panics while holding the orders");
    let refused = refused
        .into_inner()
        .expect("no panics while holding the refusals");
    report.check(refused.is_empty(), || {
        format!("{} orders refused, first: {}", refused.len(), refused[0])
    });
    let reserved_while_down = db::count(
        &app,
        "tickets",
        "SELECT count(*) FROM tickets WHERE order_id IS NOT NULL",
    );
    report.check(reserved_while_down == 0, || {
        format!("{reserved_while_down} tickets reserved while their listener was down")
    });
    // The outage itself: a fixed time, the scenario's subject.
    std::thread::sleep(down_for.saturating_sub(went_down.elapsed()));
    let down_took = went_down.elapsed();

    listener = app.start_replica_from(&listener_part.path);
    let returned = Instant::now();
    app.redis().wait_for_subscribers("order:created", 2);
    // No doorbell rings for what it missed, and nobody asks: its next tick applies it.
    let caught_up = crate::poll_until(WAIT, || {
        app.redis()
            .group_caught_up("events:order:created", "tickets")
    });
    let catch_up_took = returned.elapsed();
    report.check(caught_up, || {
        format!("tickets did not catch up within {WAIT:?}")
    });
    // The host prints a message's line after its invocation returns, so after the
    // last acknowledgement: wait for the line that follows the last applied event.
    let mut applied = Applied::default();
    crate::poll_until(LOG_LINE_WAIT, || {
        applied = applied_by(&listener.logs());
        applied.unattributed == 0
    });
    let Applied {
        by_tick,
        by_doorbell,
        unattributed,
    } = applied;
    report.check(unattributed == 0, || {
        format!("{unattributed} applied events have no message line after them in the log")
    });
    report.check(by_tick > 0, || {
        format!("no tick applied the backlog ({by_doorbell} events applied on doorbells)")
    });

    // What tickets holds, and what it published.
    let reserved: BTreeMap<String, String> = db::reservations(&app).into_iter().collect();
    let lost = orders
        .iter()
        .filter(|(ticket, order)| reserved.get(*ticket) != Some(*order))
        .count();
    // The orders each ticket was reserved for on the stream, in publishing order.
    let mut reservations: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for envelope in bus::envelopes(app.redis(), "ticket:updated") {
        if let (Some(ticket), Some(order)) = (
            envelope["data"]["id"].as_str(),
            envelope["data"]["orderId"].as_str(),
        ) {
            reservations
                .entry(ticket.to_owned())
                .or_default()
                .push(order.to_owned());
        }
    }
    // Exactly one reserving `ticket:updated` per ordered ticket, for its order: none is a
    // reservation orders never hears of, two a reservation applied twice.
    let unpublished = orders
        .iter()
        .filter(|(ticket, order)| {
            !reservations
                .get(*ticket)
                .is_some_and(|reserved_for| reserved_for.contains(order))
        })
        .count();
    let twice = reservations
        .values()
        .filter(|reserved_for| reserved_for.len() > 1)
        .count()
        + usize::try_from(db::count(
            &app,
            "tickets",
            "SELECT count(*) FROM tickets WHERE version > 1",
        ))
        .unwrap_or(usize::MAX);
    report.check(lost == 0, || {
        format!("{lost} orders' tickets not reserved for them")
    });
    report.check(unpublished == 0, || {
        format!("{unpublished} reserved tickets without a reserving ticket:updated")
    });
    report.check(twice == 0, || {
        format!("{twice} tickets reserved more than once")
    });
    let dead = dead_letters.check(app.redis(), &mut report);
    report.check(orders.len() == count, || {
        format!("{} of {count} orders created", orders.len())
    });

    report.figures = format!(
        "tickets' listener down for {:.0} s while {} orders were created (in {:.1} s); \
         back, it applied the backlog in {:.1} s ({by_tick} events on ticks, \
         {by_doorbell} on doorbells): {} tickets reserved, {lost} lost, \
         {twice} applied twice; {} reserving ticket:updated on the stream, {unpublished} \
         reserved tickets without theirs; {dead} events dead-lettered",
        down_took.as_secs_f64(),
        orders.len(),
        ordering_took.as_secs_f64(),
        catch_up_took.as_secs_f64(),
        reserved.len(),
        reservations.values().map(Vec::len).sum::<usize>(),
    );
    logbook.keep(&listener);
    logbook.keep(&app);
    drop(listener);
    report
}

/// How long the host's line for a message may follow its last acknowledgement.
const LOG_LINE_WAIT: Duration = Duration::from_secs(5);

/// Events a listener process applied, by what woke it.
#[derive(Debug, Default, PartialEq, Eq)]
struct Applied {
    by_tick: usize,
    by_doorbell: usize,
    /// Applied, but the message's line is not in the log (yet).
    unattributed: usize,
}

/// How many events a listener process applied on ticks and on doorbells, read from the
/// host's log: it handles one Redis message at a time, and prints its line for a
/// message (`<component> redis <channel> …`) after the lines of that invocation.
fn applied_by(lines: &[String]) -> Applied {
    let mut applied = Applied::default();
    for line in lines {
        if line.contains("] event ") && line.contains("-> applied") {
            applied.unattributed += 1;
        } else if let Some((_, rest)) = line.split_once(" redis ") {
            if rest.starts_with("__keyevent@0__:expired") {
                applied.by_tick += applied.unattributed;
            } else {
                applied.by_doorbell += applied.unattributed;
            }
            applied.unattributed = 0;
        }
    }
    applied
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applied_events_belong_to_the_message_line_after_them() {
        let lines: Vec<String> = [
            "[tickets-events] event order:created 1-0 (id a from orders) -> applied in 1.0 ms",
            "[tickets-events] event order:created 1-1 (id b from orders) -> applied in 1.0 ms",
            "tickets-events redis __keyevent@0__:expired (18 bytes) -> ok in 9.00 ms",
            "[tickets-events] event order:created 1-2 (id c from orders) -> applied in 1.0 ms",
            "tickets-events redis order:created (200 bytes) -> ok in 3.00 ms",
            "tickets-events redis order:created (200 bytes) -> ok in 1.00 ms",
        ]
        .map(str::to_owned)
        .to_vec();
        let expected = |unattributed| Applied {
            by_tick: 2,
            by_doorbell: 1,
            unattributed,
        };
        assert_eq!(applied_by(&lines), expected(0));
        let mut cut = lines.clone();
        cut.push(
            "[tickets-events] event order:created 1-3 (id d from orders) -> applied in 1.0 ms"
                .to_owned(),
        );
        assert_eq!(
            applied_by(&cut),
            expected(1),
            "its message line is not in yet"
        );
    }
}

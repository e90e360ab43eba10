//! Crash safety: the host is killed with SIGKILL while users write (sign-ups, listings,
//! orders), and started again on the same files and Redis, several times. Every
//! database must pass `PRAGMA integrity_check`, every acknowledged write must be there
//! (each sign-up's user by its id and email), and every committed change's event must
//! reach its stream and be applied by each of its consumers (their `inbox`, and the
//! row it writes), none given up on (`events:dead`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use harness::{App, Client, Method, Redis};
use serde_json::json;

use crate::users::try_send;
use crate::{Logbook, Report, Size, WAIT, bus, db, users};

const WRITERS: usize = 4;

#[derive(Default)]
struct Acknowledged {
    tickets: Vec<String>,
    orders: Vec<(String, String)>,
    /// Each acknowledged sign-up's (id, email), the writers' own included.
    users: Vec<(String, String)>,
}

/// Where each consumer's apply of what the crash writes shows in its database (one
/// id per row): a row there, with the event's id in that database's `inbox` (written in
/// the same transaction), is the proof that it applied the event.
const APPLIED: &[(&str, &str, &str)] = &[
    ("ticket:created", "orders", "SELECT id FROM tickets"),
    (
        "order:created",
        "tickets",
        "SELECT order_id FROM tickets WHERE order_id IS NOT NULL",
    ),
    ("order:created", "payments", "SELECT id FROM orders"),
    (
        "order:created",
        "expiration",
        "SELECT order_id FROM expirations",
    ),
];

pub fn run(size: Size, logbook: &Logbook) -> Report {
    let kills = size.pick(5, 1);
    let write_for = size.pick(Duration::from_secs(3), Duration::from_secs(2));
    let mut app = crate::spawn(Redis::start(), |app| {
        app.variable("order_expiration_seconds", "900")
    });
    let mut report = Report::default();
    let dead_letters = bus::DeadLetters::watch(app.redis());
    let acknowledged = Mutex::new(Acknowledged::default());
    let mut unrelayed_at_kills = 0;
    let mut restarted: Option<App> = None;
    let names: Vec<String> = (0..WRITERS).map(|n| format!("crash-writer{n}")).collect();
    let created = AtomicUsize::new(0);

    for kill in 0..kills {
        let target = restarted.as_ref().unwrap_or(&app);
        let writers: Vec<Client> = names
            .iter()
            .map(|name| match kill {
                0 => {
                    let writer = users::sign_up(target, name);
                    let id = writer.user_id().as_str().unwrap_or_default().to_owned();
                    acknowledged
                        .lock()
                        .expect("no panics while holding the acknowledgements")
                        .users
                        .push((id, format!("{name}@example.com")));
                    writer
                }
                _ => users::sign_in(target, name),
            })
            .collect();
        let for_sale: Mutex<Vec<String>> = Mutex::new(Vec::new());
        let stop = AtomicBool::new(false);
        std::thread::scope(|scope| {
            for (n, writer) in writers.iter().enumerate() {
                let (stop, for_sale, acknowledged, created) =
                    (&stop, &for_sale, &acknowledged, &created);
                scope.spawn(move || {
                    while !stop.load(Ordering::SeqCst) {
                        write(writer, n, for_sale, acknowledged, created);
                    }
                });
            }
            // The writes go on for a while; then the crash, in the middle of them.
            std::thread::sleep(write_for);
            match restarted.as_mut() {
                Some(process) => process.kill(),
                None => app.kill(),
            };
            stop.store(true, Ordering::SeqCst);
        });

        // What a restart finds: the first connection rolls back a crash's journal.
        for database in db::DATABASES {
            let verdict = db::integrity(&app.sqlite_path(database));
            report.check(verdict == "ok", || {
                format!("after kill {}: {database}: {verdict}", kill + 1)
            });
        }
        unrelayed_at_kills += db::WITH_OUTBOX
            .iter()
            .map(|database| db::unrelayed(&app, database))
            .sum::<i64>();
        restarted = Some(app.start_replica());
    }
    let last = restarted.expect("at least one restart");
    for (subject, _) in bus::CONSUMERS {
        app.redis().wait_for_subscribers(subject, 1);
    }

    // Every committed change's event relayed, and applied by its consumers.
    let relayed = crate::poll_until(WAIT, || {
        bus::settle(&last, app.redis(), Duration::from_secs(5))
            && db::WITH_OUTBOX
                .iter()
                .all(|database| db::unrelayed(&last, database) == 0)
    });
    report.check(relayed, || {
        format!("not every event relayed and applied within {WAIT:?}")
    });
    // Each event's id by the id of what it created, from the streams.
    let event_ids = |subject: &str| -> BTreeMap<String, String> {
        bus::envelopes(app.redis(), subject)
            .iter()
            .filter_map(|envelope| {
                let created = envelope["data"]["id"].as_str()?;
                let event = envelope["id"].as_str()?;
                Some((created.to_owned(), event.to_owned()))
            })
            .collect()
    };
    let tickets = db::strings(&last, "tickets", "SELECT id FROM tickets");
    let orders = db::pairs(&last, "orders", "SELECT id, ticket_id FROM orders");
    let order_ids: Vec<String> = orders.iter().map(|(id, _)| id.clone()).collect();
    // What each subject created in its publisher's database, and those events' ids.
    let written = [
        ("ticket:created", &tickets, event_ids("ticket:created")),
        ("order:created", &order_ids, event_ids("order:created")),
    ];
    let without_event: usize = written
        .iter()
        .map(|(_, created, events)| {
            created
                .iter()
                .filter(|id| !events.contains_key(*id))
                .count()
        })
        .sum();
    report.check(without_event == 0, || {
        format!("{without_event} committed changes without their event on the stream")
    });
    // Applied, not only acked: a group that gave up on an event acks it too.
    let mut not_applied: BTreeMap<String, usize> = BTreeMap::new();
    for (subject, created, events) in &written {
        for (_, group, effects) in APPLIED.iter().filter(|(of, _, _)| of == subject) {
            let inbox: BTreeSet<String> = db::strings(&last, group, "SELECT id FROM inbox")
                .into_iter()
                .collect();
            let effects: BTreeSet<String> =
                db::strings(&last, group, effects).into_iter().collect();
            let missing = created
                .iter()
                .filter(|id| {
                    !effects.contains(*id)
                        || !events.get(*id).is_some_and(|event| inbox.contains(event))
                })
                .count();
            if missing > 0 {
                not_applied.insert(format!("{subject} by {group}"), missing);
            }
        }
    }
    let unapplied: usize = not_applied.values().sum();
    report.check(unapplied == 0, || {
        format!("committed changes whose event was not applied: {not_applied:?}")
    });
    let reserved: BTreeSet<(String, String)> = db::pairs(
        &last,
        "tickets",
        "SELECT order_id, id FROM tickets WHERE order_id IS NOT NULL",
    )
    .into_iter()
    .collect();
    let unreserved = orders
        .iter()
        .filter(|order| !reserved.contains(*order))
        .count();
    report.check(unreserved == 0 && reserved.len() == orders.len(), || {
        format!(
            "{} orders, {} reservations, {unreserved} orders without theirs",
            orders.len(),
            reserved.len()
        )
    });
    let dead = dead_letters.check(app.redis(), &mut report);

    // Nothing acknowledged is lost.
    let acknowledged = acknowledged
        .into_inner()
        .expect("no panics while holding the acknowledgements");
    let stored_tickets: BTreeSet<&String> = tickets.iter().collect();
    let stored_orders: BTreeSet<&(String, String)> = orders.iter().collect();
    let lost = acknowledged
        .tickets
        .iter()
        .filter(|id| !stored_tickets.contains(id))
        .count()
        + acknowledged
            .orders
            .iter()
            .filter(|order| !stored_orders.contains(order))
            .count();
    // By identity: a lost sign-up must not hide behind one that committed unanswered.
    let stored_users: BTreeSet<(String, String)> =
        db::pairs(&last, "auth", "SELECT id, email FROM users")
            .into_iter()
            .collect();
    let lost = lost
        + acknowledged
            .users
            .iter()
            .filter(|user| !stored_users.contains(*user))
            .count();
    report.check(lost == 0, || format!("{lost} acknowledged writes lost"));
    let final_check: Vec<String> = db::DATABASES
        .iter()
        .map(|database| db::integrity(&last.sqlite_path(database)))
        .filter(|verdict| verdict != "ok")
        .collect();
    report.check(final_check.is_empty(), || {
        format!("at the end: {final_check:?}")
    });

    report.figures = format!(
        "{kills} SIGKILLs of the host during writes by {WRITERS} users ({} acknowledged: \
         {} sign-ups, {} listings, {} orders); after each, {} of {} databases passed \
         integrity_check; {unrelayed_at_kills} events committed but not yet relayed at the \
         kills, {without_event} committed changes ({} tickets, {} orders) without their \
         event in the end, {unapplied} not applied by every consumer (orders of \
         tickets; tickets, payments and expiration of orders), {dead} events \
         dead-lettered; {lost} acknowledged writes lost",
        acknowledged.users.len() + acknowledged.tickets.len() + acknowledged.orders.len(),
        acknowledged.users.len(),
        acknowledged.tickets.len(),
        acknowledged.orders.len(),
        db::DATABASES.len() - final_check.len(),
        db::DATABASES.len(),
        tickets.len(),
        orders.len(),
    );
    logbook.keep(&app);
    logbook.keep(&last);
    drop(last);
    report
}

/// One write: list a ticket, order one another writer listed, and now and then a
/// sign-up. A request the crash cut off is simply not acknowledged.
fn write(
    writer: &Client,
    n: usize,
    for_sale: &Mutex<Vec<String>>,
    acknowledged: &Mutex<Acknowledged>,
    created: &AtomicUsize,
) {
    let listing = json!({"title": format!("crash {n}"), "price": 7.25});
    if let Ok((201, ticket)) = try_send(writer, Method::POST, "/api/tickets", Some(&listing)) {
        let id = ticket["id"].as_str().unwrap_or_default().to_owned();
        acknowledged
            .lock()
            .expect("no panics while holding the acknowledgements")
            .tickets
            .push(id.clone());
        for_sale
            .lock()
            .expect("no panics while holding the tickets")
            .push(id);
    }
    // The oldest listing: orders has most likely heard of it by now (a ticket it has
    // not heard of yet is a 404, no write).
    let ticket = {
        let mut for_sale = for_sale
            .lock()
            .expect("no panics while holding the tickets");
        if for_sale.len() < 2 * WRITERS {
            return;
        }
        for_sale.remove(0)
    };
    let order = json!({"ticketId": ticket});
    if let Ok((201, order)) = try_send(writer, Method::POST, "/api/orders", Some(&order)) {
        let id = order["id"].as_str().unwrap_or_default().to_owned();
        acknowledged
            .lock()
            .expect("no panics while holding the acknowledgements")
            .orders
            .push((id, ticket));
    }
    if created.fetch_add(1, Ordering::SeqCst).is_multiple_of(8) {
        let name = format!("crash-newcomer{}", harness::random_hex(6));
        let signup = json!({"email": format!("{name}@example.com"), "password": users::password()});
        // Through the writer's client: its session becomes the newcomer's, which is as
        // good for the writes that follow.
        if let Ok((201, user)) = try_send(writer, Method::POST, "/api/users/signup", Some(&signup))
        {
            let id = user["id"].as_str().unwrap_or_default().to_owned();
            let email = user["email"].as_str().unwrap_or_default().to_owned();
            acknowledged
                .lock()
                .expect("no panics while holding the acknowledgements")
                .users
                .push((id, email));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every consumer of what the crash writes has its apply checked.
    #[test]
    fn every_consumer_of_tickets_and_orders_is_checked() {
        for subject in ["ticket:created", "order:created"] {
            let (_, groups) = bus::CONSUMERS
                .iter()
                .find(|(known, _)| *known == subject)
                .expect("a consumed subject");
            for group in *groups {
                assert!(
                    APPLIED
                        .iter()
                        .any(|(of, by, _)| *of == subject && by == group),
                    "{subject} by {group} is not checked"
                );
            }
        }
    }
}

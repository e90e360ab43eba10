//! Race: many buyers order one ticket at the same instant, and one buyer pays one order
//! from many tabs at once. The database decides one winner (orders' partial unique
//! index; payments' pending row and busy mark), so there is exactly one reservation
//! and exactly one charge, whatever the interleaving.

use std::collections::BTreeMap;
use std::sync::Barrier;

use harness::{Client, Redis, Reply, StripeStub};
use serde_json::{Value, json};

use crate::{Logbook, Report, Size, WAIT, bus, db, message, users};

const RACERS: usize = 10;
const STRIPE_KEY: &str = "sk_test_of_the_fault_suite";

pub fn run(size: Size, logbook: &Logbook) -> Report {
    let rounds = size.pick(100, 10);
    let paid = size.pick(20, 3);
    let stripe = StripeStub::start(STRIPE_KEY);
    let app = crate::spawn(Redis::start(), |app| {
        app.variable("payment_provider", "stripe")
            .variable("stripe_secret_key", STRIPE_KEY)
            .variable("stripe_api_base", &stripe.api_base())
    });
    let mut report = Report::default();
    let dead_letters = bus::DeadLetters::watch(app.redis());

    let seller = users::sign_up(&app, "race-seller");
    let buyers: Vec<Client> = (0..RACERS)
        .map(|n| users::sign_up(&app, &format!("race-buyer{n}")))
        .collect();
    let tickets: Vec<Value> = (0..rounds)
        .map(|n| seller.sell(&format!("race {n}"), 20.0))
        .collect();
    report.check(bus::settle(&app, app.redis(), WAIT), || {
        "orders did not hear of every ticket".to_owned()
    });

    // Each round: every buyer posts the same order at once.
    let (mut doubles, mut without_winner) = (0, 0);
    let mut winners: Vec<(usize, Value)> = Vec::new();
    for ticket in &tickets {
        let replies = all_at_once(&buyers.iter().collect::<Vec<_>>(), |buyer| {
            buyer.post_json("/api/orders", &json!({"ticketId": ticket["id"]}))
        });
        let won: Vec<(usize, Value)> = replies
            .iter()
            .enumerate()
            .filter(|(_, reply)| reply.status == 201)
            .map(|(buyer, reply)| (buyer, reply.json()))
            .collect();
        let refused = replies.iter().filter(|reply| {
            reply.status == 400 && message(&reply.json()) == "Ticket is already reserved"
        });
        report.check(refused.count() + won.len() == RACERS, || {
            let statuses: Vec<u16> = replies.iter().map(|reply| reply.status).collect();
            format!(
                "ticket {}: answers other than 201 or 400 reserved: {statuses:?}",
                ticket["id"]
            )
        });
        match won.len() {
            0 => without_winner += 1,
            1 => winners.extend(won),
            _ => doubles += 1,
        }
    }
    report.check(doubles == 0, || {
        format!("{doubles} tickets with two winners")
    });
    report.check(without_winner == 0, || {
        format!("{without_winner} tickets nobody could order")
    });

    // What the databases hold: one live order per ticket, and the ticket reserved for it.
    let stored_doubles = db::strings(
        &app,
        "orders",
        "SELECT ticket_id FROM orders WHERE status != 'cancelled'
         GROUP BY ticket_id HAVING count(*) > 1",
    );
    report.check(stored_doubles.is_empty(), || {
        format!("orders holds two live orders for {stored_doubles:?}")
    });
    report.check(bus::settle(&app, app.redis(), WAIT), || {
        "the services did not apply every order".to_owned()
    });
    let reserved: BTreeMap<String, String> = db::reservations(&app).into_iter().collect();
    let mismatched = winners
        .iter()
        .filter(|(_, order)| {
            let ticket = order["ticket"]["id"].as_str().unwrap_or_default();
            reserved.get(ticket).map(String::as_str) != order["id"].as_str()
        })
        .count();
    report.check(mismatched == 0 && reserved.len() == winners.len(), || {
        format!(
            "tickets reserves {} tickets, {mismatched} of the {} winners' not for their order",
            reserved.len(),
            winners.len()
        )
    });

    // Payments: the winner pays from every tab at once.
    let mut charged_twice = 0;
    let mut refused_payments = 0;
    for (buyer, order) in winners.iter().take(paid) {
        let replies = all_at_once(&[&buyers[*buyer]; RACERS], |buyer| {
            buyer.post_json(
                "/api/payments",
                &json!({"token": "tok_visa", "orderId": order["id"]}),
            )
        });
        let accepted = replies.iter().filter(|reply| reply.status == 201).count();
        let refused = replies
            .iter()
            .filter(|reply| {
                reply.status == 400 && message(&reply.json()) == "Order is already paid"
            })
            .count();
        refused_payments += refused;
        report.check(accepted == 1 && refused == RACERS - 1, || {
            let statuses: Vec<u16> = replies.iter().map(|reply| reply.status).collect();
            format!("order {}: payments answered {statuses:?}", order["id"])
        });
    }
    let charges = stripe.charges();
    for (_, order) in winners.iter().take(paid) {
        let id = order["id"].as_str().unwrap_or_default();
        let of_order = charges
            .iter()
            .filter(|charge| {
                charge
                    .idempotency_key
                    .as_deref()
                    .is_some_and(|key| key.contains(id))
            })
            .count();
        if of_order != 1 {
            charged_twice += 1;
            report
                .failures
                .push(format!("order {id} charged {of_order} times"));
        }
    }
    report.check(charges.len() == paid, || {
        format!("{} charges for {paid} orders", charges.len())
    });
    let succeeded = db::count(
        &app,
        "payments",
        "SELECT count(*) FROM payments WHERE status = 'succeeded'",
    );
    report.check(succeeded == i64::try_from(paid).unwrap_or(i64::MAX), || {
        format!("payments holds {succeeded} succeeded payments for {paid} orders")
    });

    // The payments' events too, before counting what was given up on.
    report.check(bus::settle(&app, app.redis(), WAIT), || {
        "the services did not apply every payment".to_owned()
    });
    let dead = dead_letters.check(app.redis(), &mut report);

    report.figures = format!(
        "{rounds} rounds of {RACERS} concurrent orders for one ticket: {} one winner, \
         {doubles} double reservations, {without_winner} without a winner; \
         {paid} orders paid from {RACERS} tabs at once: {} charges, {charged_twice} orders \
         charged other than once, {refused_payments} payments refused as already paid; \
         {dead} events dead-lettered",
        winners.len(),
        charges.len(),
    );
    logbook.keep(&app);
    report
}

/// Runs `request` for every client at the same instant (a barrier releases them
/// together); the answers in the clients' order.
fn all_at_once(clients: &[&Client], request: impl Fn(&Client) -> Reply + Sync) -> Vec<Reply> {
    let barrier = Barrier::new(clients.len());
    std::thread::scope(|scope| {
        let racers: Vec<_> = clients
            .iter()
            .map(|client| {
                let (barrier, request) = (&barrier, &request);
                scope.spawn(move || {
                    barrier.wait();
                    request(client)
                })
            })
            .collect();
        racers
            .into_iter()
            .map(|racer| racer.join().expect("a racer does not panic"))
            .collect()
    })
}

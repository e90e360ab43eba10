//! The soak: the whole mix of many users (sign-ups, listings, edits, orders, payments
//! through the Stripe stand-in with some cards declined, cancels, expiries in a 30 s
//! window) for minutes, while Redis restarts (sometimes without its last writes) and
//! the host is SIGKILLed and restarted at random moments. Then an independent
//! reconciliation, from what the users were told and what the databases, Redis and the
//! Stripe stand-in hold:
//! - every acknowledged write exists, and nothing exists that was refused;
//! - each order's final status agrees across orders, tickets (the reservation),
//!   payments (its copy and the charge) and expiration;
//! - one charge per paid order and one refund per refunded one at the stand-in;
//! - every event applied once by every consumer group, `events:dead` empty,
//!   `PRAGMA integrity_check` ok everywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use harness::{App, Redis, StripeStub};

use crate::mix::{Ledger, Mix};
use crate::rng::Rng;
use crate::strike::Struck;
use crate::{Logbook, Report, Size, bus, db};

const STRIPE_KEY: &str = "sk_test_of_the_soak";
/// The payment window: unpaid orders expire within the run.
const WINDOW: Duration = Duration::from_secs(30);
/// A payment acknowledged this close to its order's deadline may lose the race to the
/// expiry (the charge is then refunded): its event may wait out a fault, at worst a
/// host killed before it relayed the event (its claim lapses after 5 s, the next tick
/// comes within 5 s more) or a Redis down for 3 s (its triggers reconnect within 2 s,
/// the tick within 5 s). One acknowledged earlier must complete it, unless the buyer
/// cancelled the order too.
const DEADLINE_RACE: Duration = Duration::from_secs(15);
/// How long the app gets to settle everything after the traffic stops.
const SETTLE: Duration = Duration::from_secs(120);

/// The faults, drawn at random moments; each is over within a few seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    RedisRestart,
    RedisLosesLastWrites,
    KillHost,
}

/// How long a full-size soak runs, in seconds (`faults --soak MINUTES`).
static FULL_LENGTH: AtomicU64 = AtomicU64::new(600);

/// Sets how long a full-size soak runs.
pub fn set_length(length: Duration) {
    FULL_LENGTH.store(length.as_secs(), Ordering::SeqCst);
}

/// The soak at `size`: ten minutes (or `--soak MINUTES`) with 16 users, or a minute
/// with 6.
pub fn run(size: Size, logbook: &Logbook) -> Report {
    let length = size.pick(
        Duration::from_secs(FULL_LENGTH.load(Ordering::SeqCst)),
        Duration::from_secs(60),
    );
    // A fault every 10 to 30 s; in the minute of `cargo test`, every 5 to 15 s.
    let between = size.pick((10_000, 20_000), (5_000, 10_000));
    soak(length, size.pick(16, 6), between, logbook)
}

/// `between`: the shortest pause between two faults and how much longer it may be, in
/// milliseconds.
fn soak(length: Duration, users: usize, between: (u64, usize), logbook: &Logbook) -> Report {
    let stripe = StripeStub::start(STRIPE_KEY);
    let mut app = Struck::new(crate::spawn(Redis::start_persistent(), |app| {
        app.variable("order_expiration_seconds", &WINDOW.as_secs().to_string())
            .variable("payment_provider", "stripe")
            .variable("stripe_secret_key", STRIPE_KEY)
            .variable("stripe_api_base", &stripe.api_base())
    }));
    let mut report = Report::default();
    let seed = Rng::seed();
    let mut rng = Rng::new(seed);
    let mix = Mix::new(app.serving().base_url(), WINDOW);
    let mut faults: BTreeMap<Fault, usize> = BTreeMap::new();
    std::thread::scope(|scope| {
        mix.start(scope, users, seed);
        let until = Instant::now() + length;
        loop {
            // The next fault, unless the run ends first.
            let pause = Duration::from_millis(between.0 + rng.below(between.1) as u64);
            if Instant::now() + pause + Duration::from_secs(5) >= until {
                break;
            }
            std::thread::sleep(pause);
            let struck_at = harness::clock();
            let fault = *rng.pick(&[
                Fault::RedisRestart,
                Fault::RedisLosesLastWrites,
                Fault::KillHost,
            ]);
            match fault {
                Fault::RedisRestart => {
                    app.redis_down(Duration::from_millis(500 + rng.below(2_500) as u64));
                }
                Fault::RedisLosesLastWrites => {
                    app.redis_loses_last_writes(Duration::from_millis(200 + rng.below(800) as u64));
                }
                Fault::KillHost => app.kill_host(&mix),
            }
            *faults.entry(fault).or_default() += 1;
            if harness::is_verbose() {
                eprintln!("soak: {fault:?} from {struck_at} to {}", harness::clock());
            }
        }
        if let Some(left) = until.checked_duration_since(Instant::now()) {
            std::thread::sleep(left);
        }
        mix.stop();
    });
    let requests = mix.requests();
    let errors = requests.iter().filter(|request| request.is_error()).count();
    let ledger = mix.into_ledger();
    let last = app.serving();

    // Everything settles: events applied, expiries published, abandoned charges
    // settled, refunds made.
    let settled = crate::poll_until(SETTLE, || is_settled(last, app.redis()));
    report.check(settled, || {
        format!(
            "not settled within {} s: behind {:?}",
            SETTLE.as_secs(),
            bus::behind(app.redis())
        )
    });

    let mut found = Discrepancies::default();
    found.writes(last, &ledger);
    found.orders(last, &ledger);
    found.replicas(last);
    found.charges(last, &stripe);
    found.events(last, app.redis());
    let examples = [DISAGREE, PAID_LATE]
        .iter()
        .filter_map(|what| found.0.get(what).and_then(|examples| examples.first()));
    for example in examples {
        let order = example.split(':').next().unwrap_or_default();
        let story = story(app.redis(), order);
        eprintln!("soak: the story of order {order} on the streams:\n{story}");
        // What the app logged about those events.
        let ids: Vec<&str> = story
            .lines()
            .filter_map(|line| line.split("\"id\":\"").nth(1))
            .filter_map(|rest| rest.split('"').next())
            .collect();
        for line in app
            .logs()
            .iter()
            .filter(|line| ids.iter().any(|id| line.contains(id)))
        {
            eprintln!("  log: {line}");
        }
    }
    for database in db::DATABASES {
        if db::integrity(&last.sqlite_path(database)) != "ok" {
            found.add("a database failing integrity_check", database.to_owned());
        }
    }
    for (what, examples) in &found.0 {
        report.check(false, || {
            format!("{} {what} (first: {})", examples.len(), examples[0])
        });
    }

    let orders = ledger.orders.len();
    let paid = ledger
        .orders
        .values()
        .filter(|order| order.payment.is_some())
        .count();
    report.figures = format!(
        "{} s, {users} users, {} requests ({errors} failed while faults struck); faults: \
         {} Redis restarts, {} Redis back without its last writes, {} host kills; \
         acknowledged: {} sign-ups, {} listings, {orders} orders ({paid} paid, {} \
         cancelled); {} charges, {} refunds at the Stripe stand-in; discrepancies: {}; \
         seed {seed}",
        length.as_secs(),
        requests.len(),
        faults.get(&Fault::RedisRestart).unwrap_or(&0),
        faults.get(&Fault::RedisLosesLastWrites).unwrap_or(&0),
        faults.get(&Fault::KillHost).unwrap_or(&0),
        ledger.users.len(),
        ledger.tickets.len(),
        ledger
            .orders
            .values()
            .filter(|order| order.cancelled)
            .count(),
        stripe.charges().len(),
        stripe.refunds().len(),
        found.summary(),
    );
    app.keep_logs(logbook);
    report
}

/// Nothing left to do: every group caught up, every outbox relayed, no expiry due, no
/// refund due, no charge left pending (a host killed mid-charge leaves one busy for a
/// minute, then a wake settles it), every order paid or cancelled (the last ones expire
/// within the window).
fn is_settled(app: &App, redis: &Redis) -> bool {
    app.get("/api/expiration/health");
    let now_ms = crate::mix::epoch_ms(std::time::SystemTime::now());
    bus::behind(redis).is_empty()
        && db::WITH_OUTBOX
            .iter()
            .all(|database| db::unrelayed(app, database) == 0)
        && db::count(
            app,
            "expiration",
            &format!(
                "SELECT count(*) FROM expirations WHERE expired_ms IS NULL AND expires_ms <= {now_ms}"
            ),
        ) == 0
        && db::count(
            app,
            "payments",
            "SELECT count(*) FROM payments WHERE status IN ('refund_due', 'pending')",
        ) == 0
        && db::count(
            app,
            "orders",
            "SELECT count(*) FROM orders WHERE status NOT IN ('cancelled', 'complete')",
        ) == 0
}

const DISAGREE: &str = "orders whose services disagree";
const PAID_LATE: &str = "orders paid well before their deadline that did not complete";

/// Every event on the streams about `order` and its ticket, in each stream's order: to
/// tell why the services disagree about it.
fn story(redis: &Redis, order: &str) -> String {
    let ticket = bus::envelopes(redis, "order:created")
        .into_iter()
        .find(|envelope| envelope["data"]["id"] == order)
        .and_then(|envelope| envelope["data"]["ticket"]["id"].as_str().map(str::to_owned))
        .unwrap_or_default();
    let mut lines = Vec::new();
    for (subject, _) in bus::CONSUMERS {
        for (entry, fields) in redis.stream(&format!("events:{subject}")) {
            let Some((_, e)) = fields.iter().find(|(name, _)| name == "e") else {
                continue;
            };
            let mentions = e.contains(order) || (!ticket.is_empty() && e.contains(&ticket));
            if mentions {
                lines.push(format!("  {subject} {entry}: {e}"));
            }
        }
    }
    lines.join("\n")
}

/// What the reconciliation found, by kind: an example of each.
#[derive(Default)]
struct Discrepancies(BTreeMap<&'static str, Vec<String>>);

impl Discrepancies {
    fn add(&mut self, what: &'static str, example: String) {
        self.0.entry(what).or_default().push(example);
    }

    /// `0` or `N (kind: n, …)`.
    fn summary(&self) -> String {
        let total: usize = self.0.values().map(Vec::len).sum();
        if total == 0 {
            return "0".to_owned();
        }
        let kinds: Vec<String> = self
            .0
            .iter()
            .map(|(what, examples)| format!("{what}: {}", examples.len()))
            .collect();
        format!("{total} ({})", kinds.join(", "))
    }

    /// Every acknowledged write exists; nothing exists that the users were refused.
    fn writes(&mut self, app: &App, ledger: &Ledger) {
        let users: BTreeMap<String, String> = db::pairs(app, "auth", "SELECT email, id FROM users")
            .into_iter()
            .collect();
        for (email, id) in &ledger.users {
            if users.get(email) != Some(id) {
                self.add("acknowledged sign-ups missing", email.clone());
            }
        }
        let tickets: BTreeMap<String, Vec<String>> = db::table(
            app,
            "tickets",
            "SELECT id, user_id, title, price_cents FROM tickets",
        )
        .into_iter()
        .map(|row| (row[0].clone(), row[1..].to_vec()))
        .collect();
        for (id, ack) in &ledger.tickets {
            let Some(stored) = tickets.get(id) else {
                self.add("acknowledged listings missing", id.clone());
                continue;
            };
            let cents = |price: &str| {
                price
                    .parse::<f64>()
                    .map(|dollars| (dollars * 100.0).round() as i64)
                    .unwrap_or(-1)
                    .to_string()
            };
            let shown = (stored[1].clone(), stored[2].clone());
            let mut allowed = vec![(ack.title.clone(), cents(&ack.price))];
            allowed.extend(
                ack.maybe
                    .iter()
                    .map(|(title, price)| (title.clone(), cents(price))),
            );
            if stored[0] != ack.seller || !allowed.contains(&shown) {
                self.add(
                    "listings that differ from their last acknowledged edit",
                    format!("{id}: {shown:?}, acknowledged {allowed:?}"),
                );
            }
        }
        let maybe_listed: BTreeSet<(String, String)> =
            ledger.maybe_tickets.iter().cloned().collect();
        for (id, stored) in &tickets {
            if !ledger.tickets.contains_key(id)
                && !maybe_listed.contains(&(stored[0].clone(), stored[1].clone()))
            {
                self.add("listings nobody was told of", id.clone());
            }
        }
        let orders: BTreeMap<String, (String, String)> =
            db::triples(app, "orders", "SELECT id, user_id, ticket_id FROM orders")
                .into_iter()
                .map(|(id, user, ticket)| (id, (user, ticket)))
                .collect();
        for (id, ack) in &ledger.orders {
            if orders.get(id) != Some(&(ack.buyer.clone(), ack.ticket.clone())) {
                self.add("acknowledged orders missing", id.clone());
            }
        }
        let maybe_ordered: BTreeSet<(String, String)> =
            ledger.maybe_orders.iter().cloned().collect();
        for (id, placed) in &orders {
            if !ledger.orders.contains_key(id) && !maybe_ordered.contains(placed) {
                self.add("orders nobody was told of", id.clone());
            }
        }
    }

    /// Orders' copy of every ticket is the ticket as tickets holds it.
    fn replicas(&mut self, app: &App) {
        let sql = "SELECT id, version, title, price_cents FROM tickets";
        let copies: BTreeMap<String, Vec<String>> = db::table(app, "orders", sql)
            .into_iter()
            .map(|row| (row[0].clone(), row[1..].to_vec()))
            .collect();
        for row in db::table(app, "tickets", sql) {
            if copies.get(&row[0]) != Some(&row[1..].to_vec()) {
                self.add(
                    "tickets whose copy in orders differs",
                    format!(
                        "{}: {:?} in orders, {:?} in tickets",
                        row[0],
                        copies.get(&row[0]),
                        &row[1..]
                    ),
                );
            }
        }
    }

    /// Each order's final status, the same in every service, and as its buyer was told.
    fn orders(&mut self, app: &App, ledger: &Ledger) {
        let statuses: BTreeMap<String, (String, String)> =
            db::triples(app, "orders", "SELECT id, status, ticket_id FROM orders")
                .into_iter()
                .map(|(id, status, ticket)| (id, (status, ticket)))
                .collect();
        let reserved_by: BTreeMap<String, String> = db::reservations(app).into_iter().collect();
        let seen: BTreeMap<String, String> = db::table(
            app,
            "tickets",
            "SELECT order_id, is_cancelled FROM orders_seen",
        )
        .into_iter()
        .map(|row| (row[0].clone(), row[1].clone()))
        .collect();
        let copies: BTreeMap<String, String> =
            db::pairs(app, "payments", "SELECT id, status FROM orders")
                .into_iter()
                .collect();
        let payments: BTreeMap<String, Vec<String>> = {
            let mut payments: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for (order, status) in
                db::pairs(app, "payments", "SELECT order_id, status FROM payments")
            {
                payments.entry(order).or_default().push(status);
            }
            payments
        };
        let expiries: BTreeMap<String, String> = db::table(
            app,
            "expiration",
            "SELECT order_id, expired_ms FROM expirations",
        )
        .into_iter()
        .map(|row| (row[0].clone(), row[1].clone()))
        .collect();
        for (id, (status, ticket)) in &statuses {
            let paid = payments.get(id).cloned().unwrap_or_default();
            let is_cancelled = status == "cancelled";
            let agrees = match status.as_str() {
                "complete" => {
                    reserved_by.get(ticket) == Some(id)
                        && seen.get(id).map(String::as_str) == Some("0")
                        && copies.get(id).is_some_and(|copy| copy != "cancelled")
                        && paid == ["succeeded"]
                }
                "cancelled" => {
                    reserved_by.get(ticket) != Some(id)
                        && seen.get(id).map(String::as_str) == Some("1")
                        && copies.get(id).map(String::as_str) == Some("cancelled")
                        && paid
                            .iter()
                            .all(|payment| payment == "refunded" || payment == "pending")
                }
                _ => false,
            };
            if !agrees || !expiries.contains_key(id) {
                self.add(
                    DISAGREE,
                    format!(
                        "{id}: orders {status}, tickets reserved for {:?} (seen {:?}), \
                         payments' copy {:?} with payments {paid:?}, expiry {:?}",
                        reserved_by.get(ticket),
                        seen.get(id),
                        copies.get(id),
                        expiries.get(id)
                    ),
                );
            }
            if paid.iter().any(|payment| payment == "pending") {
                self.add("payments left pending (an unknown outcome)", id.clone());
            }
            let Some(ack) = ledger.orders.get(id) else {
                continue;
            };
            if ack.cancelled && !is_cancelled {
                self.add("acknowledged cancels not applied", id.clone());
            }
            let was_paid = status == "complete" || paid.iter().any(|payment| payment == "refunded");
            if ack.payment.is_some() && !was_paid {
                self.add("acknowledged payments lost", id.clone());
            }
            // Refunded instead: only a payment that raced the deadline may be, or one
            // that raced the buyer's own cancel (payments may take the charge before
            // it has heard of the cancel, delayed by a fault, and then refunds it).
            if ack.payment.is_some()
                && status != "complete"
                && !(ack.cancelled || ack.maybe_cancelled)
                && ack.paid_ms < ack.expires_ms - DEADLINE_RACE.as_millis() as i64
            {
                self.add(
                    PAID_LATE,
                    format!(
                        "{id}: paid {} ms before expiresAt",
                        ack.expires_ms - ack.paid_ms
                    ),
                );
            }
            if ack.payment.is_none() && !ack.maybe_paid && was_paid {
                self.add("orders paid without an acknowledged payment", id.clone());
            }
        }
    }

    /// One charge per paid order at the Stripe stand-in, one refund per refunded one,
    /// and nothing else.
    fn charges(&mut self, app: &App, stripe: &StripeStub) {
        let payments = db::table(
            app,
            "payments",
            "SELECT id, status, stripe_id, refund_id FROM payments",
        );
        let charges = stripe.charges();
        let refunds = stripe.refunds();
        let mut charged: BTreeMap<&str, usize> = BTreeMap::new();
        for charge in &charges {
            *charged.entry(charge.id.as_str()).or_default() += 1;
        }
        let mut refunded: BTreeMap<&str, usize> = BTreeMap::new();
        for refund in &refunds {
            *refunded.entry(refund.charge.as_str()).or_default() += 1;
        }
        let mut recorded = BTreeSet::new();
        for row in &payments {
            let (id, status, stripe_id) = (&row[0], row[1].as_str(), row[2].as_str());
            if status == "pending" {
                continue;
            }
            recorded.insert(stripe_id.to_owned());
            if charged.get(stripe_id) != Some(&1) {
                self.add(
                    "payments without exactly one charge",
                    format!(
                        "{id}: {stripe_id} charged {:?} times",
                        charged.get(stripe_id)
                    ),
                );
            }
            let refunds_expected = usize::from(status == "refunded");
            if refunded.get(stripe_id).copied().unwrap_or(0) != refunds_expected {
                self.add(
                    "payments without their one refund (or refunded when not due)",
                    format!("{id}: {status}, refunds {:?}", refunded.get(stripe_id)),
                );
            }
        }
        for charge in &charges {
            if !recorded.contains(&charge.id) {
                self.add("charges no payment records", charge.id.clone());
            }
        }
    }

    /// Every event on every stream applied by every consumer group (its id in the
    /// group's inbox), and nothing given up on.
    fn events(&mut self, app: &App, redis: &Redis) {
        for (subject, groups) in bus::CONSUMERS {
            let ids: BTreeSet<String> = bus::envelopes(redis, subject)
                .iter()
                .filter_map(|envelope| envelope["id"].as_str().map(str::to_owned))
                .collect();
            for group in *groups {
                let applied: BTreeSet<String> = db::strings(
                    app,
                    group,
                    &format!("SELECT id FROM inbox WHERE subject = '{subject}'"),
                )
                .into_iter()
                .collect();
                for id in ids.difference(&applied) {
                    self.add(
                        "events a consumer group never applied",
                        format!("{group}: {subject} {id}"),
                    );
                }
            }
        }
        for (id, _) in redis.dead_letters() {
            self.add("events in events:dead", id);
        }
    }
}

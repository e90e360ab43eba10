//! faults: the fault suite of `cargo xtask faults`. Each scenario starts the real app
//! (the project's host, real `redis-server`, real SQLite files, all on 127.0.0.1),
//! does something bad to it, and counts what it finds in the answers, the databases
//! and Redis. A scenario passes only when every count is the one the design promises.
//!
//! `src/main.rs` runs them at full size and writes docs/reliability.md;
//! `tests/quick.rs` runs them at a reduced size inside `cargo test`.

pub mod bad_input;
pub mod consumer_down;
pub mod crash;
pub mod handler_failures;
pub mod race;
pub mod redis_restart;
pub mod secrets;
pub mod soak;
pub mod storm;

mod bus;
mod db;
mod manifest;
mod mix;
mod rng;
mod strike;
mod users;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use harness::{App, AppBuilder, Redis};

/// How big a run is: the figures of docs/reliability.md, or a quick pass for `cargo test`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    Full,
    Quick,
}

impl Size {
    pub fn pick<T>(self, full: T, quick: T) -> T {
        match self {
            Size::Full => full,
            Size::Quick => quick,
        }
    }
}

/// What a scenario found: its figures, and every promise it saw broken.
#[derive(Debug, Default)]
pub struct Report {
    pub figures: String,
    pub failures: Vec<String>,
}

impl Report {
    /// Records `failure` unless `holds`.
    pub fn check(&mut self, holds: bool, failure: impl FnOnce() -> String) {
        if !holds {
            self.failures.push(failure());
        }
    }
}

/// One scenario's result, as printed.
#[derive(Debug)]
pub struct Outcome {
    pub scenario: &'static str,
    pub report: Report,
    pub took: Duration,
}

impl Outcome {
    pub fn passed(&self) -> bool {
        self.report.failures.is_empty()
    }

    /// `race: <figures> [12 s] passed`, or `FAILED` and every broken promise.
    pub fn line(&self) -> String {
        let verdict = if self.passed() {
            "passed".to_owned()
        } else {
            format!("FAILED: {}", self.report.failures.join("; "))
        };
        format!(
            "{}: {} [{:.0} s] {verdict}",
            self.scenario,
            self.report.figures,
            self.took.as_secs_f64()
        )
    }
}

/// Every line every app of the run printed, for the secrets scenario.
#[derive(Default)]
pub struct Logbook {
    lines: Mutex<Vec<String>>,
}

impl Logbook {
    /// Keeps what `app` printed so far (call it once, before the app is dropped).
    pub fn keep(&self, app: &App) {
        self.lines
            .lock()
            .expect("no panics while holding the logbook")
            .extend(app.logs());
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines
            .lock()
            .expect("no panics while holding the logbook")
            .clone()
    }
}

/// One scenario: its name, what it does and promises (for docs/reliability.md), and
/// the function that runs it.
pub struct Scenario {
    pub name: &'static str,
    pub does: &'static str,
    pub run: fn(Size, &Logbook) -> Report,
}

/// Every scenario, in the order they run: secrets last, over everything logged before.
pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "race",
        does: "100 rounds of 10 buyers ordering one ticket at the same instant; then 20 \
               of the orders paid from 10 tabs at once (Stripe stand-in). One winner per \
               ticket in the answers and in orders' and tickets' databases; one charge \
               per order at the provider and in payments' database; no event in \
               `events:dead`.",
        run: race::run,
    },
    Scenario {
        name: "consumer down",
        does: "tickets' listener (the `tickets-events` component, a process of its own) \
               is stopped for 30 s while 1,000 orders are created, then started again. \
               Every ticket ends reserved by its order exactly once (tickets' database, \
               and exactly one `ticket:updated` per ticket on the stream reserving it for \
               its order); no event in `events:dead`. Nothing asks it to catch up: the \
               bus's tick does, and the figures say how many events ticks applied.",
        run: consumer_down::run,
    },
    Scenario {
        name: "redis restart",
        does: "4 users browse, order, pay and list while `redis-server` (append-only \
               file on) is stopped for 5 s and started again. Every request answers \
               2xx/4xx, or 500 and then 2xx/4xx on retry; every order reaches tickets, \
               payments and expiration, every payment orders; every acknowledged listing \
               is stored exactly once and reaches orders (tickets counted by title and \
               seller against the 201s, so a retried request that wrote a second ticket \
               shows); every outbox is relayed; no event in `events:dead`; every Redis \
               trigger subscribes again.",
        run: redis_restart::run,
    },
    Scenario {
        name: "handler failures",
        does: "On the bus's test service: 20 events whose handler fails its first 3 \
               deliveries, 5 poison events (always fail) and 50 healthy ones, \
               interleaved. Each failing event applied once on delivery 4, each poison \
               event in `events:dead` after 5 deliveries and never applied, each healthy \
               event applied once.",
        run: handler_failures::run,
    },
    Scenario {
        name: "bad input",
        does: "10,000 generated requests over every route: broken, mistyped and deeply \
               nested JSON, bodies over 64 KiB, huge and exotic Unicode strings, bad \
               ids and paths, bad cookies, tampered, re-signed, expired and `alg: none` \
               JWTs. No 5xx (a 503 only where API.md documents it: `POST /api/payments` \
               when payments are not configured, with exactly its body), no panic or \
               trap, every API error in API.md's format, no database changed by a \
               refused request (SQLite's `data_version`, then a digest of the content), \
               and no event in `events:dead`.",
        run: bad_input::run,
    },
    Scenario {
        name: "crash safety",
        does: "The host is killed with SIGKILL during writes by 4 users (sign-ups, \
               listings, orders) and started again on the same files, 5 times. Every \
               database passes `PRAGMA integrity_check` after each kill; no acknowledged \
               write is lost (each sign-up's user by its id and email, each listing and \
               order by its id); every committed ticket and order has its event on its \
               stream and is applied by every consumer group of that subject (the event's \
               id in the consumer's `inbox` and its row in the consumer's tables: orders \
               for tickets; tickets, payments and expiration for orders); no event in \
               `events:dead`.",
        run: crash::run,
    },
    Scenario {
        name: "faults under load",
        does: "12 signed-in users do the whole mix (list, edit, order, pay with one card \
               in ten declined, cancel, let orders expire in a 20 s window, browse) while \
               a fault strikes every 15 s: Redis down 2 s, the host SIGKILLed and \
               restarted, Redis back without its last second of writes, Redis down 5 s, \
               the host killed again, Redis down 2 s. Errors stop and latency is back \
               within 2x of before the first fault within 30 s of the last; no read fails \
               while Redis is away; every event applied in the end, none dead, none on \
               its stream more than 3 times; no instance shortage or database lock in \
               the host's log.",
        run: storm::run,
    },
    Scenario {
        name: "soak",
        does: "16 signed-in users do the whole mix for 10 minutes (`--soak MINUTES`; \
               6 users for a minute in `cargo test`), paying through the Stripe stand-in, \
               while Redis restarts (sometimes without its last writes) and the host is \
               SIGKILLed and restarted at random moments, every 10 to 30 s. Then an \
               independent reconciliation of what the users were told with the \
               databases, Redis and the stand-in: every acknowledged write exists and \
               nothing refused does; each order's final status agrees across orders, \
               tickets, payments and expiration, and with what its buyer was told (a \
               payment acknowledged 15 s or more before the order's 30 s deadline \
               completes it; a later one may lose the race and be refunded); orders' copy of every ticket is the ticket; one charge per paid order and \
               one refund per refunded one; every event applied by every consumer \
               group; nothing in `events:dead`; every database passes integrity_check.",
        run: soak::run,
    },
    Scenario {
        name: "secrets",
        does: "Every line every app above printed: no password of the run, no argon2 \
               hash, no JWT, no `session=` cookie, no card token (`tok_`), no Stripe key.",
        run: secrets::run,
    },
];

/// Runs every scenario at `size`, handing each outcome to `done` as it finishes.
pub fn run_all(size: Size, mut done: impl FnMut(&Outcome)) -> Vec<Outcome> {
    let logbook = Logbook::default();
    SCENARIOS
        .iter()
        .map(|scenario| {
            let outcome = run_one(scenario, size, &logbook);
            done(&outcome);
            outcome
        })
        .collect()
}

/// Runs one scenario; a panic (a harness wait that timed out, an app that did not
/// start) is a failure of that scenario, not the end of the run.
pub fn run_one(scenario: &Scenario, size: Size, logbook: &Logbook) -> Outcome {
    let started = Instant::now();
    let report = match catch_unwind(AssertUnwindSafe(|| (scenario.run)(size, logbook))) {
        Ok(report) => report,
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|text| (*text).to_owned()))
                .unwrap_or_else(|| "a panic".to_owned());
            Report {
                figures: "did not finish".to_owned(),
                failures: vec![format!("panicked: {message}")],
            }
        }
    };
    Outcome {
        scenario: scenario.name,
        report,
        took: started.elapsed(),
    }
}

/// How long a scenario waits for events to be applied before it counts what is missing.
const WAIT: Duration = Duration::from_secs(60);

/// The whole app of spin.toml on the host, with `redis`, a random `jwt_key` and a
/// short ack wait (a failed event is retried after a second), then `configure`'s
/// variables; returned once every listener is subscribed.
fn spawn(redis: Redis, configure: impl FnOnce(AppBuilder) -> AppBuilder) -> App {
    let app = App::builder(harness::workspace_root().join("spin.toml"))
        .with_redis(redis)
        .variable("jwt_key", &harness::random_hex(32))
        .variable("event_ack_wait_ms", "1000");
    let app = configure(app).start();
    for (subject, _) in bus::CONSUMERS {
        app.redis().wait_for_subscribers(subject, 1);
    }
    app
}

/// Polls `check` until it holds or `within` has passed; whether it held.
fn poll_until(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The first error message of an API error body.
fn message(body: &serde_json::Value) -> &str {
    body["errors"][0]["message"].as_str().unwrap_or_default()
}

/// `N passed, M failed`.
pub fn summary(outcomes: &[Outcome]) -> String {
    let passed = outcomes.iter().filter(|outcome| outcome.passed()).count();
    format!("{passed} passed, {} failed", outcomes.len() - passed)
}

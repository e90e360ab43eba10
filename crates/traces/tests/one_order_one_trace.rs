//! One order, one trace: the whole app on the project's host, exporting traces to a
//! local receiver (PyPI's oteltap, as `cargo xtask traces` runs it), with a buyer
//! whose client sends a W3C `traceparent` for each purchase. Everything an order
//! causes, in every service, must be in its purchase's trace, each span under the one
//! that caused it.
//!
//! Host only: Spin starts a new trace at every Redis message (it reads no context from
//! the payload), so there an order's story is joined only by the ids in the event
//! envelopes, which the orders and expiration tests check on every runtime.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use harness::{App, Client, Runtime, eventually};
use serde_json::{Value, json};
use traces::{Kind, Receiver, Span};

const WAIT: Duration = Duration::from_secs(30);
/// The payment window: the second order expires after it.
const WINDOW_SECONDS: &str = "3";

/// Where oteltap is installed: the target directory's `otel-tools/`, as xtask does.
fn tools_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    // <target>/debug/deps/<test binary>
    exe.ancestors()
        .nth(3)
        .expect("the test binary is in <target>/<profile>/deps")
        .join("otel-tools")
}

fn spawn_traced() -> (App, Receiver) {
    let python_path = traces::install(&tools_dir()).expect("oteltap installs from PyPI");
    let receiver = Receiver::start(&python_path, harness::free_port()).expect("oteltap listens");
    let app = harness::spawn_app_with(Runtime::Host, |app| {
        app.variable("order_expiration_seconds", WINDOW_SECONDS)
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint())
    });
    app.wait_for_listeners(&[
        "ticket:created",
        "ticket:updated",
        "order:created",
        "order:cancelled",
        "expiration:complete",
        "payment:created",
    ]);
    (app, receiver)
}

/// A client span of the buyer's purchase: its `traceparent`.
fn traceparent(trace_id: &str, span_id: &str) -> String {
    format!("00-{trace_id}-{span_id}-01")
}

fn listed(seller: &Client, title: &str) -> Value {
    let reply = seller.post_json("/api/tickets", &json!({"title": title, "price": 12.5}));
    assert_eq!(reply.status, 201, "{}", reply.text());
    reply.json()
}

/// Orders the ticket within the given client span, retrying while orders has not heard
/// of the ticket yet.
fn ordered_in(buyer: &Client, ticket: &Value, parent: &str) -> Value {
    let reply = eventually("the ticket to be orderable", WAIT, || {
        let reply = buyer.post_json_with(
            "/api/orders",
            &json!({"ticketId": ticket["id"]}),
            &[("traceparent", parent)],
        );
        (reply.status != 404).then_some(reply)
    });
    assert_eq!(reply.status, 201, "{}", reply.text());
    reply.json()
}

fn wait_for_status(buyer: &Client, order: &Value, status: &str) {
    eventually(&format!("the order to be {status}"), WAIT, || {
        let now = buyer
            .get(&format!("/api/orders/{}", order["id"].as_str().unwrap()))
            .json();
        (now["status"] == status).then_some(())
    });
}

/// Sleeps until just after the bus's next tick.
///
/// A doorbell's work is in the trace its envelope names, but a drain applies whatever
/// the stream holds: an event that a tick's drain (or another event's doorbell) reaches
/// first is applied in that wake's trace (docs/tracing.md). Ticks ring at each multiple
/// of five seconds of the clock (`bus::tick`), so an order placed just after one has its
/// events (and, with a three-second window, its expiry) settled before the next.
fn just_after_a_tick() {
    const TICK_MS: u128 = 5_000;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_millis();
    let next = (now / TICK_MS + 1) * TICK_MS;
    std::thread::sleep(Duration::from_millis((next - now) as u64 + 300));
}

/// A trace as received, with the questions the test asks of it.
struct Trace(Vec<Span>);

impl Trace {
    fn named(&self, name: &str) -> Vec<&Span> {
        self.0.iter().filter(|span| span.name == name).collect()
    }

    fn children(&self, parent: &Span) -> Vec<&Span> {
        self.0
            .iter()
            .filter(|span| span.parent_id.as_deref() == Some(parent.span_id.as_str()))
            .collect()
    }

    /// The one span named `name` whose parent is `parent`.
    fn child(&self, parent: &Span, name: &str) -> Option<&Span> {
        let found: Vec<&Span> = self
            .children(parent)
            .into_iter()
            .filter(|span| span.name == name)
            .collect();
        (found.len() == 1).then(|| found[0])
    }

    /// The HTTP span of `route` whose parent is the client's span `parent`, and its
    /// component's execution.
    fn request(&self, route: &str, parent: &str, component: &str) -> Option<(&Span, &Span)> {
        let server = self
            .named(route)
            .into_iter()
            .find(|span| span.parent_id.as_deref() == Some(parent))?;
        let execution = self.child(server, &format!("execute_wasm_component {component}"))?;
        Some((server, execution))
    }

    /// Whether `subject`'s doorbell, published under `publisher`, ran each of
    /// `consumers` in this trace, and each applied an event there (its inbox row).
    fn consumed(&self, publisher: &Span, subject: &str, consumers: &[&str]) -> bool {
        self.children(publisher)
            .into_iter()
            .filter(|span| span.name == format!("{subject} receive") && span.kind == Kind::Consumer)
            .any(|receive| {
                consumers.iter().all(|consumer| {
                    self.child(receive, &format!("execute_wasm_component {consumer}"))
                        .is_some_and(|execution| self.applied(execution))
                })
            })
    }

    /// Whether an execution recorded an event in its inbox (a host call under it).
    fn applied(&self, execution: &Span) -> bool {
        self.children(execution)
            .into_iter()
            .any(|call| call.kind == Kind::Client && call.name.contains("INSERT INTO inbox"))
    }

    /// Spans whose parent is not in the trace, but for the HTTP requests' (whose
    /// parents are the client's spans, which no one exports).
    fn dangling(&self) -> Vec<String> {
        let ids: BTreeSet<&str> = self.0.iter().map(|span| span.span_id.as_str()).collect();
        self.0
            .iter()
            .filter(|span| span.kind != Kind::Server)
            .filter_map(|span| span.parent_id.as_deref().map(|parent| (span, parent)))
            .filter(|(_, parent)| !ids.contains(parent))
            .map(|(span, parent)| format!("{} (parent {parent})", span.name))
            .collect()
    }
}

/// Waits until the trace has what `complete` asks and every span's parent has arrived,
/// then returns it; on a timeout, fails showing the trace as it is.
///
/// A span is exported when it ends, so a parent arrives after its children: a
/// consumer still running (the paid order's expiry reaches orders after it is paid)
/// leaves its host calls without a parent for a moment. Only a parent that never
/// comes is a broken link.
fn wait_for_trace(receiver: &Receiver, trace_id: &str, complete: impl Fn(&Trace) -> bool) -> Trace {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let trace = Trace(receiver.trace(trace_id));
        let dangling = trace.dangling();
        if complete(&trace) && dangling.is_empty() {
            return trace;
        }
        if std::time::Instant::now() > deadline {
            panic!(
                "trace {trace_id} is incomplete after {WAIT:?} (spans without their parent: \
                 {dangling:?}):\n{}",
                traces::render(&trace.0, true)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn each_order_is_one_trace_from_its_requests_through_every_service() {
    let (app, receiver) = spawn_traced();
    let seller = app.signed_up("seller");
    let first = listed(&seller, "paid for");
    let second = listed(&seller, "left to expire");

    // The first purchase, one trace from the buyer's sign-up to its payment.
    just_after_a_tick();
    let paid = "4bf92f3577b34da6a3ce929d0e0e4736";
    let (signing_up, ordering) = ("a000000000000001", "a000000000000002");
    let buyer = app.new_client();
    let reply = buyer.post_json_with(
        "/api/users/signup",
        &json!({"email": "buyer@example.com", "password": "secret"}),
        &[("traceparent", &traceparent(paid, signing_up))],
    );
    assert_eq!(reply.status, 201, "{}", reply.text());
    let order = ordered_in(&buyer, &first, &traceparent(paid, ordering));
    // payments learns of the order from its event: a 404 until then. Each attempt is
    // a client span of its own; the one that paid is `paying`.
    let mut attempt = 0u32;
    let (reply, paying) = eventually("payments to know the order", WAIT, || {
        attempt += 1;
        let span = format!("a0000000000001{attempt:02x}");
        let reply = buyer.post_json_with(
            "/api/payments",
            &json!({"token": "tok_visa", "orderId": order["id"]}),
            &[("traceparent", &traceparent(paid, &span))],
        );
        (reply.status != 404).then_some((reply, span))
    });
    let paying = paying.as_str();
    assert_eq!(reply.status, 201, "{}", reply.text());
    wait_for_status(&buyer, &order, "complete");

    // Its expiry still goes out (and changes nothing): the second order waits for it,
    // so that one sweep does not send both expiries under one doorbell.
    eventually("the paid order's expiry", WAIT, || {
        let envelopes = app.redis().envelopes("expiration:complete");
        envelopes
            .iter()
            .any(|envelope| envelope["data"]["orderId"] == order["id"])
            .then_some(())
    });

    // The second, in a trace of its own, left unpaid until it expires.
    just_after_a_tick();
    let expired = "0af7651916cd43dd8448eb211c80319c";
    let placing = "b000000000000001";
    let unpaid = ordered_in(&buyer, &second, &traceparent(expired, placing));
    wait_for_status(&buyer, &unpaid, "cancelled");

    let trace = wait_for_trace(&receiver, paid, |trace| {
        let signed_up = trace
            .request("POST /api/users/...", signing_up, "auth-api")
            .is_some();
        let ordered = trace.request("POST /api/orders/...", ordering, "orders-api");
        let paid = trace.request("POST /api/payments/...", paying, "payments-api");
        signed_up
            && ordered.is_some_and(|(_, execution)| {
                trace.consumed(
                    execution,
                    "order:created",
                    &["tickets-events", "payments-events", "expiration-events"],
                ) && trace.consumed(execution, "ticket:updated", &["orders-events"])
            })
            && paid.is_some_and(|(_, execution)| {
                trace.consumed(execution, "payment:created", &["orders-events"])
            })
    });
    // A paid order is never cancelled (its expiry, which expiration publishes all the
    // same, changes nothing), and nothing of the other order is in its trace.
    assert!(trace.named("order:cancelled receive").is_empty());

    let trace = wait_for_trace(&receiver, expired, |trace| {
        trace
            .request("POST /api/orders/...", placing, "orders-api")
            .is_some_and(|(_, execution)| {
                trace.consumed(
                    execution,
                    "order:created",
                    &["tickets-events", "payments-events", "expiration-events"],
                ) && trace.consumed(execution, "expiration:complete", &["orders-events"])
                    && trace.consumed(
                        execution,
                        "order:cancelled",
                        &["tickets-events", "payments-events"],
                    )
                    // Reserved, then released.
                    && trace.named("ticket:updated receive").len() >= 2
            })
    });
    assert!(trace.named("payment:created receive").is_empty());
    eprintln!("{}", traces::render(&trace.0, false));
}

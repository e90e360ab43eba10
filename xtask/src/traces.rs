//! `cargo xtask traces`: a local OTLP receiver (PyPI's oteltap, through `crates/traces`)
//! that `cargo xtask up` exports the app's traces to while it runs, printing each trace
//! of the app's work as a tree with durations. `--purchase` also buys a ticket in one
//! trace (sign-up, listing, order, payment), so that one tree shows every service.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use traces::{Kind, Receiver, Span};

use crate::{Project, step};

/// OTLP/HTTP's default port: what a user's `OTEL_EXPORTER_OTLP_ENDPOINT` most likely says.
const PORT: u16 = 4318;
/// Where `cargo xtask up` serves.
const APP: &str = "http://127.0.0.1:3000";
/// A trace is printed once no span of it has arrived for this long.
const SETTLED: Duration = Duration::from_secs(2);

struct Options {
    purchase: bool,
    all: bool,
    host_calls: bool,
}

impl Options {
    fn parse(args: &[String]) -> Result<Options> {
        let mut options = Options {
            purchase: false,
            all: false,
            host_calls: false,
        };
        for arg in args {
            match arg.as_str() {
                "--purchase" => options.purchase = true,
                "--all" => options.all = true,
                "--host-calls" => options.host_calls = true,
                other => bail!("`traces` takes --purchase, --all and --host-calls, not `{other}`"),
            }
        }
        Ok(options)
    }
}

/// The file that tells `cargo xtask up` where a running `traces` receives.
pub fn endpoint_file(project: &Project) -> PathBuf {
    tools_dir(project).join("endpoint")
}

fn tools_dir(project: &Project) -> PathBuf {
    project.target_dir().join("otel-tools")
}

/// The endpoint of a `cargo xtask traces` that is running, if one is.
pub fn running_receiver(project: &Project) -> Option<String> {
    let endpoint = std::fs::read_to_string(endpoint_file(project)).ok()?;
    let endpoint = endpoint.trim().to_owned();
    let address: SocketAddr = endpoint.strip_prefix("http://")?.parse().ok()?;
    // The file outlives a receiver stopped with Ctrl-C: only a listening one counts.
    TcpStream::connect_timeout(&address, Duration::from_millis(200)).ok()?;
    Some(endpoint)
}

pub fn run(project: &Project, args: &[String]) -> Result<()> {
    let options = Options::parse(args)?;
    let tools = tools_dir(project);
    if !tools.join("python").join("oteltap").is_dir() {
        step(&format!(
            "Installing the receiver from PyPI ({})",
            traces::OTELTAP
        ));
    }
    let python_path = traces::install(&tools)?;
    step(&format!("Receiving OTLP/HTTP traces on 127.0.0.1:{PORT}"));
    let receiver = Receiver::start(&python_path, PORT)
        .with_context(|| format!("is port {PORT} taken (another collector)?"))?;
    std::fs::write(endpoint_file(project), receiver.endpoint())?;
    eprintln!(
        "`cargo xtask up` exports here while this runs (start it, or restart it, in another \
         terminal); with Spin: OTEL_EXPORTER_OTLP_ENDPOINT={} spin up …\n\
         Each trace of the app's work is printed once it settles ({}s without a new span); \
         GET-only and tick traces are left out unless --all. Ctrl-C stops.",
        receiver.endpoint(),
        SETTLED.as_secs()
    );
    let mut purchase = options
        .purchase
        .then(|| std::thread::spawn(|| purchase().map_err(|err| format!("{err:#}"))));
    let mut printed: HashMap<String, usize> = HashMap::new();
    let mut seen: HashMap<String, (usize, Instant)> = HashMap::new();
    let mut purchased: Option<String> = None;
    loop {
        std::thread::sleep(Duration::from_millis(500));
        if purchase.as_ref().is_some_and(|thread| thread.is_finished()) {
            let thread = purchase.take().expect("checked above");
            match thread.join().expect("the purchase does not panic") {
                Ok(trace_id) => {
                    eprintln!(
                        "\nthe purchase is trace {trace_id}: its tree follows once it settles"
                    );
                    purchased = Some(trace_id);
                }
                Err(err) => eprintln!("\nthe purchase failed: {err}"),
            }
        }
        let mut by_trace: HashMap<String, Vec<Span>> = HashMap::new();
        for span in receiver.spans() {
            by_trace
                .entry(span.trace_id.clone())
                .or_default()
                .push(span);
        }
        for (trace_id, spans) in by_trace {
            let now = Instant::now();
            let entry = seen.entry(trace_id.clone()).or_insert((0, now));
            if entry.0 != spans.len() {
                *entry = (spans.len(), now);
                continue;
            }
            let is_settled = now.duration_since(entry.1) >= SETTLED;
            let is_new = printed.get(&trace_id) != Some(&spans.len());
            let is_wanted = options.all
                || purchased.as_deref() == Some(trace_id.as_str())
                || is_interesting(&spans);
            if is_settled && is_new && is_wanted {
                println!("\n{}", traces::render(&spans, options.host_calls));
                printed.insert(trace_id, spans.len());
            }
        }
    }
}

/// A trace that changed something: a request other than GET or HEAD, or an event
/// consumed in a trace that began elsewhere. Reads and the bus's ticks are not.
fn is_interesting(spans: &[Span]) -> bool {
    spans.iter().any(|span| match span.kind {
        Kind::Server => !span.name.starts_with("GET ") && !span.name.starts_with("HEAD "),
        Kind::Consumer => span.parent_id.is_some(),
        _ => false,
    })
}

/// Buys a ticket at [`APP`] in one trace: a seller signs up and lists it, a buyer signs
/// up, orders it and pays (the sandbox's `tok_visa`). Returns the trace id.
fn purchase() -> Result<String> {
    let client = || {
        reqwest::blocking::Client::builder()
            .cookie_store(true)
            .timeout(Duration::from_secs(30))
            .build()
    };
    let (seller, buyer) = (client()?, client()?);
    let trace_id = crate::up::random_hex(16)?;
    // One client span per request, as an instrumented client would make.
    let mut span = 0u64;
    let mut post =
        |client: &reqwest::blocking::Client, path: &str, body: Value| -> Result<(u16, Value)> {
            span += 1;
            let reply = client
                .post(format!("{APP}{path}"))
                .header("traceparent", format!("00-{trace_id}-{span:016x}-01"))
                .json(&body)
                .send()
                .with_context(|| format!("POST {path}"))?;
            let status = reply.status().as_u16();
            Ok((status, reply.json().unwrap_or(Value::Null)))
        };

    let deadline = Instant::now() + Duration::from_secs(600);
    while seller
        .get(format!("{APP}/api/users/currentuser"))
        .send()
        .is_err()
    {
        if Instant::now() > deadline {
            bail!("the app did not answer at {APP}: is `cargo xtask up` running?");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let suffix = &trace_id[..8];
    let (status, _) = post(
        &seller,
        "/api/users/signup",
        json!({"email": format!("seller-{suffix}@example.com"), "password": "password"}),
    )?;
    expect(status, 201, "the seller's sign-up")?;
    let (status, ticket) = post(
        &seller,
        "/api/tickets",
        json!({"title": "Traced concert", "price": 25}),
    )?;
    expect(status, 201, "the listing")?;
    let (status, _) = post(
        &buyer,
        "/api/users/signup",
        json!({"email": format!("buyer-{suffix}@example.com"), "password": "password"}),
    )?;
    expect(status, 201, "the buyer's sign-up")?;
    // orders learns of the ticket from its event: a 404 until then.
    let order = loop {
        let (status, order) = post(&buyer, "/api/orders", json!({"ticketId": ticket["id"]}))?;
        match status {
            201 => break order,
            404 if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
            other => bail!("the order answered {other}, not 201"),
        }
    };
    // payments too learns of the order from its event.
    loop {
        let (status, _) = post(
            &buyer,
            "/api/payments",
            json!({"token": "tok_visa", "orderId": order["id"]}),
        )?;
        match status {
            201 => break,
            404 if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
            other => bail!("the payment answered {other}, not 201"),
        }
    }
    Ok(trace_id)
}

fn expect(status: u16, wanted: u16, what: &str) -> Result<()> {
    if status != wanted {
        bail!("{what} answered {status}, not {wanted}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn span(name: &str, kind: Kind, parent: Option<&str>) -> Span {
        Span {
            trace_id: "t".into(),
            span_id: "s".into(),
            parent_id: parent.map(str::to_owned),
            name: name.into(),
            kind,
            start_ns: 0,
            end_ns: 1,
            attributes: BTreeMap::new(),
            is_error: false,
        }
    }

    #[test]
    fn changes_are_printed_reads_and_ticks_are_not() {
        assert!(is_interesting(&[span(
            "POST /api/orders/...",
            Kind::Server,
            None
        )]));
        assert!(is_interesting(&[span(
            "order:created receive",
            Kind::Consumer,
            Some("p")
        )]));
        assert!(!is_interesting(&[span(
            "GET /api/tickets/...",
            Kind::Server,
            None
        )]));
        assert!(!is_interesting(&[span(
            "__keyevent@0__:expired receive",
            Kind::Consumer,
            None
        )]));
    }
}

//! `bench`: the app's throughput, latency, event pipeline, start-up and memory, next to
//! a native baseline, in one run on 127.0.0.1.
//!
//! `bench run [--out FILE]` starts a real Redis and the app on the host, lists tickets
//! through its API, and loads each route with concurrent keep-alive connections; the
//! same routes are served by `bench native` (hyper and rusqlite with the services' SQL,
//! on a copy of the same databases, see `native.rs`) and by a bare hyper "hello"
//! (`bench hello`), each its own process like the host. When real Spin is found
//! (`TICKETING_SPIN`, else `spin` on PATH), the same app runs on it too, with its own
//! Redis and the same market, and takes the same loads. It prints a report (also
//! written to FILE as markdown). `cargo xtask bench` builds everything in release
//! first and runs it.

mod expiry;
mod load;
mod market;
mod native;
mod pipeline;
mod reference;
mod startup;

use std::convert::Infallible;
use std::fmt::Write as _;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use harness::{App, Redis, Runtime};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::json;

use crate::load::{Load, Pool, Request, Requests, Summary};
use crate::market::{Listed, Market, Markets};

/// Connections for the throughput runs.
const CONNECTIONS: usize = 32;
/// Sign-in is bounded by argon2 (19 MiB per hash): fewer connections.
const SIGN_IN_CONNECTIONS: usize = 8;
const WARM_UP: Duration = Duration::from_millis(500);
const MEASURE: Duration = Duration::from_secs(3);
/// Tickets for sale in the read benchmarks, then in the scaled ones.
const TICKETS: usize = 1_000;
const MANY_TICKETS: usize = 10_000;
/// Fresh tickets for `POST /api/orders` on the app, on each runtime (more than 3.5 s of
/// it can use), and for the baseline, which is faster (added to its copy of orders'
/// replica).
const APP_ORDER_POOL: usize = 6_000;
const NATIVE_ORDER_POOL: usize = 60_000;
/// The open-loop row: one ticket's page at this many requests/s, whatever the answers
/// take, on enough connections that a slow answer does not hold the next one back.
const OPEN_LOOP_RATE: f64 = 4_000.0;
const OPEN_LOOP_CONNECTIONS: usize = 64;
/// Orders timed one by one through the event pipeline.
const PIPELINE_ORDERS: usize = 500;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("hello") => {
            let listen = args.get(2).map_or("127.0.0.1:0", String::as_str).parse()?;
            hello_server(listen)
        }
        Some("native") => {
            let [_, data, redis_url, jwt_key] = &args[..] else {
                bail!("usage: bench native <data dir> <redis url> <jwt key>");
            };
            native::serve("127.0.0.1:0".parse()?, Path::new(data), redis_url, jwt_key)
        }
        Some("load") => {
            let [_, url, path, connections, seconds] = &args[..] else {
                bail!("usage: bench load <http://host:port> <path> <connections> <seconds>");
            };
            load_once(url, path, connections.parse()?, seconds.parse()?)
        }
        Some("expiry") => {
            println!("{}", expiry::measure()?.summary());
            Ok(())
        }
        Some("run") => {
            let mut out = None;
            let mut reference = None;
            let mut options = args[1..].iter();
            while let Some(option) = options.next() {
                match option.as_str() {
                    "--out" => out = Some(options.next().context("--out needs a file")?.clone()),
                    "--reference" => {
                        let (Some(root), Some(host)) = (options.next(), options.next()) else {
                            bail!("--reference needs the reference's checkout and its host");
                        };
                        reference = Some(reference::Build {
                            root: root.into(),
                            host: host.into(),
                        });
                    }
                    other => bail!("unknown option {other}"),
                }
            }
            run(out, reference.as_ref())
        }
        _ => bail!(
            "usage: bench run [--out FILE] [--reference CHECKOUT HOST] | bench expiry | bench hello [--listen ADDR] \
             | bench native <data dir> <redis url> <jwt key> \
             | bench load <http://host:port> <path> <connections> <seconds>"
        ),
    }
}

/// `GET <path>` on a running server for `seconds`, for profiling a route by hand
/// (`perf record -p <host pid>` meanwhile).
fn load_once(url: &str, path: &str, connections: usize, seconds: u64) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let summary = runtime.block_on(
        Load::new(url, connections, Requests::Same(Request::get(path)))
            .run(WARM_UP, Duration::from_secs(seconds)),
    )?;
    println!(
        "{:.0} req/s, p50 {}, p99 {}, errors {}",
        summary.requests_per_second(),
        micros(summary.percentile(50.0)),
        micros(summary.percentile(99.0)),
        summary.errors
    );
    Ok(())
}

/// The servers each route is loaded on: the app on the project's host, the native
/// baseline, and the app on real Spin when one is found.
#[derive(Clone, Copy)]
enum Side {
    Host,
    Native,
    Spin,
}

/// One route measured on the host, on the baseline, and on Spin when it is measured.
struct Pair {
    name: String,
    connections: usize,
    host: Summary,
    native: Summary,
    spin: Option<Summary>,
}

impl Pair {
    /// The host's requests/s over the baseline's: the headline figure.
    fn ratio(&self) -> f64 {
        self.host.requests_per_second() / self.native.requests_per_second()
    }

    /// Spin's requests/s over the baseline's.
    fn spin_ratio(&self) -> Option<f64> {
        let spin = self.spin.as_ref()?;
        Some(spin.requests_per_second() / self.native.requests_per_second())
    }

    fn errors(&self) -> usize {
        self.host.errors + self.native.errors + self.spin.as_ref().map_or(0, |spin| spin.errors)
    }
}

/// An app under load, and its buyer's session cookie.
struct Endpoint<'a> {
    app: &'a App,
    cookie: String,
}

impl<'a> Endpoint<'a> {
    fn of(market: &Market<'a>) -> Endpoint<'a> {
        Endpoint {
            app: market.app,
            cookie: market.buyer_cookie.clone(),
        }
    }

    /// Waits until the app's services have applied every event its load published: that
    /// work (an order's, mostly) would otherwise run during the next server's load.
    fn settle(&self) {
        harness::eventually(
            "the services to apply every event",
            Duration::from_secs(120),
            || self.app.redis().every_group_caught_up().then_some(()),
        );
    }
}

/// Loads each route on the app on the host, on the baseline, then on the app on Spin.
struct Bench<'a> {
    runtime: &'a tokio::runtime::Runtime,
    host: Endpoint<'a>,
    /// None when Spin is not measured: its loads are skipped.
    spin: Option<Endpoint<'a>>,
}

impl Bench<'_> {
    /// `requests` in a closed loop, on each server.
    fn pair(
        &self,
        name: &str,
        native: &Server,
        connections: usize,
        requests: impl Fn(Side) -> Requests,
        signed_in: bool,
    ) -> Result<Pair> {
        self.pair_with(name, native, connections, requests, |load, cookie| {
            load.cookie(signed_in.then_some(cookie))
        })
    }

    /// `requests` at a fixed arrival rate, on each server.
    fn open_loop_pair(
        &self,
        name: &str,
        native: &Server,
        requests: impl Fn(Side) -> Requests,
    ) -> Result<Pair> {
        self.pair_with(name, native, OPEN_LOOP_CONNECTIONS, requests, |load, _| {
            load.open_loop(OPEN_LOOP_RATE)
        })
    }

    /// Loads the host, the baseline, then Spin, each with the `requests` of its side
    /// (the ids it knows) and as `configure` sets the load up, given that server's
    /// buyer cookie; after an app's load, waits until it has settled.
    fn pair_with(
        &self,
        name: &str,
        native: &Server,
        connections: usize,
        requests: impl Fn(Side) -> Requests,
        configure: impl Fn(Load, &str) -> Load,
    ) -> Result<Pair> {
        eprintln!("loading {name} with {connections} connections ...");
        let load = |side, url: &str, cookie: &str| {
            let load = configure(Load::new(url, connections, requests(side)), cookie);
            self.runtime.block_on(load.run(WARM_UP, MEASURE))
        };
        let load_app = |side, endpoint: &Endpoint| {
            let summary = load(side, endpoint.app.base_url(), &endpoint.cookie);
            endpoint.settle();
            summary
        };
        Ok(Pair {
            name: name.to_owned(),
            connections,
            host: load_app(Side::Host, &self.host)?,
            // The baseline's users are a copy of the host's: so is its buyer.
            native: load(Side::Native, &native.url, &self.host.cookie)?,
            spin: self
                .spin
                .as_ref()
                .map(|spin| load_app(Side::Spin, spin))
                .transpose()?,
        })
    }
}

/// The same request every time, on every server.
fn same(request: Request) -> impl Fn(Side) -> Requests {
    move |_| Requests::Same(request.clone())
}

/// Every listed ticket's page in turn, by the ids each server knows.
fn pages(listed: &Listed) -> impl Fn(Side) -> Requests + '_ {
    |side| ticket_pages(listed.ids(side))
}

/// The pages of these tickets in turn.
fn ticket_pages(ids: &[String]) -> Requests {
    Requests::Pool(Pool::cycle(
        ids.iter()
            .map(|id| Request::get(format!("/api/tickets/{id}")))
            .collect(),
    ))
}

/// An order on each of `tickets`, once each.
fn orders(tickets: &[String]) -> Requests {
    Requests::Pool(Pool::once(
        tickets
            .iter()
            .map(|id| Request::post_json("/api/orders", &json!({"ticketId": id})))
            .collect(),
    ))
}

/// The app of spin.toml on `runtime`, with a Redis of its own and the run's `jwt_key`.
fn start_app(runtime: Runtime, jwt_key: &str) -> App {
    app_of(&harness::workspace_root(), None, runtime, jwt_key)
}

/// The app of `checkout`'s spin.toml on `runtime` (on `host` instead of this checkout's
/// host, when given), with a Redis of its own and the run's `jwt_key`.
fn app_of(checkout: &Path, host: Option<&Path>, runtime: Runtime, jwt_key: &str) -> App {
    let mut app = App::builder(checkout.join("spin.toml")).runtime(runtime);
    if let Some(host) = host {
        app = app.host_binary(host);
    }
    app.with_redis(Redis::start())
        .variable("jwt_key", jwt_key)
        .start()
}

/// `checkout`'s probe app (its `/hello` does nothing but answer), as `app_of` starts an
/// app.
fn probe_of(checkout: &Path, host: Option<&Path>, runtime: Runtime) -> App {
    let mut app = App::builder(checkout.join("host/probe/spin.toml")).runtime(runtime);
    if let Some(host) = host {
        app = app.host_binary(host);
    }
    app.with_redis(Redis::start())
        .variable("secret_word", "bench")
        .start()
}

fn run(out: Option<String>, reference: Option<&reference::Build>) -> Result<()> {
    let started = Instant::now();
    let jwt_key = harness::random_hex(32);
    let spin = Runtime::spin();
    eprintln!("starting Redis and the app on the host");
    let app = start_app(Runtime::Host, &jwt_key);
    let on_spin = spin.clone().map(|spin| {
        eprintln!("Spin found: starting the app on it too, with a Redis of its own");
        start_app(spin, &jwt_key)
    });
    let mut markets = Markets::open(&app, on_spin.as_ref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let bench = Bench {
        runtime: &runtime,
        host: Endpoint::of(&markets.host),
        spin: markets.spin.as_ref().map(Endpoint::of),
    };
    let copies = tempfile::tempdir()?;
    let native_redis = Redis::start();

    eprintln!("listing {TICKETS} tickets");
    let tickets = markets.list(TICKETS)?;
    markets.wait_until_orders_knows_all()?;
    markets.host.snapshot(copies.path())?;
    let native = Server::native(copies.path(), &native_redis.url(), &jwt_key)?;

    let mut routes = Vec::new();
    let sampler = startup::RssSampler::start(app.pid());
    routes.push(bench.pair(
        "GET /api/tickets (1,000 for sale)",
        &native,
        CONNECTIONS,
        same(Request::get("/api/tickets")),
        false,
    )?);
    let rss_under_load = sampler.finish();
    routes.push(bench.pair(
        "GET /api/tickets/:id",
        &native,
        CONNECTIONS,
        pages(&tickets),
        false,
    )?);
    let open_loop = bench.open_loop_pair(
        &format!("GET /api/tickets/:id at {OPEN_LOOP_RATE:.0} req/s (open loop)"),
        &native,
        pages(&tickets),
    )?;
    routes.push(bench.pair(
        "GET /api/users/currentuser (signed in)",
        &native,
        CONNECTIONS,
        same(Request::get("/api/users/currentuser")),
        true,
    )?);
    let sign_in = bench.pair(
        "POST /api/users/signin",
        &native,
        SIGN_IN_CONNECTIONS,
        same(Request::post_json(
            "/api/users/signin",
            &json!({"email": markets.host.buyer_email, "password": market::BUYER_PASSWORD}),
        )),
        false,
    )?;
    let mut scaling = Vec::new();
    for connections in [1, 8, 64] {
        scaling.push(bench.pair(
            "GET /api/tickets, 1,000 tickets",
            &native,
            connections,
            same(Request::get("/api/tickets")),
            false,
        )?);
    }
    drop(native);
    // The reference, while today's app has the same 1,000 tickets and has served the
    // same loads as the reference will have.
    let reference = reference
        .map(|build| {
            let today = reference::Today {
                app_url: app.base_url(),
                pages: ticket_pages(tickets.ids(Side::Host)),
            };
            reference::measure(&runtime, build, &today, spin.as_ref(), &jwt_key)
        })
        .transpose()?;

    eprintln!("listing {APP_ORDER_POOL} tickets to order, and {PIPELINE_ORDERS} on the host");
    let order_pool = markets.list(APP_ORDER_POOL)?;
    let pipeline_tickets = markets.host.list(PIPELINE_ORDERS)?;
    markets.wait_until_orders_knows_all()?;
    markets.host.snapshot(copies.path())?;
    let native_pool = market::add_order_pool(copies.path(), NATIVE_ORDER_POOL)?;
    let native = Server::native(copies.path(), &native_redis.url(), &jwt_key)?;
    routes.push(bench.pair(
        "POST /api/orders (each on a fresh ticket)",
        &native,
        CONNECTIONS,
        |side| match side {
            Side::Native => orders(&native_pool),
            Side::Host | Side::Spin => orders(order_pool.ids(side)),
        },
        true,
    )?);
    drop(native);

    eprintln!("timing {PIPELINE_ORDERS} orders through the event pipeline");
    let buyer = app.new_client();
    let reply = buyer.post_json(
        "/api/users/signin",
        &json!({"email": markets.host.buyer_email, "password": market::BUYER_PASSWORD}),
    );
    if reply.status != 200 {
        bail!("signing the buyer in answered {}", reply.status);
    }
    let pipeline = pipeline::measure(&app, &buyer, &pipeline_tickets)?;

    eprintln!("listing tickets up to {MANY_TICKETS} for sale");
    let many = markets.list_up_to(MANY_TICKETS)?;
    markets.wait_until_orders_knows_all()?;
    markets.host.snapshot(copies.path())?;
    let native = Server::native(copies.path(), &native_redis.url(), &jwt_key)?;
    scaling.push(bench.pair(
        "GET /api/tickets, 10,000 tickets",
        &native,
        8,
        same(Request::get("/api/tickets")),
        false,
    )?);
    scaling.push(bench.pair(
        "GET /api/tickets/:id, 10,000 tickets",
        &native,
        CONNECTIONS,
        pages(&many),
        false,
    )?);
    drop(native);
    drop(markets);
    drop(on_spin);
    drop(app);

    eprintln!("start-up: with an empty compiled-code cache, then with a warm one");
    let start_up = startup::measure()?;
    let trivial = trivial_routes(&runtime, spin.as_ref())?;
    eprintln!(
        "expiration: {} orders with a {}-second window ...",
        expiry::ORDERS,
        expiry::WINDOW_SECONDS
    );
    let lateness = expiry::measure()?;

    let mut report = String::new();
    header(&mut report, spin.as_ref());
    goals_section(&mut report, &routes, &trivial, reference.as_ref());
    routes_section(&mut report, &routes, &sign_in, &open_loop);
    scaling_section(&mut report, &scaling);
    let _ = writeln!(report, "\n## The event pipeline\n");
    let _ = writeln!(
        report,
        "`POST /api/orders` until the ticket shows the order's id in tickets' database \
         (orders commits and relays `order:created`; the doorbell wakes tickets' listener, \
         which reserves the ticket in its own transaction), {} orders one at a time: \
         p50 {}, p99 {}, max {} (goal: p99 under 50 ms).\n",
        pipeline.len(),
        duration(load::percentile(&pipeline, 50.0)),
        duration(load::percentile(&pipeline, 99.0)),
        duration(load::percentile(&pipeline, 100.0)),
    );
    let _ = writeln!(report, "{}", lateness.summary());
    let _ = writeln!(report, "\n## Start-up and memory\n");
    let _ = writeln!(
        report,
        "From starting the host to the first 200 of `GET /api/tickets`: {} with an empty \
         compiled-code cache (every component compiled), {} with a warm one.\n\n\
         Resident memory of the host: {} idle after its first request; at most {} under \
         {CONNECTIONS} connections on `GET /api/tickets` (1,000 tickets).",
        duration(Some(start_up.cold)),
        duration(Some(start_up.warm)),
        mebibytes(start_up.idle_rss_kib),
        mebibytes(rss_under_load),
    );
    trivial_section(&mut report, &trivial);
    let _ = writeln!(
        report,
        "\nThe whole run took {:.0} s.",
        started.elapsed().as_secs_f64()
    );

    print!("{report}");
    if let Some(out) = out {
        std::fs::write(&out, &report).with_context(|| format!("writing {out}"))?;
        eprintln!("written to {out}");
    }
    Ok(())
}

fn mebibytes(kib: u64) -> String {
    format!("{:.0} MiB", kib as f64 / 1024.0)
}

fn duration(value: Option<Duration>) -> String {
    value.map_or_else(|| "n/a".to_owned(), micros)
}

fn header(text: &mut String, spin: Option<&Runtime>) {
    let _ = writeln!(text, "# Benchmarks\n");
    if let Some(changes) = uncommitted_changes() {
        eprintln!("WARNING: the working tree has uncommitted changes; the report says so");
        let _ = writeln!(
            text,
            "**NOT FROM A CLEAN TREE: commit {} plus uncommitted changes ({changes}). These \
             figures belong to no commit; do not compare them with others.**\n",
            commit()
        );
    }
    let _ = writeln!(
        text,
        "`cargo xtask bench`, {} on {}; commit {}. Everything on 127.0.0.1; the load \
         generator shares the machine with the servers. Each figure: {} ms of warm-up, then \
         {} s of closed-loop load on keep-alive connections (each sends its next request \
         when the answer is in); errors are the requests without a 2xx answer, a refused \
         or broken connection included (the next request opens a new one). The app runs \
         on the project's host (release), with its real Redis and SQLite files. {}",
        date(),
        machine(),
        commit(),
        WARM_UP.as_millis(),
        MEASURE.as_secs(),
        spin_note(spin),
    );
}

/// What the report says of real Spin, once: which Spin ran the app too, or why none did.
fn spin_note(spin: Option<&Runtime>) -> String {
    let Some(Runtime::Spin(path)) = spin else {
        return "Real Spin was not measured: none was found (`TICKETING_SPIN` names a Spin \
                binary, else `spin` on PATH; 3.6 or newer), so there are no Spin columns and \
                its goal is not evaluated."
            .to_owned();
    };
    let program = path.to_string_lossy();
    let version = command_output(&program, &["--version"]).unwrap_or_default();
    format!(
        "The same app also runs on real Spin (`{program}`: {version}), with a Redis of its \
         own, the same `jwt_key` and the same market (the same tickets listed through its \
         API, orders' copy caught up, a buyer with the same email), under the same loads, \
         after the host's and the baseline's: the Spin columns; Spin/native is its \
         requests/s over the baseline's."
    )
}

/// A table of routes measured on each server; Spin's columns when it was measured.
fn pair_table(text: &mut String, pairs: &[&Pair]) {
    let with_spin = pairs.iter().any(|pair| pair.spin.is_some());
    let (spin, spin_rule) = if with_spin {
        (
            " Spin req/s | p50 | p99 | Spin/native |",
            "---:|---:|---:|---:|",
        )
    } else {
        ("", "")
    };
    let _ = writeln!(
        text,
        "| route | connections | host req/s | p50 | p99 | native req/s | p50 | p99 | \
         wasm/native |{spin} errors |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|{spin_rule}---:|"
    );
    for pair in pairs {
        let spin = pair
            .spin
            .as_ref()
            .zip(pair.spin_ratio())
            .map_or_else(String::new, |(spin, ratio)| {
                format!(" {} | {ratio:.2} |", figures(spin))
            });
        let _ = writeln!(
            text,
            "| {} | {} | {} | {} | {:.2} |{spin} {} |",
            pair.name,
            pair.connections,
            figures(&pair.host),
            figures(&pair.native),
            pair.ratio(),
            pair.errors(),
        );
    }
}

/// `req/s | p50 | p99` of one load.
fn figures(summary: &Summary) -> String {
    format!(
        "{:.0} | {} | {}",
        summary.requests_per_second(),
        micros(summary.percentile(50.0)),
        micros(summary.percentile(99.0)),
    )
}

/// The lowest and highest of `ratio` over the read routes, as `0.09–0.37`.
fn read_range(routes: &[Pair], ratio: impl Fn(&Pair) -> Option<f64>) -> Option<String> {
    let reads: Vec<f64> = routes
        .iter()
        .filter(|pair| pair.name.starts_with("GET"))
        .filter_map(ratio)
        .collect();
    let lowest = reads.iter().copied().reduce(f64::min)?;
    let highest = reads.iter().copied().reduce(f64::max)?;
    Some(format!("{lowest:.2}–{highest:.2}"))
}

fn routes_section(text: &mut String, routes: &[Pair], sign_in: &Pair, open_loop: &Pair) {
    let _ = writeln!(text, "\n## The app next to a native baseline\n");
    let _ = writeln!(
        text,
        "\"native\" is `bench native`: hyper and rusqlite compiled for the machine, running \
         the services' SQL with their JSON types on a copy of the same databases, and for \
         an order the same outbox row relayed to Redis (bench/src/native.rs says what it \
         does differently: it keeps its connections open). wasm/native is the ratio of \
         requests/s, the headline figure (goal: at least 0.5 for reads).\n"
    );
    let table: Vec<&Pair> = routes.iter().chain([sign_in]).collect();
    pair_table(text, &table);
    let host_reads = read_range(routes, |pair| Some(pair.ratio())).unwrap_or_default();
    let spin_reads = read_range(routes, Pair::spin_ratio)
        .map(|range| format!(" On real Spin: {range}."))
        .unwrap_or_default();
    let _ = writeln!(
        text,
        "\nReads: the host serves {host_reads} of the baseline's requests/s (goal: at least \
         0.5).{spin_reads} Sign-in is bounded by its password hash (argon2id, 19 MiB, 2 \
         passes) on every side, by design; it is measured with {SIGN_IN_CONNECTIONS} \
         connections. The orders' pools: {APP_ORDER_POOL} fresh tickets on the app (on each \
         runtime), {NATIVE_ORDER_POOL} on the baseline; a run ends early when its pool is \
         used up. \
         An order on the host is more work than the baseline's: in the same process and on \
         the same two cores, tickets reserves the ticket, expiration schedules the expiry, \
         payments copies the order and orders applies the ticket's new version, each in a \
         transaction of its own with its inbox row and its relay (rollback-journal SQLite: \
         every commit waits for the disk); the baseline does orders' part only."
    );
    let _ = writeln!(
        text,
        "\nThe same page at a fixed arrival rate (open loop: {OPEN_LOOP_RATE:.0} requests \
         due per second on {OPEN_LOOP_CONNECTIONS} connections, whatever the answers take; \
         a request that waits for a free connection counts the wait), so queueing shows \
         in the latency rather than as fewer requests:\n"
    );
    pair_table(text, &[open_loop]);
}

fn goals_section(
    text: &mut String,
    routes: &[Pair],
    trivial: &Trivial,
    reference: Option<&reference::Figures>,
) {
    use reference::recorded;
    let list = &routes[0];
    let page = &routes[1];
    let current_user = &routes[2];
    let hello = trivial.throughput[1].requests_per_second();
    let bare = trivial.throughput[0].requests_per_second();
    let instance = trivial.instances.p50();
    let percent = |value: f64| format!("{:.0}%", value * 100.0);
    let ratio = |value: f64| format!("{value:.2}");
    let met = |met: bool| if met { "yes" } else { "**no**" };
    // "2× the reference" compares the medians of the loads taken in turns with the
    // reference; without it, this run's figures with those recorded elsewhere.
    let (now_hello, then_hello) = reference.map_or((hello, recorded::TRIVIAL), |then| {
        (then.trivial.today_median(), then.trivial.then_median())
    });
    let (now_page, then_page) = reference.map_or(
        (page.host.requests_per_second(), recorded::TICKET_PAGE),
        |then| (then.page.today_median(), then.page.then_median()),
    );
    let then_of_native = |then: fn(&reference::Figures) -> f64, pair: &Pair, recorded| {
        reference.map_or(recorded, |figures| {
            then(figures) / pair.native.requests_per_second()
        })
    };
    // "2× the reference" compares requests/s across runs: only judged on one machine.
    let twice = |now: f64, then: f64| {
        if reference.is_some() {
            met(now >= 2.0 * then)
        } else {
            "not judged"
        }
    };
    let rows: [(&str, String, String, &str); 8] = [
        (
            "trivial route: at least 2× the reference's req/s",
            format!("{then_hello:.0}"),
            format!("{now_hello:.0} ({:.2}×)", now_hello / then_hello),
            twice(now_hello, then_hello),
        ),
        (
            "trivial route: at least 30% of bare hyper",
            percent(
                reference.map_or(recorded::TRIVIAL / recorded::BARE_HYPER, |_| {
                    then_hello / bare
                }),
            ),
            percent(hello / bare),
            met(hello >= 0.3 * bare),
        ),
        (
            "instantiation p50: at most 10 µs",
            reference
                .map_or(Some(recorded::INSTANCE_P50_MICROS), |then| {
                    then.instance_p50_micros
                })
                .map_or_else(|| "n/a".to_owned(), |micros| format!("{micros} µs")),
            instance.map_or_else(|| "n/a".to_owned(), |micros| format!("{micros} µs")),
            met(instance.is_some_and(|micros| micros <= 10)),
        ),
        (
            "`GET /api/tickets/:id`: at least 2× the reference's req/s",
            format!("{then_page:.0}"),
            format!("{now_page:.0} ({:.2}×)", now_page / then_page),
            twice(now_page, then_page),
        ),
        (
            "`GET /api/tickets/:id`: at least 0.25 of native",
            ratio(then_of_native(
                |then| then.page.then_median(),
                page,
                recorded::TICKET_PAGE_RATIO,
            )),
            ratio(page.ratio()),
            met(page.ratio() >= 0.25),
        ),
        (
            "`GET /api/users/currentuser`: at least 0.25 of native",
            ratio(then_of_native(
                |then| then.current_user.requests_per_second(),
                current_user,
                recorded::CURRENT_USER_RATIO,
            )),
            ratio(current_user.ratio()),
            met(current_user.ratio() >= 0.25),
        ),
        (
            "`GET /api/tickets` (1,000): at least 0.5 of native",
            ratio(then_of_native(
                |then| then.list.requests_per_second(),
                list,
                recorded::LIST_RATIO,
            )),
            ratio(list.ratio()),
            met(list.ratio() >= 0.5),
        ),
        {
            let now = page.spin.as_ref().map(Summary::requests_per_second);
            let then = reference
                .and_then(|then| then.spin_page.as_ref())
                .map(Summary::requests_per_second);
            (
                "real Spin: point reads (`GET /api/tickets/:id`) at least 2× the \
                 reference's req/s there",
                then.map_or_else(|| "not measured".to_owned(), |then| format!("{then:.0}")),
                match (now, then) {
                    (Some(now), Some(then)) => format!("{now:.0} ({:.2}×)", now / then),
                    (Some(now), None) => format!("{now:.0}"),
                    (None, _) => "not measured".to_owned(),
                },
                match (now, then) {
                    (Some(now), Some(then)) => met(now >= 2.0 * then),
                    _ => "not judged",
                },
            )
        },
    ];
    let _ = writeln!(text, "\n## Goals\n");
    let against = match reference {
        Some(_) => format!(
            "Against the reference, commit {}: the app before this work, built from that \
             commit's sources and measured in this run, on this machine, under the same \
             loads (its list, page and `currentuser` ratios over this run's native figures). \
             The rows comparing requests/s with the reference compare medians of {} loads \
             each, today's app and the reference's taking turns (table below).",
            reference::COMMIT,
            reference::ROUNDS
        ),
        None => format!(
            "Against the reference, commit {}, **as recorded on the first machine that ran \
             the bench** (2026-12-06): it was not measured in this run (`cargo xtask bench` \
             builds and measures it; `bench run` without `--reference` does not), and \
             requests/s differ between machines, so the rows comparing with its requests/s \
             are not judged.",
            reference::COMMIT
        ),
    };
    let _ = writeln!(
        text,
        "{against} docs/performance.md says what stands in the way of each goal not met.\n"
    );
    let _ = writeln!(
        text,
        "| goal | reference | now | met |\n|---|---:|---:|---|"
    );
    for (goal, then, now, met) in rows {
        let _ = writeln!(text, "| {goal} | {then} | {now} | {met} |");
    }
    if let Some(reference) = reference {
        turns_table(text, reference);
    }
}

/// Each round of the loads taken in turns, req/s: today's app, the reference, the ratio.
fn turns_table(text: &mut String, reference: &reference::Figures) {
    let _ = writeln!(
        text,
        "\nIn turns (req/s, today / reference; today's first in the odd-numbered rounds):\n\n\
         | round | trivial route | `GET /api/tickets/:id` |\n|---:|---:|---:|"
    );
    let cell = |turns: &reference::Turns, round: usize| {
        let today = turns.today[round].requests_per_second();
        let then = turns.then[round].requests_per_second();
        format!("{today:.0} / {then:.0} ({:.1}×)", today / then)
    };
    for round in 0..reference.page.today.len() {
        let _ = writeln!(
            text,
            "| {} | {} | {} |",
            round + 1,
            cell(&reference.trivial, round),
            cell(&reference.page, round)
        );
    }
}

fn scaling_section(text: &mut String, scaling: &[Pair]) {
    let _ = writeln!(text, "\n## Scaling\n");
    let _ = writeln!(
        text,
        "The list grows with the tickets for sale (every one is in the answer: 10,000 \
         tickets are about 1.3 MB of JSON); one ticket's page does not (an index lookup).\n"
    );
    pair_table(text, &scaling.iter().collect::<Vec<_>>());
}

/// The host's own overhead: a trivial route next to bare hyper (and real Spin's, when
/// it is installed).
struct Trivial {
    targets: Vec<Target>,
    throughput: Vec<Summary>,
    latency: Vec<Summary>,
    instances: Instances,
}

struct Target {
    name: &'static str,
    url: String,
}

fn trivial_routes(runtime: &tokio::runtime::Runtime, spin: Option<&Runtime>) -> Result<Trivial> {
    let checkout = harness::workspace_root();
    let probe = probe_of(&checkout, None, Runtime::Host);
    let on_spin = spin.map(|spin| probe_of(&checkout, None, spin.clone()));
    let bare = Server::hello()?;
    let mut targets = vec![
        Target {
            name: "bare hyper: GET /",
            url: bare.url.clone(),
        },
        Target {
            name: "host, trivial route: GET /hello",
            url: probe.base_url().to_owned(),
        },
    ];
    if let Some(spin) = &on_spin {
        targets.push(Target {
            name: "Spin 3.6, trivial route: GET /hello",
            url: spin.base_url().to_owned(),
        });
    }
    let mut throughput = Vec::new();
    let mut latency = Vec::new();
    for (n, target) in targets.iter().enumerate() {
        eprintln!("loading {} ...", target.name);
        let path = if n == 0 { "/" } else { "/hello" };
        let load = |connections| {
            runtime.block_on(
                Load::new(&target.url, connections, Requests::Same(Request::get(path)))
                    .run(WARM_UP, MEASURE),
            )
        };
        throughput.push(load(CONNECTIONS)?);
        latency.push(load(1)?);
    }
    Ok(Trivial {
        targets,
        throughput,
        latency,
        // The host logs how long each instance took to make; the probe's lines are /hello's.
        instances: Instances::from_logs(&probe.logs()),
    })
}

fn trivial_section(text: &mut String, trivial: &Trivial) {
    let Trivial {
        targets,
        throughput,
        latency,
        instances,
    } = trivial;
    let _ = writeln!(text, "\n## The host's own overhead\n");
    let _ = writeln!(
        text,
        "A route that does nothing but answer, on the host, next to bare hyper doing the \
         same.\n"
    );
    let _ = writeln!(
        text,
        "| route | req/s ({CONNECTIONS} connections) | p50 | p99 | errors | p50, 1 connection |"
    );
    let _ = writeln!(text, "|---|---:|---:|---:|---:|---:|");
    for ((target, many), one) in targets.iter().zip(throughput).zip(latency) {
        let _ = writeln!(
            text,
            "| {} | {:.0} | {} | {} | {} | {} |",
            target.name,
            many.requests_per_second(),
            micros(many.percentile(50.0)),
            micros(many.percentile(99.0)),
            many.errors + one.errors,
            micros(one.percentile(50.0)),
        );
    }
    let overhead = latency[1]
        .percentile(50.0)
        .saturating_sub(latency[0].percentile(50.0));
    let _ = writeln!(
        text,
        "\nPer request, the host adds {} at p50 over bare hyper with one connection: \
         routing, a fresh instance from the pooling allocator, the guest's run and its \
         response. Instantiation alone (a new `Store` with its WASI context, then \
         `InstancePre::instantiate`), from the host's request log over {} requests of the \
         trivial route: p50 {}, p99 {} (goal: p50 at most 10 µs).",
        micros(overhead),
        instances.0.len(),
        instances.percentile(50.0),
        instances.percentile(99.0),
    );
    if let Some(spin) = throughput.get(2) {
        let _ = writeln!(
            text,
            "\nReal Spin 3.6 on the same machine, same component, same load: the host serves \
             the trivial route at {:.1}× Spin's requests/s.",
            throughput[1].requests_per_second() / spin.requests_per_second(),
        );
    }
}

/// Per-request instantiation times, read from the host's request lines
/// (`... -> 200 in 0.31 ms (instance 42 µs)`), sorted.
struct Instances(Vec<u64>);

impl Instances {
    fn from_logs(lines: &[String]) -> Instances {
        let mut micros: Vec<u64> = lines
            .iter()
            .filter_map(|line| {
                let (_, rest) = line.split_once("(instance ")?;
                rest.strip_suffix(" µs)")?.parse().ok()
            })
            .collect();
        micros.sort_unstable();
        Instances(micros)
    }

    fn p50(&self) -> Option<u64> {
        load::percentile(&self.0, 50.0)
    }

    fn percentile(&self, percent: f64) -> String {
        load::percentile(&self.0, percent).map_or_else(|| "n/a".to_owned(), |n| format!("{n} µs"))
    }
}

fn micros(duration: Duration) -> String {
    let micros = duration.as_secs_f64() * 1e6;
    if micros >= 1e6 {
        format!("{:.1} s", micros / 1e6)
    } else if micros >= 1000.0 {
        format!("{:.2} ms", micros / 1000.0)
    } else {
        format!("{micros:.0} µs")
    }
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split_once(':'))
                .map(|(_, name)| name.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    format!("{cores} cores ({cpu})")
}

fn date() -> String {
    command_output("date", &["-u", "+%Y-%m-%d"]).unwrap_or_else(|| "today".to_owned())
}

fn commit() -> String {
    command_output("git", &["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".to_owned())
}

/// `git status --porcelain`, summed up, when the checkout differs from its commit
/// (docs/benchmarks.md itself aside: the run rewrites it).
fn uncommitted_changes() -> Option<String> {
    let status = command_output(
        "git",
        &["status", "--porcelain", "--untracked-files=normal"],
    )?;
    let changed: Vec<&str> = status
        .lines()
        // "XY path" (the output is trimmed, so the first line may have lost a blank).
        .filter_map(|line| {
            line.trim_start()
                .split_once(' ')
                .map(|(_, path)| path.trim())
        })
        .filter(|path| *path != "docs/benchmarks.md")
        .collect();
    match changed.as_slice() {
        [] => None,
        [one] => Some(one.to_string()),
        [first, rest @ ..] => Some(format!("{first} and {} more", rest.len())),
    }
}

fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program).args(args).output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// `bench hello` or `bench native` in a process of its own (like the host), stopped
/// by its PID on drop.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn hello() -> Result<Server> {
        Server::start(&["hello"])
    }

    fn native(data: &Path, redis_url: &str, jwt_key: &str) -> Result<Server> {
        let data = data.to_string_lossy();
        Server::start(&["native", &data, redis_url, jwt_key])
    }

    fn start(args: &[&str]) -> Result<Server> {
        let exe = std::env::current_exe()?;
        let mut child = Command::new(exe)
            .args(args)
            .stdout(Stdio::piped())
            .spawn()?;
        let stdout = child.stdout.take().context("stdout is piped")?;
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)?;
        let url = line
            .trim()
            .strip_prefix("Serving ")
            .with_context(|| format!("`bench {}` did not say where it serves", args[0]))?
            .to_owned();
        Ok(Server { child, url })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The baseline: hyper answering "hello" on keep-alive HTTP/1.1, on the same kind of
/// multi-threaded tokio runtime the host uses.
fn hello_server(listen: SocketAddr) -> Result<()> {
    serve_http(listen, |_request| async {
        hyper::Response::new(Full::new(Bytes::from_static(b"hello")))
    })
}

/// Serves HTTP/1.1 on `listen` until killed, each request answered by `handler`,
/// after printing `Serving http://<address>` (how the bench learns the port).
pub fn serve_http<H, F>(listen: SocketAddr, handler: H) -> Result<()>
where
    H: Fn(hyper::Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = hyper::Response<Full<Bytes>>> + Send + 'static,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        println!("Serving http://{}", listener.local_addr()?);
        loop {
            let (stream, _) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            let handler = handler.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let answer = handler(request);
                    async move { Ok::<_, Infallible>(answer.await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(with_spin: bool) -> Pair {
        let summary = |answers| Summary::of(answers, Duration::from_millis(1));
        Pair {
            name: "GET /api/tickets/:id".to_owned(),
            connections: 32,
            host: summary(100),
            native: summary(400),
            spin: with_spin.then(|| summary(80)),
        }
    }

    #[test]
    fn route_tables_have_spin_columns_only_when_spin_was_measured() {
        for with_spin in [false, true] {
            let mut text = String::new();
            pair_table(&mut text, &[&pair(with_spin), &pair(with_spin)]);
            // As many cells on every line as in the header.
            let cells: Vec<usize> = text.lines().map(|line| line.matches('|').count()).collect();
            assert!(cells.iter().all(|&n| n == cells[0]), "{text}");
            assert_eq!(text.contains("| Spin req/s |"), with_spin, "{text}");
            assert_eq!(
                text.contains("| 80 | 1.00 ms | 1.00 ms | 0.20 |"),
                with_spin,
                "{text}"
            );
        }
    }

    #[test]
    fn the_read_range_on_spin_is_there_only_when_spin_was_measured() {
        let routes = [pair(true)];
        assert_eq!(
            read_range(&routes, Pair::spin_ratio).as_deref(),
            Some("0.20–0.20")
        );
        assert_eq!(read_range(&[pair(false)], Pair::spin_ratio), None);
        assert_eq!(
            read_range(&routes, |pair| Some(pair.ratio())).as_deref(),
            Some("0.25–0.25")
        );
    }

    #[test]
    fn goals_comparing_requests_per_second_are_judged_only_against_this_runs_reference() {
        let summary = |answers| Summary::of(answers, Duration::from_millis(1));
        let trivial = Trivial {
            targets: Vec::new(),
            throughput: vec![summary(1000), summary(300)],
            latency: Vec::new(),
            instances: Instances(vec![8]),
        };
        let routes = [pair(true), pair(true), pair(true)];
        let row = |text: &str, goal: &str| {
            text.lines()
                .find(|line| line.starts_with(&format!("| {goal}")))
                .unwrap_or_else(|| panic!("no row {goal} in {text}"))
                .to_owned()
        };

        let mut text = String::new();
        goals_section(&mut text, &routes, &trivial, None);
        assert!(text.contains("as recorded on the first machine"), "{text}");
        let page = row(&text, "`GET /api/tickets/:id`: at least 2×");
        assert!(page.ends_with("| not judged |"), "{page}");
        assert!(row(&text, "trivial route: at least 2×").ends_with("| not judged |"));
        assert!(row(&text, "real Spin").ends_with("| not judged |"));
        assert!(row(&text, "trivial route: at least 30%").ends_with("| yes |"));

        let turns = |today: [usize; 5], then: [usize; 5]| reference::Turns {
            today: today.map(summary).into(),
            then: then.map(summary).into(),
        };
        let reference = reference::Figures {
            list: summary(50),
            current_user: summary(60),
            // Medians: 100 today against 40 then; the trivial route 300 against 200.
            page: turns([100, 300, 90, 110, 95], [40, 45, 20, 50, 38]),
            trivial: turns([300, 310, 290, 500, 100], [200, 150, 210, 205, 190]),
            instance_p50_micros: Some(20),
            spin_page: Some(summary(50)),
        };
        let mut text = String::new();
        goals_section(&mut text, &routes, &trivial, Some(&reference));
        assert!(text.contains("measured in this run"), "{text}");
        assert_eq!(
            row(&text, "`GET /api/tickets/:id`: at least 2×"),
            "| `GET /api/tickets/:id`: at least 2× the reference's req/s | 40 | 100 (2.50×) | yes |"
        );
        assert!(
            row(&text, "trivial route: at least 2×").ends_with("| 200 | 300 (1.50×) | **no** |")
        );
        // Spin: 80 now against 50 then.
        assert!(row(&text, "real Spin").ends_with("| 50 | 80 (1.60×) | **no** |"));
        // Ratios of the reference over this run's native figures (400).
        assert!(row(&text, "`GET /api/tickets/:id`: at least 0.25").contains("| 0.10 | 0.25 |"));
        assert!(row(&text, "instantiation").contains("| 20 µs | 8 µs | yes |"));
        // Every round, as it was measured.
        assert!(
            text.contains("| 2 | 310 / 150 (2.1×) | 300 / 45 (6.7×) |"),
            "{text}"
        );
        assert_eq!(text.matches("\n| 5 | ").count(), 1, "{text}");
    }
}

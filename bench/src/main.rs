//! `bench`: measures the host against a bare hyper server in one run, on 127.0.0.1.
//!
//! `bench run [--out FILE]` starts a real Redis, the app and the host's probe app on
//! the host, and a bare hyper "hello" server (`bench hello`, its own process, like the
//! host), then loads each route with concurrent keep-alive connections and prints a
//! table (also written to FILE as markdown). `cargo xtask bench` builds everything in
//! release first and runs it.

mod expiry;
mod load;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use harness::{App, Redis, Runtime};

use crate::load::{Load, Summary};

/// Connections for the throughput runs; the latency runs use one.
const CONNECTIONS: usize = 32;
const WARM_UP: Duration = Duration::from_secs(1);
const MEASURE: Duration = Duration::from_secs(5);

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("hello") => {
            let listen = args.get(2).map_or("127.0.0.1:0", String::as_str).parse()?;
            hello_server(listen)
        }
        Some("expiry") => {
            println!("{}", expiry::measure()?.summary());
            Ok(())
        }
        Some("run") => {
            let out = match args.get(1).map(String::as_str) {
                Some("--out") => Some(args.get(2).context("--out needs a file")?.clone()),
                _ => None,
            };
            run(out)
        }
        _ => bail!("usage: bench run [--out FILE] | bench expiry | bench hello [--listen ADDR]"),
    }
}

struct Target {
    name: &'static str,
    url: String,
}

fn run(out: Option<String>) -> Result<()> {
    eprintln!("starting Redis, the app, the probe app and the bare hyper server");
    let app = harness::spawn_app();
    let probe = App::builder(harness::workspace_root().join("host/probe/spin.toml"))
        .with_redis(Redis::start())
        .variable("secret_word", "bench")
        .start();
    // Real Spin on the same routes, for context, when it is installed.
    let on_spin = Runtime::spin().map(|spin| {
        eprintln!("Spin found: its rows are measured too");
        let app = harness::spawn_app_on(spin.clone());
        let probe = App::builder(harness::workspace_root().join("host/probe/spin.toml"))
            .runtime(spin)
            .with_redis(Redis::start())
            .variable("secret_word", "bench")
            .start();
        (app, probe)
    });
    let mut bare = BareServer::start()?;
    let mut targets = vec![
        Target {
            name: "bare hyper: GET /",
            url: format!("{}/", bare.url),
        },
        Target {
            name: "host, trivial route: GET /hello",
            url: format!("{}/hello", probe.base_url()),
        },
        Target {
            name: "host, auth: GET /api/users/currentuser",
            url: format!("{}/api/users/currentuser", app.base_url()),
        },
    ];
    if let Some((app, probe)) = &on_spin {
        targets.push(Target {
            name: "Spin 3.6, trivial route: GET /hello",
            url: format!("{}/hello", probe.base_url()),
        });
        targets.push(Target {
            name: "Spin 3.6, auth: GET /api/users/currentuser",
            url: format!("{}/api/users/currentuser", app.base_url()),
        });
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut throughput = Vec::new();
    let mut latency = Vec::new();
    for target in &targets {
        eprintln!("loading {} ...", target.name);
        let many = runtime.block_on(Load::new(&target.url, CONNECTIONS).run(WARM_UP, MEASURE))?;
        let one = runtime.block_on(Load::new(&target.url, 1).run(WARM_UP, MEASURE))?;
        throughput.push(many);
        latency.push(one);
    }
    bare.stop();
    eprintln!(
        "expiration: {} orders with a {}-second window ...",
        expiry::ORDERS,
        2
    );
    let lateness = expiry::measure()?;
    // The host logs how long each instance took to make; the probe's lines are /hello's.
    let instances = Instances::from_logs(&probe.logs());

    let mut report = report(&targets, &throughput, &latency, &instances);
    let _ = writeln!(report, "\n{}", lateness.summary());

    print!("{report}");
    if let Some(out) = out {
        std::fs::write(&out, &report).with_context(|| format!("writing {out}"))?;
        eprintln!("written to {out}");
    }
    Ok(())
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

    fn percentile(&self, percent: f64) -> String {
        load::percentile(&self.0, percent).map_or_else(|| "n/a".to_owned(), |n| format!("{n} µs"))
    }
}

fn report(
    targets: &[Target],
    throughput: &[Summary],
    latency: &[Summary],
    instances: &Instances,
) -> String {
    let mut text = String::new();
    let machine = machine();
    let _ = writeln!(text, "# Benchmarks\n");
    let _ = writeln!(
        text,
        "`cargo xtask bench`, {} on {machine}; commit {}. Everything on 127.0.0.1; the load \
         generator shares the machine with the servers.\n",
        date(),
        commit()
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
    let ratio = throughput[1].requests_per_second() / throughput[0].requests_per_second();
    let overhead = latency[1]
        .percentile(50.0)
        .saturating_sub(latency[0].percentile(50.0));
    let _ = writeln!(
        text,
        "\nThe trivial route on the host does {:.0}% of bare hyper's requests/s (goal: at least \
         50%). Per request, the host adds {} at p50 over bare hyper with one connection: \
         routing, a fresh instance from the pooling allocator, the guest's run and its \
         response.\n\nInstantiation alone (a new `Store` with its WASI context, then \
         `InstancePre::instantiate`), from the host's request log over {} requests of the \
         trivial route: p50 {}, p99 {} (goal: at most 100 µs).",
        ratio * 100.0,
        micros(overhead),
        instances.0.len(),
        instances.percentile(50.0),
        instances.percentile(99.0),
    );
    if let Some(spin) = throughput.get(3) {
        let _ = writeln!(
            text,
            "\nReal Spin 3.6 on the same machine, same components, same load: the host serves \
             the trivial route at {:.1}× Spin's requests/s, and `currentuser` at {:.1}×.",
            throughput[1].requests_per_second() / spin.requests_per_second(),
            throughput[2].requests_per_second()
                / throughput
                    .get(4)
                    .map_or(f64::NAN, Summary::requests_per_second),
        );
    }
    text
}

fn micros(duration: Duration) -> String {
    let micros = duration.as_secs_f64() * 1e6;
    if micros >= 1000.0 {
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

fn command_output(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program).args(args).output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// `bench hello` in a process of its own, stopped (by PID) on drop.
struct BareServer {
    child: Child,
    url: String,
}

impl BareServer {
    fn start() -> Result<BareServer> {
        let exe = std::env::current_exe()?;
        let mut child = Command::new(exe)
            .arg("hello")
            .stdout(Stdio::piped())
            .spawn()?;
        let stdout = child.stdout.take().context("stdout is piped")?;
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line)?;
        let url = line
            .trim()
            .strip_prefix("Serving ")
            .context("the hello server did not say where it serves")?
            .to_owned();
        Ok(BareServer { child, url })
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for BareServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The baseline: hyper answering "hello" on keep-alive HTTP/1.1, on the same kind of
/// multi-threaded tokio runtime the host uses.
fn hello_server(listen: SocketAddr) -> Result<()> {
    use bytes::Bytes;
    use http_body_util::Full;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        println!("Serving http://{}", listener.local_addr()?);
        loop {
            let (stream, _) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service = service_fn(|_request| async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                        Bytes::from_static(b"hello"),
                    )))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

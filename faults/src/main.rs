//! `faults`: runs every scenario of the fault suite at full size, prints one line per
//! scenario and `N passed, M failed`, and with `--out FILE` writes the figures there
//! (docs/reliability.md). `cargo xtask faults` builds everything and runs it.
//! `--quick` runs the reduced size of `cargo test`; `--only <scenario>` one scenario
//! (for debugging; the secrets scenario then sees only that one's logs); `--soak
//! MINUTES` sets how long the full-size soak runs (10 minutes by default).

use std::process::{Command, ExitCode};
use std::time::{Instant, SystemTime};

use faults::{Outcome, Size};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (mut out, mut size, mut only) = (None, Size::Full, None);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--out", Some(file)) => out = Some(file),
            ("--only", Some(name)) => only = Some(name),
            ("--soak", Some(minutes)) => match minutes.parse::<u64>() {
                Ok(minutes) => {
                    faults::soak::set_length(std::time::Duration::from_secs(minutes * 60))
                }
                Err(_) => {
                    eprintln!("--soak takes a number of minutes, not `{minutes}`");
                    return ExitCode::FAILURE;
                }
            },
            ("--quick", next) => {
                size = Size::Quick;
                if let Some(next) = next {
                    eprintln!("unexpected `{next}` after --quick: give it last");
                    return ExitCode::FAILURE;
                }
            }
            _ => {
                eprintln!(
                    "usage: faults [--out FILE] [--only SCENARIO] [--soak MINUTES] [--quick]"
                );
                return ExitCode::FAILURE;
            }
        }
    }
    let started = Instant::now();
    let outcomes = match only {
        None => faults::run_all(size, |outcome| println!("{}", outcome.line())),
        Some(name) => {
            let Some(scenario) = faults::SCENARIOS.iter().find(|known| known.name == name) else {
                eprintln!("no scenario `{name}`");
                return ExitCode::FAILURE;
            };
            let outcome = faults::run_one(scenario, size, &Default::default());
            println!("{}", outcome.line());
            vec![outcome]
        }
    };
    let summary = faults::summary(&outcomes);
    println!("{summary}");
    if let Some(out) = out {
        let text = document(&outcomes, &summary, started.elapsed().as_secs());
        if let Err(err) = std::fs::write(&out, text) {
            eprintln!("cannot write {out}: {err}");
            return ExitCode::FAILURE;
        }
        eprintln!("wrote {out}");
    }
    if outcomes.iter().all(Outcome::passed) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// docs/reliability.md: when, where and with what the figures were produced.
fn document(outcomes: &[Outcome], summary: &str, seconds: u64) -> String {
    let date = humantime::format_rfc3339_seconds(SystemTime::now());
    let commit = output("git", &["rev-parse", "--short", "HEAD"]);
    let dirty = if output("git", &["status", "--porcelain"]).is_empty() {
        ""
    } else {
        " (with uncommitted changes)"
    };
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split(':').nth(1))
                .map(|model| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let mut text = format!(
        "# Reliability\n\n\
         What the app does when things go wrong, measured by the fault suite \
         (`faults/`). It runs the real app (the project's host, a real `redis-server`, \
         real SQLite files) on 127.0.0.1, does something bad to it, and counts what it \
         finds in the answers, the databases and Redis; a scenario passes only when every \
         count is the one the design promises. This file is written by\n\n\
         ```sh\ncargo xtask faults\n```\n\n\
         Last run: {date}, {cores} cores ({cpu}), the host's dev build, commit \
         `{commit}`{dirty}, {} min {} s in all: **{summary}**.\n\n\
         | scenario | figures of the last run | verdict |\n|---|---|---|\n",
        seconds / 60,
        seconds % 60
    );
    for outcome in outcomes {
        let verdict = if outcome.passed() {
            "passed".to_owned()
        } else {
            format!("FAILED: {}", outcome.report.failures.join("; "))
        };
        text.push_str(&format!(
            "| {} | {} ({:.0} s) | {verdict} |\n",
            outcome.scenario,
            outcome.report.figures.replace('|', "\\|"),
            outcome.took.as_secs_f64()
        ));
    }
    text.push_str("\n## The scenarios\n\n");
    for scenario in faults::SCENARIOS {
        text.push_str(&format!("- **{}**: {}\n", scenario.name, scenario.does));
    }
    text.push_str(
        "\nEach scenario is one module of `faults/src/`. `cargo test` (and so `cargo \
         xtask test`) runs all of them at a reduced size (`faults/tests/quick.rs`: 10 race \
         rounds, 100 orders with the listener down for 5 s, 1,000 fuzzed requests, one \
         kill, ...). The fuzzer's seed is in its figures; `FAULTS_SEED=<seed>` replays \
         it. `faults --only <scenario> [--quick]` (the binary in the target directory) \
         runs one scenario.\n",
    );
    text.push_str(
        "\n## What this does not show\n\n\
         - Real Spin. The suite runs the project's host, which reconnects its Redis \
         triggers; Spin exits when Redis drops, and SpinKube restarts the pod (the \
         services then catch up as in *consumer down*).\n\
         - Redis without persistence. Events committed while Redis is down are relayed \
         by the bus's tick, whose keys are armed two minutes ahead: a Redis that comes \
         back from its append-only file (as deployed) brings them back. A Redis that \
         lost everything has no tick until the next write or health probe (Kubernetes \
         probes every 15 s), and an outage longer than two minutes outlasts the ticks \
         armed before it.\n\
         - Losing more than the last 1,000 relayed events of one service. A Redis that \
         comes back without writes it had acknowledged is noticed by each service's \
         relay counter, and the events above it are relayed again from the outbox, \
         which keeps the newest 1,000 relayed rows.\n\
         - Power loss. The kills stop the process, not the machine: what reached the \
         operating system survives; SQLite's journal and `fsync`s are not exercised \
         against a lost page cache.\n\
         - A catalogue that grows without end. The mix keeps about 30 tickets per user \
         on sale. `GET /api/tickets` answers every ticket on sale, so thousands of them \
         make it the app's heaviest route, and on 2 cores the events' latency grows with \
         it: a soak whose sellers listed 7,780 tickets in 10 minutes saw events applied \
         up to 20 s late, and payments made 17 s before their deadline lost the race to \
         the expiry (and were refunded).\n",
    );
    text
}

fn output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .unwrap_or_default()
}

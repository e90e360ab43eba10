//! Faults under load: signed-in users do the whole mix (listing, editing, ordering,
//! paying, cancelling, letting orders expire in a 20 s window) while a fault strikes
//! every 15 s: Redis stopped for a while, Redis back without its last writes, the host
//! killed and started again. A fault must not turn into an outage: after the last one,
//! errors stop and latency is back to what it was before the first within 30 s; reads
//! never fail while Redis is away; each event lands on its stream a bounded number of
//! times; every event is applied in the end, nothing goes to the dead letters, and the
//! host never runs out of instances or waits out a database lock.

use std::collections::BTreeMap;
use std::time::Duration;

use harness::Redis;

use crate::mix::{self, Mix};
use crate::rng::Rng;
use crate::strike::Struck;
use crate::{Logbook, Report, Size, WAIT, bus};

/// The time between two faults.
const EVERY: Duration = Duration::from_secs(15);
/// How long before the first fault the traffic runs: the latency to come back to.
const BASELINE: Duration = Duration::from_secs(15);
/// The promise: errors and latency back to normal this soon after the last fault.
const RECOVERY: Duration = Duration::from_secs(30);
/// Measured in windows this wide.
const WINDOW: Duration = Duration::from_secs(5);
/// The most copies of one event on its stream.
const MOST_COPIES: usize = 3;

#[derive(Debug, Clone, Copy)]
enum Fault {
    /// `redis-server` stopped for this long, then started from its append-only file.
    RedisDown(Duration),
    /// Redis back after a crash that lost its last second of writes.
    RedisLosesLastWrites,
    /// The host killed (SIGKILL) and started again on the same files.
    KillHost,
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::RedisDown(down) => write!(f, "Redis down {} s", down.as_secs()),
            Fault::RedisLosesLastWrites => write!(f, "Redis back without its last writes"),
            Fault::KillHost => write!(f, "host SIGKILLed"),
        }
    }
}

const FULL: &[Fault] = &[
    Fault::RedisDown(Duration::from_secs(2)),
    Fault::KillHost,
    Fault::RedisLosesLastWrites,
    Fault::RedisDown(Duration::from_secs(5)),
    Fault::KillHost,
    Fault::RedisDown(Duration::from_secs(2)),
];
const QUICK: &[Fault] = &[Fault::RedisDown(Duration::from_secs(2)), Fault::KillHost];

pub fn run(size: Size, logbook: &Logbook) -> Report {
    let users = size.pick(12, 6);
    let faults = size.pick(FULL, QUICK);
    let after_faults = size.pick(Duration::from_secs(45), Duration::from_secs(35));
    let window = Duration::from_secs(20);
    let mut app = Struck::new(crate::spawn(Redis::start_persistent(), |app| {
        app.variable("order_expiration_seconds", &window.as_secs().to_string())
    }));
    let mut report = Report::default();
    let seed = Rng::seed();
    let mix = Mix::new(app.serving().base_url(), window);
    // When each fault started and ended, from the start of the mix.
    let mut struck: Vec<(Fault, Duration, Duration)> = Vec::new();
    std::thread::scope(|scope| {
        mix.start(scope, users, seed);
        sleep_until(&mix, BASELINE);
        for (n, &fault) in faults.iter().enumerate() {
            let began = mix.elapsed();
            match fault {
                Fault::RedisDown(down) => app.redis_down(down),
                Fault::RedisLosesLastWrites => app.redis_loses_last_writes(Duration::from_secs(1)),
                Fault::KillHost => app.kill_host(&mix),
            }
            struck.push((fault, began, mix.elapsed()));
            sleep_until(&mix, BASELINE + EVERY * (n as u32 + 1));
        }
        let last_fault = struck.last().map_or(BASELINE, |(_, _, ended)| *ended);
        sleep_until(&mix, last_fault + after_faults);
        mix.stop();
    });
    let last = app.serving();
    let requests = mix.requests();
    let ended = requests.last().map_or(Duration::ZERO, |request| request.at);
    let last_fault = struck.last().map_or(BASELINE, |(_, _, ended)| *ended);

    // Before the first fault: what normal is (the first seconds are sign-ups).
    let baseline: Vec<&mix::Request> = requests
        .iter()
        .filter(|request| request.at >= WINDOW && request.at < BASELINE)
        .collect();
    let baseline_errors = baseline.iter().filter(|request| request.is_error()).count();
    let baseline_p95 = mix::percentile(baseline.iter().map(|request| request.took), 0.95);
    report.check(baseline_errors == 0 && !baseline.is_empty(), || {
        format!(
            "{baseline_errors} errors in {} requests before any fault",
            baseline.len()
        )
    });
    let normal_p95 = (baseline_p95 * 2).max(baseline_p95 + Duration::from_millis(50));
    // Back to normal: from the first window after the last fault that is normal and
    // stays normal to the end.
    let after = mix::windows(&requests, last_fault, ended, WINDOW);
    let is_normal = |window: &mix::Window| window.errors == 0 && window.p95 <= normal_p95;
    let recovered_at = (0..after.len())
        .find(|&first| after[first..].iter().all(is_normal))
        .map(|first| after[first].from);
    let recovery = recovered_at.map(|at| at.saturating_sub(last_fault));
    report.check(recovery.is_some_and(|took| took <= RECOVERY), || {
        format!(
            "not back to normal within {} s of the last fault (windows after it: {})",
            RECOVERY.as_secs(),
            after
                .iter()
                .map(|window| format!(
                    "{} of {} failed, p95 {} ms",
                    window.errors,
                    window.requests,
                    window.p95.as_millis()
                ))
                .collect::<Vec<_>>()
                .join("; ")
        )
    });

    // Reads never depend on Redis.
    let redis_outages: Vec<(Duration, Duration)> = struck
        .iter()
        .filter(|(fault, _, _)| !matches!(fault, Fault::KillHost))
        .map(|(_, began, ended)| (*began, *ended))
        .collect();
    let reads_during_outages: Vec<&mix::Request> = requests
        .iter()
        .filter(|request| request.kind.is_read())
        .filter(|request| {
            redis_outages
                .iter()
                .any(|(began, ended)| request.at >= *began && request.at < *ended)
        })
        .collect();
    let failed_reads = reads_during_outages
        .iter()
        .filter(|request| request.is_error())
        .count();
    report.check(failed_reads == 0, || {
        format!(
            "{failed_reads} of {} reads failed while Redis was away",
            reads_during_outages.len()
        )
    });
    let reads_p95 = mix::percentile(
        reads_during_outages.iter().map(|request| request.took),
        0.95,
    );

    // Every event applied in the end, none dead, none relayed without bound.
    let settled = bus::settle(last, app.redis(), WAIT);
    report.check(settled, || {
        format!(
            "not every event applied within {} s of the end: {:?}",
            WAIT.as_secs(),
            bus::behind(app.redis())
        )
    });
    let dead = app.redis().stream("events:dead").len();
    report.check(dead == 0, || format!("{dead} events in events:dead"));
    let mut events = 0;
    let mut duplicated = 0;
    let mut most_copies = 0;
    for (subject, _) in bus::CONSUMERS {
        let mut copies: BTreeMap<String, usize> = BTreeMap::new();
        for envelope in bus::envelopes(app.redis(), subject) {
            *copies
                .entry(envelope["id"].as_str().unwrap_or_default().to_owned())
                .or_default() += 1;
        }
        events += copies.len();
        duplicated += copies.values().filter(|&&count| count > 1).count();
        most_copies = most_copies.max(copies.values().copied().max().unwrap_or(0));
    }
    report.check(most_copies <= MOST_COPIES, || {
        format!("an event is on its stream {most_copies} times (at most {MOST_COPIES})")
    });

    // The host's own complaints.
    let lines = app.logs();
    let count = |text: &str| lines.iter().filter(|line| line.contains(text)).count();
    let (out_of_instances, locked) = (count("maximum concurrent"), count("database is locked"));
    report.check(out_of_instances == 0 && locked == 0, || {
        format!(
            "the log says {out_of_instances} times that instances ran out, {locked} times \
             `database is locked`"
        )
    });

    let errors = requests.iter().filter(|request| request.is_error()).count();
    report.figures = format!(
        "{users} users, {} requests ({errors} failed, while faults struck), faults every \
         {} s: {}; before them p95 {} ms; back to normal {} after the last; reads while \
         Redis was away: {} (p95 {} ms, {failed_reads} failed); {events} events, {duplicated} \
         on their stream twice or more (at most {most_copies} times); {dead} dead; \
         {out_of_instances} instance shortages, {locked} database locks in the log; seed {seed}",
        requests.len(),
        EVERY.as_secs(),
        struck
            .iter()
            .map(|(fault, _, _)| fault.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        baseline_p95.as_millis(),
        recovery.map_or_else(
            || "never".to_owned(),
            |took| format!("in {} s", took.as_secs())
        ),
        reads_during_outages.len(),
        reads_p95.as_millis(),
    );
    app.keep_logs(logbook);
    report
}

/// Sleeps until the mix has run for `at`.
fn sleep_until(mix: &Mix, at: Duration) {
    if let Some(left) = at.checked_sub(mix.elapsed()) {
        std::thread::sleep(left);
    }
}

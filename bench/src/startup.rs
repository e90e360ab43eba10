//! Start-up and memory: from starting the host to the first 200, with an empty
//! compiled-code cache (every component compiled) and with a warm one; the process's
//! resident memory.

use std::time::{Duration, Instant};

use anyhow::Result;
use harness::{App, Redis};

pub struct Startup {
    pub cold: Duration,
    pub warm: Duration,
    /// Resident memory of the warm-started host after its first request, in KiB.
    pub idle_rss_kib: u64,
}

pub fn measure() -> Result<Startup> {
    let cache = tempfile::tempdir()?;
    let cold = first_answer(cache.path())?.0;
    let (warm, app) = first_answer(cache.path())?;
    let idle_rss_kib = rss_kib(app.pid()).unwrap_or(0);
    Ok(Startup {
        cold,
        warm,
        idle_rss_kib,
    })
}

/// Starts the app with this cache directory; the time until `GET /api/tickets` first
/// answers 200.
fn first_answer(cache: &std::path::Path) -> Result<(Duration, App)> {
    let redis = Redis::start();
    let started = Instant::now();
    let app = App::builder(harness::workspace_root().join("spin.toml"))
        .with_redis(redis)
        .variable("jwt_key", "bench")
        .host_cache_dir(cache)
        .start();
    harness::eventually("the first 200", Duration::from_secs(60), || {
        (app.get("/api/tickets").status == 200).then_some(())
    });
    Ok((started.elapsed(), app))
}

/// `VmRSS` of a process, in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Samples a process's resident memory every 50 ms until dropped; the highest seen.
pub struct RssSampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<u64>>,
}

impl RssSampler {
    pub fn start(pid: u32) -> RssSampler {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut highest = 0;
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                highest = highest.max(rss_kib(pid).unwrap_or(0));
                std::thread::sleep(Duration::from_millis(50));
            }
            highest
        });
        RssSampler {
            stop,
            thread: Some(thread),
        }
    }

    /// The highest resident memory seen, in KiB.
    pub fn finish(mut self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread
            .take()
            .and_then(|thread| thread.join().ok())
            .unwrap_or(0)
    }
}

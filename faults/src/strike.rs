//! The faults that `storm` and `soak` strike while the mix runs, on an app whose host
//! may have been killed and started again (its replica then serves, on another port,
//! with the same databases and the same Redis).

use std::time::Duration;

use harness::{App, Redis};

use crate::Logbook;
use crate::mix::Mix;

/// The app under the faults: the process first started (it owns Redis and the state
/// directory) and, after a kill, the replica serving in its place.
pub struct Struck {
    first: App,
    replica: Option<App>,
}

impl Struck {
    pub fn new(app: App) -> Struck {
        Struck {
            first: app,
            replica: None,
        }
    }

    /// The process serving now.
    pub fn serving(&self) -> &App {
        self.replica.as_ref().unwrap_or(&self.first)
    }

    pub fn redis(&self) -> &Redis {
        self.first.redis()
    }

    /// Redis stopped for `down`, then started again from its append-only file.
    pub fn redis_down(&mut self, down: Duration) {
        self.first.redis_mut().stop();
        std::thread::sleep(down);
        self.first.redis_mut().restart();
    }

    /// Redis started again without what it was told in the last `since`, as after a
    /// crash with `appendfsync everysec` or a failover to a replica that lagged.
    pub fn redis_loses_last_writes(&mut self, since: Duration) {
        let mark = self.first.redis().aof_mark();
        std::thread::sleep(since);
        self.first.redis_mut().restart_without_writes_since(&mark);
    }

    /// The serving host SIGKILLed and started again; `mix` follows it to its new port.
    pub fn kill_host(&mut self, mix: &Mix) {
        match self.replica.as_mut() {
            Some(process) => process.kill(),
            None => self.first.kill(),
        };
        let process = self.first.start_replica();
        mix.retarget(process.base_url());
        self.replica = Some(process);
    }

    /// Every line the host printed, in all its lives.
    pub fn logs(&self) -> Vec<String> {
        let mut lines = self.first.logs();
        if let Some(process) = &self.replica {
            lines.extend(process.logs());
        }
        lines
    }

    /// Hands the logs of every life to `logbook` (for the secrets scenario), then stops
    /// the host and Redis.
    pub fn keep_logs(self, logbook: &Logbook) {
        logbook.keep(&self.first);
        if let Some(process) = self.replica {
            logbook.keep(&process);
        }
    }
}

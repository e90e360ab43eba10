//! The goals' reference: the app as it was at an earlier commit, before the per-request
//! work, measured in this run, on this machine, under the same loads as today's app.
//!
//! Goals such as "twice the reference's requests/s" only mean something on one
//! machine: two 2-core machines gave the same commit's trivial route 21,044 and 14,277
//! req/s. So `cargo xtask bench` builds the reference commit from its own sources (in
//! the target directory, once) and passes its checkout and host here; without them the
//! report shows the figures recorded on the machine of the first run, and does not judge
//! the goals that compare with them.

use std::path::PathBuf;

use anyhow::Result;
use harness::Runtime;

use crate::load::{self, Load, Request, Requests, Summary};
use crate::market::Market;
use crate::{CONNECTIONS, Instances, MEASURE, TICKETS, WARM_UP, app_of, probe_of, ticket_pages};

/// The commit the goals compare with.
pub const COMMIT: &str = "6d3e31b";

/// Its figures on the first machine that ran the bench (2 cores, 2026-12-06;
/// docs/performance.md has that report): shown when it was not measured in this run.
pub mod recorded {
    pub const TRIVIAL: f64 = 9231.0;
    pub const BARE_HYPER: f64 = 155_888.0;
    pub const INSTANCE_P50_MICROS: u64 = 28;
    pub const TICKET_PAGE: f64 = 4599.0;
    pub const TICKET_PAGE_RATIO: f64 = 0.06;
    pub const CURRENT_USER_RATIO: f64 = 0.05;
    pub const LIST_RATIO: f64 = 0.24;
}

/// The reference commit's checkout (spin.toml, the probe app, built modules) and host.
pub struct Build {
    pub root: PathBuf,
    pub host: PathBuf,
}

/// How many times today's app and the reference take turns on each route the goals
/// compare by requests/s. This machine's speed drifts by more than the goals' factor
/// between minutes of one run; loads taken in turns see the same drift, and the
/// medians of five turns each are what the goals compare.
pub const ROUNDS: usize = 5;

/// Today's app as the turns load it: its address, and its tickets' pages.
pub struct Today<'a> {
    pub app_url: &'a str,
    pub pages: Requests,
}

/// One route loaded in turns: today's app, then the reference, then the other way
/// round, `ROUNDS` times.
pub struct Turns {
    pub today: Vec<Summary>,
    pub then: Vec<Summary>,
}

impl Turns {
    pub fn today_median(&self) -> f64 {
        median(&self.today)
    }

    pub fn then_median(&self) -> f64 {
        median(&self.then)
    }
}

fn median(summaries: &[Summary]) -> f64 {
    let mut figures: Vec<f64> = summaries.iter().map(Summary::requests_per_second).collect();
    figures.sort_by(f64::total_cmp);
    load::percentile(&figures, 50.0).unwrap_or(0.0)
}

/// What the goals need of the reference, measured here.
pub struct Figures {
    pub list: Summary,
    pub current_user: Summary,
    /// One ticket's page, in turns with today's app.
    pub page: Turns,
    /// The probe apps' trivial route, in turns with today's probe.
    pub trivial: Turns,
    pub instance_p50_micros: Option<u64>,
    /// One ticket's page with the reference's components on real Spin, when it is given.
    pub spin_page: Option<Summary>,
}

/// The reference app with its own Redis and a market like today's (the same number of
/// tickets, a signed-in buyer), and its probe app; their page and trivial route are
/// loaded in turns with today's app and probe.
pub fn measure(
    runtime: &tokio::runtime::Runtime,
    build: &Build,
    today: &Today,
    spin: Option<&Runtime>,
    jwt_key: &str,
) -> Result<Figures> {
    let load = |url: &str, requests: Requests, cookie: Option<&str>| {
        runtime.block_on(
            Load::new(url, CONNECTIONS, requests)
                .cookie(cookie)
                .run(WARM_UP, MEASURE),
        )
    };
    let start = |runtime| app_of(&build.root, Some(&build.host), runtime, jwt_key);
    // Its market: its tickets listed through its API, orders' copy caught up.
    let pages = |market: &mut Market| -> Result<Requests> {
        let ids = market.list(TICKETS)?;
        market.wait_until_orders_knows_all()?;
        Ok(ticket_pages(&ids))
    };
    eprintln!("the reference commit {COMMIT}: its app, with {TICKETS} tickets listed");
    let app = start(Runtime::Host);
    let mut market = Market::open(&app)?;
    let page_requests = pages(&mut market)?;
    let url = app.base_url();
    // Its list first, as today's: the pages follow a list in both.
    let list = load(url, Requests::Same(Request::get("/api/tickets")), None)?;
    let current_user = load(
        url,
        Requests::Same(Request::get("/api/users/currentuser")),
        Some(&market.buyer_cookie),
    )?;
    let today_probe = probe_of(&harness::workspace_root(), None, Runtime::Host);
    let probe = probe_of(&build.root, Some(&build.host), Runtime::Host);
    let hello = Requests::Same(Request::get("/hello"));
    eprintln!("today's app and the reference's in turns, {ROUNDS} rounds ...");
    let page = turns(
        || load(today.app_url, today.pages.clone(), None),
        || load(url, page_requests.clone(), None),
    )?;
    let trivial = turns(
        || load(today_probe.base_url(), hello.clone(), None),
        || load(probe.base_url(), hello.clone(), None),
    )?;
    drop(market);
    drop(app);
    let spin_page = match spin {
        Some(spin) => {
            eprintln!("the reference commit {COMMIT}: its app on Spin");
            let app = start(spin.clone());
            let mut market = Market::open(&app)?;
            let requests = pages(&mut market)?;
            Some(load(app.base_url(), requests, None)?)
        }
        None => None,
    };
    Ok(Figures {
        list,
        current_user,
        page,
        trivial,
        instance_p50_micros: Instances::from_logs(&probe.logs()).p50(),
        spin_page,
    })
}

/// `ROUNDS` rounds of both loads, today's first in odd rounds and second in even ones.
fn turns(today: impl Fn() -> Result<Summary>, then: impl Fn() -> Result<Summary>) -> Result<Turns> {
    let mut turns = Turns {
        today: Vec::new(),
        then: Vec::new(),
    };
    for round in 0..ROUNDS {
        if round % 2 == 0 {
            turns.today.push(today()?);
            turns.then.push(then()?);
        } else {
            turns.then.push(then()?);
            turns.today.push(today()?);
        }
    }
    Ok(turns)
}

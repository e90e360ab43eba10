//! The data the bench runs on: a seller's tickets listed through the app's API, a
//! buyer's session, and consistent copies of the databases for the native baseline;
//! the same market on each runtime the app is measured on.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use harness::{App, Client};
use rusqlite::{Connection, OpenFlags};
use serde_json::json;

use crate::Side;

/// Listing requests in flight at once while seeding.
const SEEDERS: usize = 8;

pub struct Market<'a> {
    pub app: &'a App,
    seller: Client,
    /// `session=<jwt>`, for the load generator.
    pub buyer_cookie: String,
    pub buyer_email: &'static str,
    listed: usize,
}

pub const BUYER_PASSWORD: &str = "secret1";

impl<'a> Market<'a> {
    pub fn open(app: &'a App) -> Result<Market<'a>> {
        let seller = app.signed_up("seller");
        let buyer = app.new_client();
        let buyer_email = "buyer@example.com";
        let reply = buyer.post_json(
            "/api/users/signup",
            &json!({"email": buyer_email, "password": BUYER_PASSWORD}),
        );
        if reply.status != 201 {
            bail!("signing up the buyer answered {}", reply.status);
        }
        let set_cookie = reply.header("set-cookie").context("a session cookie")?;
        let buyer_cookie = set_cookie
            .split(';')
            .next()
            .context("a cookie")?
            .trim()
            .to_owned();
        Ok(Market {
            app,
            seller,
            buyer_cookie,
            buyer_email,
            listed: 0,
        })
    }

    /// Lists `count` more tickets through `POST /api/tickets`, several at a time; their ids.
    pub fn list(&mut self, count: usize) -> Result<Vec<String>> {
        let first = self.listed;
        self.listed += count;
        let seller = &self.seller;
        let chunks: Vec<Vec<usize>> = (0..SEEDERS)
            .map(|seeder| {
                (first..first + count)
                    .skip(seeder)
                    .step_by(SEEDERS)
                    .collect()
            })
            .collect();
        let listed: Vec<Result<Vec<(usize, String)>>> = std::thread::scope(|scope| {
            let workers: Vec<_> = chunks
                .iter()
                .map(|numbers| {
                    scope.spawn(move || {
                        numbers
                            .iter()
                            .map(|n| {
                                let body = json!({
                                    "title": format!("Concert #{n}"),
                                    "price": 10 + (n % 90),
                                });
                                let reply = seller.post_json("/api/tickets", &body);
                                if reply.status != 201 {
                                    bail!("listing a ticket answered {}", reply.status);
                                }
                                let id = reply.json()["id"]
                                    .as_str()
                                    .context("a ticket id")?
                                    .to_owned();
                                Ok((*n, id))
                            })
                            .collect()
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|worker| worker.join().expect("a seeder does not panic"))
                .collect()
        });
        let mut ids: Vec<(usize, String)> = Vec::with_capacity(count);
        for chunk in listed {
            ids.extend(chunk?);
        }
        ids.sort_unstable();
        Ok(ids.into_iter().map(|(_, id)| id).collect())
    }

    /// Waits until orders' replica holds every listed ticket (they arrive as events).
    pub fn wait_until_orders_knows_all(&self) -> Result<()> {
        let orders = read_only(&self.app.sqlite_path("orders"))?;
        let listed = self.listed;
        harness::eventually(
            &format!("orders to hear of {listed} tickets"),
            Duration::from_secs(120),
            || {
                let known: i64 = orders
                    .query_row("SELECT count(*) FROM tickets", [], |row| row.get(0))
                    .ok()?;
                (usize::try_from(known).ok()? >= listed).then_some(())
            },
        );
        Ok(())
    }

    /// How many tickets are for sale right now.
    pub fn for_sale(&self) -> Result<usize> {
        let tickets = read_only(&self.app.sqlite_path("tickets"))?;
        let count: i64 = tickets.query_row(
            "SELECT count(*) FROM tickets WHERE order_id IS NULL",
            [],
            |row| row.get(0),
        )?;
        Ok(usize::try_from(count)?)
    }

    /// A consistent copy of the databases the baseline serves (`VACUUM INTO`, taken
    /// while the app runs), into `dir`.
    pub fn snapshot(&self, dir: &Path) -> Result<()> {
        for name in ["tickets", "orders", "auth"] {
            let target = dir.join(format!("{name}.db"));
            let _ = std::fs::remove_file(&target);
            let source = Connection::open(self.app.sqlite_path(name))?;
            source
                .execute("VACUUM INTO ?", [target.to_string_lossy()])
                .with_context(|| format!("copying {name}.db"))?;
        }
        Ok(())
    }
}

/// The same market on each app the bench loads: on the host, and on real Spin when it
/// is measured too. Each lists the same tickets through its own API (so their ids
/// differ) and has its own signed-in buyer, with the same email and password.
pub struct Markets<'a> {
    pub host: Market<'a>,
    pub spin: Option<Market<'a>>,
}

/// Tickets just listed, by their ids on each app.
pub struct Listed {
    host: Vec<String>,
    /// Empty when Spin is not measured.
    spin: Vec<String>,
}

impl Listed {
    /// The ids `side` serves: the baseline's databases are a copy of the host's.
    pub fn ids(&self, side: Side) -> &[String] {
        match side {
            Side::Host | Side::Native => &self.host,
            Side::Spin => &self.spin,
        }
    }
}

impl<'a> Markets<'a> {
    /// Signs the seller and the buyer up on each app.
    pub fn open(host: &'a App, spin: Option<&'a App>) -> Result<Markets<'a>> {
        Ok(Markets {
            host: Market::open(host)?,
            spin: spin.map(Market::open).transpose()?,
        })
    }

    /// Lists `count` more tickets on each app.
    pub fn list(&mut self, count: usize) -> Result<Listed> {
        self.list_on_each(|market| market.list(count))
    }

    /// Lists on each app as many tickets as it takes to have `for_sale` for sale
    /// (the apps have sold different numbers).
    pub fn list_up_to(&mut self, for_sale: usize) -> Result<Listed> {
        self.list_on_each(|market| {
            let more = for_sale.saturating_sub(market.for_sale()?);
            market.list(more)
        })
    }

    /// Waits until each app's orders holds every ticket listed on it.
    pub fn wait_until_orders_knows_all(&self) -> Result<()> {
        std::iter::once(&self.host)
            .chain(&self.spin)
            .try_for_each(Market::wait_until_orders_knows_all)
    }

    /// Lists on the host, then on Spin, as `list` says: the ids each app gave.
    fn list_on_each(
        &mut self,
        mut list: impl FnMut(&mut Market<'a>) -> Result<Vec<String>>,
    ) -> Result<Listed> {
        Ok(Listed {
            host: list(&mut self.host)?,
            spin: match &mut self.spin {
                Some(market) => list(market)?,
                None => Vec::new(),
            },
        })
    }
}

pub fn read_only(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("opening {}", path.display()))?;
    conn.busy_timeout(Duration::from_secs(5))?;
    Ok(conn)
}

/// Adds `count` tickets to the orders replica of a copy (`pool-<n>` ids): the
/// baseline's fresh tickets to order, more than the app's since it is faster.
pub fn add_order_pool(dir: &Path, count: usize) -> Result<Vec<String>> {
    let mut conn = Connection::open(dir.join("orders.db"))?;
    let tx = conn.transaction()?;
    let ids: Vec<String> = (0..count).map(|n| format!("pool-{n:06}")).collect();
    {
        let mut insert = tx.prepare(
            "INSERT INTO tickets (id, title, price_cents, version) VALUES (?, 'Concert', 2500, 0)",
        )?;
        for id in &ids {
            insert.execute([id])?;
        }
    }
    tx.commit()?;
    Ok(ids)
}

//! Mixed traffic, as an operator's load test sends it: signed-in users list tickets,
//! edit them, order other users' tickets, pay (one card in ten declined), cancel, let
//! orders expire, sign up newcomers and browse. Every request is journaled with its
//! answer and latency, and every write's outcome goes into a ledger (acknowledged,
//! refused, or unknown: no answer or a 5xx), so that a scenario can follow the app
//! through faults and reconcile its databases with what the users were told.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::rng::Rng;
use crate::users;

/// Tickets on sale per user, at most: sellers list until the market holds this many
/// per user, and buyers' payments take tickets off it.
const STOCK: usize = 30;

/// What a request was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    SignUp,
    Browse,
    ShowTicket,
    MyOrders,
    List,
    Edit,
    Order,
    Pay,
    Cancel,
}

impl Kind {
    /// Whether it only reads.
    pub fn is_read(self) -> bool {
        matches!(self, Kind::Browse | Kind::ShowTicket | Kind::MyOrders)
    }
}

/// A status, or no answer at all (refused, reset, timed out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Status(u16),
    Broken(String),
}

/// One request of the run.
#[derive(Debug, Clone)]
pub struct Request {
    /// When it was sent, from the start of the mix.
    pub at: Duration,
    pub kind: Kind,
    pub answer: Answer,
    pub took: Duration,
}

impl Request {
    /// No answer, or a 5xx: the user saw the app fail.
    pub fn is_error(&self) -> bool {
        !matches!(self.answer, Answer::Status(status) if status < 500)
    }
}

/// A listing the app acknowledged, as its seller last saw it.
#[derive(Debug, Clone)]
pub struct TicketAck {
    pub seller: String,
    pub title: String,
    /// The price as the app answered it (`20` or `20.5`).
    pub price: String,
    pub version: i64,
    /// Edits sent after that one whose outcome is unknown: the ticket may show any.
    pub maybe: Vec<(String, String)>,
}

/// An order the app acknowledged, and what its buyer was told since.
#[derive(Debug, Clone, Default)]
pub struct OrderAck {
    pub buyer: String,
    pub ticket: String,
    /// Its `expiresAt`, in milliseconds since the epoch.
    pub expires_ms: i64,
    /// The cancel was acknowledged (204).
    pub cancelled: bool,
    /// A cancel was sent without an answer (or with a 5xx).
    pub maybe_cancelled: bool,
    /// The payment the app acknowledged (201), by id, and when the answer came (in
    /// milliseconds since the epoch).
    pub payment: Option<String>,
    pub paid_ms: i64,
    /// A payment was sent without an answer (or with a 5xx).
    pub maybe_paid: bool,
    /// Payments refused because the card was declined.
    pub declined: usize,
}

/// What the users were told about their writes.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Acknowledged sign-ups: email → user id.
    pub users: BTreeMap<String, String>,
    pub tickets: BTreeMap<String, TicketAck>,
    pub orders: BTreeMap<String, OrderAck>,
    /// Listings sent without an answer: (seller, title). Each may or may not exist.
    pub maybe_tickets: Vec<(String, String)>,
    /// Orders sent without an answer: (buyer, ticket).
    pub maybe_orders: Vec<(String, String)>,
    /// Writes refused with a 4xx, by kind.
    pub refused: BTreeMap<Kind, usize>,
}

/// The traffic: where it goes (the app's URL changes when the app is restarted), what
/// it has done so far.
pub struct Mix {
    target: RwLock<String>,
    started: Instant,
    stop: AtomicBool,
    journal: Mutex<Vec<Request>>,
    ledger: Mutex<Ledger>,
    /// Acknowledged listings anyone may order: (ticket, seller). A ticket leaves it when
    /// someone pays for it.
    market: Mutex<Vec<(String, String)>>,
    /// How many users are running (the market holds at most [`STOCK`] tickets each).
    users: AtomicUsize,
    /// The payment window of the app, after which an unpaid order is expired.
    window: Duration,
}

/// One user's own view: their id, listings and open orders.
struct Me {
    id: String,
    tickets: Vec<String>,
    orders: Vec<(String, Instant)>,
    listed: usize,
}

impl Mix {
    pub fn new(base_url: &str, window: Duration) -> Mix {
        Mix {
            target: RwLock::new(base_url.to_owned()),
            started: Instant::now(),
            stop: AtomicBool::new(false),
            journal: Mutex::new(Vec::new()),
            ledger: Mutex::new(Ledger::default()),
            market: Mutex::new(Vec::new()),
            users: AtomicUsize::new(0),
            window,
        }
    }

    /// Sends every later request to `base_url` (the app, restarted elsewhere).
    pub fn retarget(&self, base_url: &str) {
        *self.target.write().expect("no panics while retargeting") = base_url.to_owned();
    }

    /// Time since the mix was made.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Starts `users` users in `scope`, each until [`Mix::stop`].
    pub fn start<'scope>(
        &'scope self,
        scope: &'scope std::thread::Scope<'scope, '_>,
        users: usize,
        seed: u64,
    ) {
        self.users.fetch_add(users, Ordering::SeqCst);
        for n in 0..users {
            scope.spawn(move || self.user(n, seed ^ (n as u64).wrapping_mul(0x2545_f491)));
        }
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Every request so far, in the order they were sent.
    pub fn requests(&self) -> Vec<Request> {
        let mut requests = lock(&self.journal).clone();
        requests.sort_by_key(|request| request.at);
        requests
    }

    pub fn into_ledger(self) -> Ledger {
        self.ledger
            .into_inner()
            .expect("no panics while holding the ledger")
    }

    fn is_stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn user(&self, n: usize, seed: u64) {
        let mut rng = Rng::new(seed);
        let http = http_client();
        let name = format!("mix{n}-{}", harness::random_hex(3));
        let Some(id) = self.sign_up(&http, &name) else {
            return;
        };
        let mut me = Me {
            id,
            tickets: Vec::new(),
            orders: Vec::new(),
            listed: 0,
        };
        while !self.is_stopped() {
            self.act(&http, &mut rng, &mut me);
            // A person between two clicks: 50 to 150 ms.
            std::thread::sleep(Duration::from_millis(50 + rng.below(100) as u64));
        }
    }

    /// Signs `name` up (or in, if a sign-up whose answer was lost did go through).
    fn sign_up(&self, http: &reqwest::blocking::Client, name: &str) -> Option<String> {
        let email = format!("{name}@example.com");
        let credentials = json!({"email": email, "password": users::password()});
        while !self.is_stopped() {
            let (answer, body) = self.send(
                http,
                Kind::SignUp,
                Method::POST,
                "/api/users/signup",
                Some(&credentials),
            );
            let signed_up = match answer {
                Answer::Status(201) => true,
                Answer::Status(400) if body_says(&body, "Email in use") => {
                    let (answer, signed_in) = self.send(
                        http,
                        Kind::SignUp,
                        Method::POST,
                        "/api/users/signin",
                        Some(&credentials),
                    );
                    if answer != Answer::Status(200) {
                        continue;
                    }
                    let id = signed_in["id"].as_str().unwrap_or_default().to_owned();
                    lock(&self.ledger).users.insert(email.clone(), id.clone());
                    return Some(id);
                }
                _ => false,
            };
            if signed_up {
                let id = body["id"].as_str().unwrap_or_default().to_owned();
                lock(&self.ledger).users.insert(email.clone(), id.clone());
                return Some(id);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        None
    }

    fn act(&self, http: &reqwest::blocking::Client, rng: &mut Rng, me: &mut Me) {
        // Orders past their window are the app's to expire now.
        let window = self.window;
        me.orders
            .retain(|(_, placed)| placed.elapsed() < window + Duration::from_secs(2));
        match rng.below(100) {
            0..25 => {
                self.send(http, Kind::Browse, Method::GET, "/api/tickets", None);
            }
            25..40 => {
                let ticket = {
                    let market = lock(&self.market);
                    (!market.is_empty()).then(|| market[rng.below(market.len())].0.clone())
                };
                if let Some(ticket) = ticket {
                    let path = format!("/api/tickets/{ticket}");
                    self.send(http, Kind::ShowTicket, Method::GET, &path, None);
                }
            }
            40..48 => {
                self.send(http, Kind::MyOrders, Method::GET, "/api/orders", None);
            }
            // Sellers keep the market stocked rather than growing it without end: the
            // load then stays the same through a long run (`GET /api/tickets` answers
            // every ticket on sale), and a soak shows what time does, not a growing
            // catalogue. A full market gets edits instead.
            48..60 if self.is_stocked() => self.edit(http, rng, me),
            48..60 => self.list(http, rng, me),
            60..68 => self.edit(http, rng, me),
            68..83 => self.order(http, rng, me),
            83..93 => self.pay(http, rng, me),
            93..98 => self.cancel(http, rng, me),
            _ => {
                // A newcomer: signed up on a client of their own, then gone.
                let newcomer = format!("newcomer-{}", harness::random_hex(4));
                self.sign_up(&http_client(), &newcomer);
            }
        }
    }

    fn is_stocked(&self) -> bool {
        lock(&self.market).len() >= STOCK * self.users.load(Ordering::SeqCst)
    }

    fn list(&self, http: &reqwest::blocking::Client, rng: &mut Rng, me: &mut Me) {
        me.listed += 1;
        let title = format!("mix {} #{}", &me.id[..6.min(me.id.len())], me.listed);
        let price = price(rng);
        let body = json!({"title": title, "price": price});
        let (answer, ticket) =
            self.send(http, Kind::List, Method::POST, "/api/tickets", Some(&body));
        match answer {
            Answer::Status(201) => {
                let id = ticket["id"].as_str().unwrap_or_default().to_owned();
                lock(&self.ledger).tickets.insert(
                    id.clone(),
                    TicketAck {
                        seller: me.id.clone(),
                        title,
                        price: ticket["price"].to_string(),
                        version: ticket["version"].as_i64().unwrap_or(0),
                        maybe: Vec::new(),
                    },
                );
                lock(&self.market).push((id.clone(), me.id.clone()));
                me.tickets.push(id);
            }
            Answer::Status(status) if status < 500 => self.refused(Kind::List),
            _ => lock(&self.ledger)
                .maybe_tickets
                .push((me.id.clone(), title)),
        }
    }

    fn edit(&self, http: &reqwest::blocking::Client, rng: &mut Rng, me: &mut Me) {
        if me.tickets.is_empty() {
            return;
        }
        let ticket = me.tickets[rng.below(me.tickets.len())].clone();
        let title = format!("edited {}", harness::random_hex(3));
        let body = json!({"title": title, "price": price(rng)});
        let path = format!("/api/tickets/{ticket}");
        let (answer, edited) = self.send(http, Kind::Edit, Method::PUT, &path, Some(&body));
        let mut ledger = lock(&self.ledger);
        match answer {
            Answer::Status(200) => {
                if let Some(ack) = ledger.tickets.get_mut(&ticket) {
                    ack.title = title;
                    ack.price = edited["price"].to_string();
                    ack.version = edited["version"].as_i64().unwrap_or(ack.version);
                    ack.maybe.clear();
                }
            }
            Answer::Status(status) if status < 500 => {
                *ledger.refused.entry(Kind::Edit).or_default() += 1;
            }
            _ => {
                if let Some(ack) = ledger.tickets.get_mut(&ticket) {
                    ack.maybe.push((title, body["price"].to_string()));
                }
            }
        }
    }

    fn order(&self, http: &reqwest::blocking::Client, rng: &mut Rng, me: &mut Me) {
        let ticket = {
            let market = lock(&self.market);
            let others: Vec<&(String, String)> = market
                .iter()
                .filter(|(_, seller)| *seller != me.id)
                .collect();
            if others.is_empty() {
                return;
            }
            others[rng.below(others.len())].0.clone()
        };
        let body = json!({"ticketId": ticket});
        let (answer, order) =
            self.send(http, Kind::Order, Method::POST, "/api/orders", Some(&body));
        match answer {
            Answer::Status(201) => {
                let id = order["id"].as_str().unwrap_or_default().to_owned();
                lock(&self.ledger).orders.insert(
                    id.clone(),
                    OrderAck {
                        buyer: me.id.clone(),
                        ticket,
                        expires_ms: order["expiresAt"]
                            .as_str()
                            .and_then(|at| humantime::parse_rfc3339(at).ok())
                            .map_or(0, epoch_ms),
                        ..OrderAck::default()
                    },
                );
                me.orders.push((id, Instant::now()));
            }
            Answer::Status(status) if status < 500 => self.refused(Kind::Order),
            _ => lock(&self.ledger)
                .maybe_orders
                .push((me.id.clone(), ticket)),
        }
    }

    fn pay(&self, http: &reqwest::blocking::Client, rng: &mut Rng, me: &mut Me) {
        if me.orders.is_empty() {
            return;
        }
        let index = rng.below(me.orders.len());
        let order = me.orders[index].0.clone();
        let token = if rng.chance(10) {
            "tok_chargeDeclined"
        } else {
            "tok_visa"
        };
        let body = json!({"token": token, "orderId": order});
        let (answer, paid) = self.send(http, Kind::Pay, Method::POST, "/api/payments", Some(&body));
        let mut ledger = lock(&self.ledger);
        let Some(ack) = ledger.orders.get_mut(&order) else {
            return;
        };
        match answer {
            Answer::Status(201) => {
                ack.payment = paid["id"].as_str().map(str::to_owned);
                ack.paid_ms = epoch_ms(std::time::SystemTime::now());
                let ticket = ack.ticket.clone();
                lock(&self.market).retain(|(on_sale, _)| *on_sale != ticket);
                me.orders.remove(index);
            }
            // Payments has not heard of the order yet: try again later.
            Answer::Status(404) => {}
            Answer::Status(400)
                if token == "tok_chargeDeclined" && body_says(&paid, "declined") =>
            {
                ack.declined += 1;
            }
            Answer::Status(status) if status < 500 => {
                *ledger.refused.entry(Kind::Pay).or_default() += 1;
                me.orders.remove(index);
            }
            _ => ack.maybe_paid = true,
        }
    }

    fn cancel(&self, http: &reqwest::blocking::Client, rng: &mut Rng, me: &mut Me) {
        if me.orders.is_empty() {
            return;
        }
        let index = rng.below(me.orders.len());
        let order = me.orders[index].0.clone();
        let path = format!("/api/orders/{order}");
        let (answer, _) = self.send(http, Kind::Cancel, Method::DELETE, &path, None);
        let mut ledger = lock(&self.ledger);
        match answer {
            Answer::Status(204) => {
                if let Some(ack) = ledger.orders.get_mut(&order) {
                    ack.cancelled = true;
                }
                me.orders.remove(index);
            }
            Answer::Status(status) if status < 500 => {
                *ledger.refused.entry(Kind::Cancel).or_default() += 1;
                me.orders.remove(index);
            }
            _ => {
                if let Some(ack) = ledger.orders.get_mut(&order) {
                    ack.maybe_cancelled = true;
                }
            }
        }
    }

    fn refused(&self, kind: Kind) {
        *lock(&self.ledger).refused.entry(kind).or_default() += 1;
    }

    /// Sends one request to the app's current address and journals it.
    fn send(
        &self,
        http: &reqwest::blocking::Client,
        kind: Kind,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> (Answer, Value) {
        let url = format!(
            "{}{path}",
            self.target.read().expect("no panics while retargeting")
        );
        let sent = Instant::now();
        let mut request = http.request(method, url);
        if let Some(body) = body {
            request = request.json(body);
        }
        let outcome = request.send().and_then(|response| {
            let status = response.status().as_u16();
            Ok((status, response.bytes()?))
        });
        let took = sent.elapsed();
        let (answer, value) = match outcome {
            Ok((status, bytes)) => (
                Answer::Status(status),
                serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            ),
            Err(err) => (Answer::Broken(err.to_string()), Value::Null),
        };
        lock(&self.journal).push(Request {
            at: sent.duration_since(self.started),
            kind,
            answer: answer.clone(),
            took,
        });
        (answer, value)
    }
}

/// A client with its own cookie jar (the session survives a restart of the app: the
/// cookie is for 127.0.0.1 whatever the port), only to 127.0.0.1.
fn http_client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .cookie_store(true)
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client")
}

/// A price between 5 and 100 dollars, in cents, as a JSON number.
fn price(rng: &mut Rng) -> f64 {
    (500 + rng.below(9_500)) as f64 / 100.0
}

/// Milliseconds since the epoch.
pub fn epoch_ms(time: std::time::SystemTime) -> i64 {
    time.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
}

fn body_says(body: &Value, text: &str) -> bool {
    body["errors"][0]["message"]
        .as_str()
        .is_some_and(|message| message.contains(text))
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .expect("no panics while holding the mix's state")
}

/// The requests of one stretch of time.
#[derive(Debug, Clone)]
pub struct Window {
    pub from: Duration,
    pub requests: usize,
    pub errors: usize,
    /// The 95th percentile of the answered requests' latency.
    pub p95: Duration,
}

/// `requests` cut into windows of `width`, from `from` up to `until`.
pub fn windows(
    requests: &[Request],
    from: Duration,
    until: Duration,
    width: Duration,
) -> Vec<Window> {
    let mut windows = Vec::new();
    let mut start = from;
    while start < until {
        let end = (start + width).min(until);
        let inside: Vec<&Request> = requests
            .iter()
            .filter(|request| request.at >= start && request.at < end)
            .collect();
        windows.push(Window {
            from: start,
            requests: inside.len(),
            errors: inside.iter().filter(|request| request.is_error()).count(),
            p95: percentile(
                inside
                    .iter()
                    .filter(|request| !request.is_error())
                    .map(|request| request.took),
                0.95,
            ),
        });
        start = end;
    }
    windows
}

/// The `fraction` percentile of `latencies` (zero when there are none).
pub fn percentile(latencies: impl Iterator<Item = Duration>, fraction: f64) -> Duration {
    let mut sorted: Vec<Duration> = latencies.collect();
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted.sort();
    let rank = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(at_ms: u64, took_ms: u64, status: Option<u16>) -> Request {
        Request {
            at: Duration::from_millis(at_ms),
            kind: Kind::Browse,
            answer: status.map_or(Answer::Broken("reset".into()), Answer::Status),
            took: Duration::from_millis(took_ms),
        }
    }

    #[test]
    fn windows_count_errors_and_the_latency_of_answers() {
        let requests = [
            request(100, 10, Some(200)),
            request(200, 30, Some(400)),
            request(300, 900, Some(500)),
            request(1_100, 20, None),
            request(1_200, 40, Some(201)),
        ];
        let windows = windows(
            &requests,
            Duration::ZERO,
            Duration::from_secs(2),
            Duration::from_secs(1),
        );
        assert_eq!(windows.len(), 2);
        assert_eq!((windows[0].requests, windows[0].errors), (3, 1));
        assert_eq!(windows[0].p95, Duration::from_millis(30));
        assert_eq!((windows[1].requests, windows[1].errors), (2, 1));
        assert_eq!(windows[1].p95, Duration::from_millis(40));
    }

    #[test]
    fn percentiles_of_nothing_are_zero() {
        assert_eq!(percentile(std::iter::empty(), 0.95), Duration::ZERO);
        let latencies = (1..=100).map(Duration::from_millis);
        assert_eq!(percentile(latencies, 0.95), Duration::from_millis(95));
    }
}

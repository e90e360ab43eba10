//! A closed-loop load generator: N keep-alive HTTP/1.1 connections, each sending its
//! next request as soon as the previous answer is read; latencies of every answer, and
//! every request that got no successful answer (a refused or broken connection
//! included) as an error.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Method;
use hyper_util::rt::TokioIo;

/// What to send: the same request every time, or the next one of a finite pool (each
/// order on a fresh ticket); a connection stops when the pool is used up.
#[derive(Clone)]
pub enum Requests {
    Same(Request),
    Pool(Arc<Pool>),
}

#[derive(Clone)]
pub struct Request {
    pub method: Method,
    pub path: String,
    pub body: Option<Bytes>,
}

impl Request {
    pub fn get(path: impl Into<String>) -> Request {
        Request {
            method: Method::GET,
            path: path.into(),
            body: None,
        }
    }

    pub fn post_json(path: impl Into<String>, body: &serde_json::Value) -> Request {
        Request {
            method: Method::POST,
            path: path.into(),
            body: Some(Bytes::from(body.to_string())),
        }
    }
}

/// Requests handed out once each, in order, to whichever connection asks next.
pub struct Pool {
    requests: Vec<Request>,
    next: AtomicUsize,
    /// Cycle through the requests instead of stopping at the end.
    cycle: bool,
}

impl Pool {
    /// Each request once; then the load ends.
    pub fn once(requests: Vec<Request>) -> Arc<Pool> {
        Arc::new(Pool {
            requests,
            next: AtomicUsize::new(0),
            cycle: false,
        })
    }

    /// The requests round and round (e.g. every ticket's page in turn).
    pub fn cycle(requests: Vec<Request>) -> Arc<Pool> {
        Arc::new(Pool {
            requests,
            next: AtomicUsize::new(0),
            cycle: true,
        })
    }

    fn next(&self) -> Option<&Request> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        if self.cycle {
            self.requests.get(n % self.requests.len().max(1))
        } else {
            self.requests.get(n)
        }
    }
}

impl Requests {
    fn next(&self) -> Option<&Request> {
        match self {
            Requests::Same(request) => Some(request),
            Requests::Pool(pool) => pool.next(),
        }
    }
}

pub struct Load {
    base: hyper::Uri,
    connections: usize,
    requests: Requests,
    cookie: Option<String>,
    /// Requests per second at a fixed arrival rate (open loop), or None: each
    /// connection sends its next request when the answer is in (closed loop).
    rate: Option<f64>,
}

/// The open loop's timetable: request `n` is due at `start + n / rate`, whichever
/// connection is free to send it. A request that waits for a free connection counts
/// that wait in its latency, as a user's would (queueing is not hidden).
struct Timetable {
    start: Instant,
    rate: f64,
    next: AtomicU64,
}

impl Timetable {
    fn take(&self) -> Instant {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.start + Duration::from_secs_f64(n as f64 / self.rate)
    }
}

/// What one run measured.
pub struct Summary {
    /// Sorted.
    latencies: Vec<Duration>,
    elapsed: Duration,
    pub errors: usize,
}

impl Load {
    /// `base` is the server's `http://host:port`.
    pub fn new(base: &str, connections: usize, requests: Requests) -> Load {
        Load {
            base: base.parse().expect("the bench builds valid URLs"),
            connections,
            requests,
            cookie: None,
            rate: None,
        }
    }

    /// Sends `rate` requests per second on schedule, whatever the answers take.
    pub fn open_loop(mut self, rate: f64) -> Load {
        self.rate = Some(rate);
        self
    }

    /// Sends `Cookie: <cookie>` with every request (a signed-in user).
    pub fn cookie(mut self, cookie: Option<&str>) -> Load {
        self.cookie = cookie.map(str::to_owned);
        self
    }

    /// Loads for `warm_up` (not counted), then measures for `measure`, or until a
    /// pool of requests is used up.
    pub async fn run(&self, warm_up: Duration, measure: Duration) -> Result<Summary> {
        let started = Instant::now();
        let window = Window {
            counted_from: started + warm_up,
            until: started + warm_up + measure,
        };
        let timetable = self.rate.map(|rate| {
            Arc::new(Timetable {
                start: started,
                rate,
                next: Default::default(),
            })
        });
        let workers: Vec<_> = (0..self.connections)
            .map(|_| {
                tokio::spawn(connection(
                    self.base.clone(),
                    self.requests.clone(),
                    self.cookie.clone(),
                    window,
                    timetable.clone(),
                ))
            })
            .collect();
        let mut latencies = Vec::new();
        let mut errors = 0;
        let mut last_answer = window.counted_from;
        for worker in workers {
            let measured = worker.await??;
            latencies.extend(measured.latencies);
            errors += measured.errors;
            last_answer = last_answer.max(measured.last_answer);
        }
        latencies.sort_unstable();
        Ok(Summary {
            latencies,
            elapsed: last_answer
                .min(window.until)
                .saturating_duration_since(window.counted_from),
            errors,
        })
    }
}

#[derive(Clone, Copy)]
struct Window {
    counted_from: Instant,
    until: Instant,
}

struct Measured {
    latencies: Vec<Duration>,
    errors: usize,
    last_answer: Instant,
}

/// One client connection's loop. A request that fails, or whose connection cannot be
/// made or breaks, counts as an error, and the next request goes out on a new
/// connection: a server that drops connections shows errors, not fewer requests.
async fn connection(
    base: hyper::Uri,
    requests: Requests,
    cookie: Option<String>,
    window: Window,
    timetable: Option<Arc<Timetable>>,
) -> Result<Measured> {
    let authority = base.authority().context("a URL with a host")?.to_string();
    let mut measured = Measured {
        latencies: Vec::new(),
        errors: 0,
        last_answer: window.counted_from,
    };
    let mut sender: Option<Sender> = None;
    loop {
        if Instant::now() >= window.until {
            break;
        }
        // A connection the server closed after its last answer lost nothing: the next
        // request opens another.
        if let Some(open) = sender.as_mut()
            && open.ready().await.is_err()
        {
            sender = None;
        }
        let Some(spec) = requests.next() else {
            break;
        };
        let mut request = hyper::Request::builder()
            .method(spec.method.clone())
            .uri(spec.path.as_str())
            .header(hyper::header::HOST, &authority);
        if let Some(cookie) = &cookie {
            request = request.header(hyper::header::COOKIE, cookie);
        }
        if spec.body.is_some() {
            request = request.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let request = request.body(Full::new(spec.body.clone().unwrap_or_default()))?;
        let sent = match &timetable {
            None => Instant::now(),
            Some(timetable) => {
                let due = timetable.take();
                if due >= window.until {
                    break;
                }
                if due > Instant::now() {
                    // Early: wait, and time from when it could go (the timer's own
                    // lateness is not the server's).
                    tokio::time::sleep_until(due.into()).await;
                    Instant::now()
                } else {
                    // Late because every connection was busy: the wait counts.
                    due
                }
            }
        };
        let answer = match sender.as_mut() {
            Some(open) => Ok(open),
            None => connect(&authority).await.map(|open| sender.insert(open)),
        };
        let ok = match answer {
            Ok(open) => match open.send_request(request).await {
                Ok(response) => {
                    let is_success = response.status().is_success();
                    response.into_body().collect().await.is_ok() && is_success
                }
                Err(_) => {
                    // Broken mid-request: the next request reconnects.
                    sender = None;
                    false
                }
            },
            Err(_) => {
                // Refused: wait a moment rather than spin, then try again.
                tokio::time::sleep(RECONNECT_AFTER).await;
                false
            }
        };
        if sent >= window.counted_from {
            measured.last_answer = Instant::now();
            if ok {
                measured.latencies.push(sent.elapsed());
            } else {
                measured.errors += 1;
            }
        }
    }
    Ok(measured)
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// How long a connection waits after the server refused it.
const RECONNECT_AFTER: Duration = Duration::from_millis(10);

/// A new keep-alive HTTP/1.1 connection to `authority`.
async fn connect(authority: &str) -> Result<Sender> {
    let stream = tokio::net::TcpStream::connect(authority).await?;
    stream.set_nodelay(true)?;
    let (sender, driver) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(driver);
    Ok(sender)
}

impl Summary {
    pub fn requests_per_second(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 {
            self.latencies.len() as f64 / seconds
        } else {
            0.0
        }
    }

    pub fn percentile(&self, percent: f64) -> Duration {
        percentile(&self.latencies, percent).unwrap_or(Duration::ZERO)
    }
}

#[cfg(test)]
impl Summary {
    /// `answers` answers of `latency` each over one second, no errors: figures for the
    /// report's tests.
    pub fn of(answers: usize, latency: Duration) -> Summary {
        Summary {
            latencies: vec![latency; answers],
            elapsed: Duration::from_secs(1),
            errors: 0,
        }
    }
}

/// The nearest-rank percentile of sorted values; `None` when there are none.
pub fn percentile<T: Copy>(sorted: &[T], percent: f64) -> Option<T> {
    let last = sorted.len().checked_sub(1)?;
    let rank = ((percent / 100.0) * last as f64).round() as usize;
    Some(sorted[rank.min(last)])
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    use super::*;

    /// Reads one request without a body (up to its blank line); `false` at the end.
    fn read_request(socket: &mut TcpStream) -> bool {
        let mut request = Vec::new();
        let mut byte = [0u8; 1];
        while !request.ends_with(b"\r\n\r\n") {
            match socket.read(&mut byte) {
                Ok(1) => request.push(byte[0]),
                _ => return false,
            }
        }
        true
    }

    /// A server (on a thread of its own) that answers the first request of each
    /// connection, then reads the second and closes the connection without answering.
    fn dropping_every_second_request() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let base = format!("http://{}", listener.local_addr().expect("an address"));
        std::thread::spawn(move || {
            for mut socket in listener.incoming().flatten() {
                if read_request(&mut socket) {
                    let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                    let _ = socket.write_all(answer);
                    read_request(&mut socket);
                }
            }
        });
        base
    }

    #[tokio::test]
    async fn a_broken_connection_counts_an_error_and_the_load_goes_on() {
        let base = dropping_every_second_request();
        let pool = Pool::once(vec![Request::get("/"); 20]);
        let summary = Load::new(&base, 1, Requests::Pool(pool))
            .run(Duration::ZERO, Duration::from_secs(30))
            .await
            .expect("the load runs");
        assert_eq!(
            (summary.latencies.len(), summary.errors),
            (10, 10),
            "every request answered or counted as an error"
        );
    }

    #[tokio::test]
    async fn a_refused_connection_counts_errors_and_is_tried_again() {
        let port = {
            let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
            listener.local_addr().expect("an address").port()
        };
        let summary = Load::new(
            &format!("http://127.0.0.1:{port}"),
            2,
            Requests::Same(Request::get("/")),
        )
        .run(Duration::ZERO, Duration::from_millis(300))
        .await
        .expect("a server that refuses is measured, not a failed run");
        assert!(summary.latencies.is_empty());
        assert!(summary.errors >= 2, "{} errors", summary.errors);
    }

    /// A server that answers every request of every connection at once.
    fn answering() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let base = format!("http://{}", listener.local_addr().expect("an address"));
        std::thread::spawn(move || {
            for mut socket in listener.incoming().flatten() {
                std::thread::spawn(move || {
                    while read_request(&mut socket) {
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        if socket.write_all(answer).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        base
    }

    #[tokio::test]
    async fn the_open_loop_sends_its_rate_not_what_the_server_could_take() {
        let base = answering();
        let summary = Load::new(&base, 4, Requests::Same(Request::get("/")))
            .open_loop(100.0)
            .run(Duration::ZERO, Duration::from_secs(1))
            .await
            .expect("the load runs");
        // 100 requests are due in the second; a closed loop would send thousands.
        let sent = summary.latencies.len() + summary.errors;
        assert!((95..=101).contains(&sent), "{sent} requests");
        assert_eq!(summary.errors, 0);
    }
}

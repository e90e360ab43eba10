//! A stand-in for Stripe's charges and refunds endpoints on 127.0.0.1, for payments'
//! tests. It records every request and answers as Stripe documents: form-encoded
//! requests with `Authorization: Bearer <secret key>`; `Idempotency-Key` honoured (the
//! same key and parameters replay the first answer, other parameters are a 400
//! `idempotency_error`, a key still in flight a 409); `tok_chargeDeclined` declined with
//! a 402 card error, unknown tokens a 400. It can also hold charges (to stage a race)
//! and lose answers after acting on them (to stage an outage at the worst moment).

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::json;

use crate::eventually;

/// One request as the stub received it.
#[derive(Debug, Clone)]
pub struct StubRequest {
    pub method: String,
    pub path: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    /// The decoded form fields, in order.
    pub form: Vec<(String, String)>,
}

impl StubRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(known, _)| known.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    pub fn field(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(known, _)| known == name)
            .map(|(_, value)| value.as_str())
    }
}

/// A charge the stub made (replays of an idempotent request make none).
#[derive(Debug, Clone, PartialEq)]
pub struct StubCharge {
    pub id: String,
    pub amount: i64,
    pub currency: String,
    pub source: String,
    pub idempotency_key: Option<String>,
}

/// A refund the stub made.
#[derive(Debug, Clone, PartialEq)]
pub struct StubRefund {
    pub id: String,
    pub charge: String,
    pub idempotency_key: Option<String>,
}

pub struct StripeStub {
    port: u16,
    shared: Arc<Shared>,
}

struct Shared {
    secret_key: String,
    state: Mutex<State>,
    released: Condvar,
}

#[derive(Default)]
struct State {
    requests: Vec<StubRequest>,
    charges: Vec<StubCharge>,
    refunds: Vec<StubRefund>,
    /// Idempotency key -> (the request's form, the answer given).
    answers: HashMap<String, (Vec<(String, String)>, Answer)>,
    in_flight: HashSet<String>,
    /// Charges wait while this is set.
    holding: bool,
    /// Charges being held right now.
    held: usize,
    /// How many of the next charges are made without their answer reaching the client.
    answers_to_lose: usize,
}

type Answer = (u16, String);

impl StripeStub {
    /// Starts the stub; it accepts `secret_key` only.
    pub fn start(secret_key: &str) -> StripeStub {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
        let port = listener.local_addr().expect("a bound listener").port();
        let shared = Arc::new(Shared {
            secret_key: secret_key.to_owned(),
            state: Mutex::new(State::default()),
            released: Condvar::new(),
        });
        let serving = shared.clone();
        // The thread ends with the test process; the listener is never shut down.
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let shared = serving.clone();
                std::thread::spawn(move || serve(&shared, stream));
            }
        });
        StripeStub { port, shared }
    }

    /// The value for the app's `stripe_api_base`.
    pub fn api_base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn requests(&self) -> Vec<StubRequest> {
        self.state().requests.clone()
    }

    pub fn charges(&self) -> Vec<StubCharge> {
        self.state().charges.clone()
    }

    pub fn refunds(&self) -> Vec<StubRefund> {
        self.state().refunds.clone()
    }

    /// From now on, charges wait before they are made, until `release_charges`.
    pub fn hold_charges(&self) {
        self.state().holding = true;
    }

    pub fn release_charges(&self) {
        self.state().holding = false;
        self.shared.released.notify_all();
    }

    /// Waits until `count` charges are being held.
    pub fn wait_for_held_charges(&self, count: usize) {
        eventually(
            &format!("{count} charges held at the Stripe stub"),
            Duration::from_secs(20),
            || (self.state().held >= count).then_some(()),
        );
    }

    /// The next `count` charges are made, but the connection closes before the answer
    /// is sent: the client cannot know whether it was charged.
    pub fn lose_next_answers(&self, count: usize) {
        self.state().answers_to_lose = count;
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

fn serve(shared: &Shared, stream: TcpStream) {
    let Some(request) = read_request(&stream) else {
        return;
    };
    if let Some((status, body)) = answer(shared, request) {
        let mut stream = stream;
        let _ = write!(
            stream,
            "HTTP/1.1 {status} Stub\r\ncontent-type: application/json\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
    }
}

fn read_request(stream: &TcpStream) -> Option<StubRequest> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 || line == "\r\n" {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let length = headers
        .iter()
        .find(|(name, _)| name == "content-length")
        .and_then(|(_, value)| value.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    let form = form_urlencoded::parse(&body).into_owned().collect();
    Some(StubRequest {
        method,
        path,
        headers,
        form,
    })
}

/// The answer to a request; `None`: close the connection without one.
fn answer(shared: &Shared, request: StubRequest) -> Option<Answer> {
    let mut state = shared
        .state
        .lock()
        .unwrap_or_else(|poison| poison.into_inner());
    state.requests.push(request.clone());
    let expected = format!("Bearer {}", shared.secret_key);
    if request.header("authorization") != Some(expected.as_str()) {
        return Some(error(
            401,
            "invalid_request_error",
            None,
            "Invalid API Key provided: sk_****",
        ));
    }
    let is_charge = match (request.method.as_str(), request.path.as_str()) {
        ("POST", "/v1/charges") => true,
        ("POST", "/v1/refunds") => false,
        _ => {
            return Some(error(
                404,
                "invalid_request_error",
                None,
                "Unrecognized request URL",
            ));
        }
    };
    let key = request.header("idempotency-key").map(str::to_owned);
    if let Some(key) = &key {
        if let Some((form, answer)) = state.answers.get(key) {
            if *form == request.form {
                return Some(answer.clone());
            }
            return Some(error(
                400,
                "idempotency_error",
                None,
                "Keys for idempotent requests can only be used with the same parameters \
                 they were first used with.",
            ));
        }
        if !state.in_flight.insert(key.clone()) {
            return Some(error(
                409,
                "idempotency_error",
                Some("idempotency_key_in_use"),
                "There is currently another in-progress request using this Idempotent Key.",
            ));
        }
    }
    if is_charge && state.holding {
        state.held += 1;
        while state.holding {
            state = shared
                .released
                .wait(state)
                .unwrap_or_else(|poison| poison.into_inner());
        }
        state.held -= 1;
    }
    let answer = if is_charge {
        charge(&mut state, &request, key.as_deref())
    } else {
        refund(&mut state, &request, key.as_deref())
    };
    if let Some(key) = key {
        state.in_flight.remove(&key);
        state
            .answers
            .insert(key, (request.form.clone(), answer.clone()));
    }
    if is_charge && state.answers_to_lose > 0 {
        state.answers_to_lose -= 1;
        return None;
    }
    Some(answer)
}

fn charge(state: &mut State, request: &StubRequest, key: Option<&str>) -> Answer {
    let Some(amount) = request
        .field("amount")
        .and_then(|amount| amount.parse::<i64>().ok())
    else {
        return error(
            400,
            "invalid_request_error",
            Some("parameter_missing"),
            "Missing required param: amount.",
        );
    };
    let source = request.field("source").unwrap_or_default().to_owned();
    if source == "tok_chargeDeclined" {
        return error(
            402,
            "card_error",
            Some("card_declined"),
            "Your card was declined.",
        );
    }
    if !source.starts_with("tok_") {
        return error(
            400,
            "invalid_request_error",
            Some("resource_missing"),
            &format!("No such token: '{source}'"),
        );
    }
    let id = format!("ch_stub_{}", state.charges.len() + 1);
    let currency = request.field("currency").unwrap_or_default().to_owned();
    state.charges.push(StubCharge {
        id: id.clone(),
        amount,
        currency: currency.clone(),
        source,
        idempotency_key: key.map(str::to_owned),
    });
    let body = json!({
        "id": id, "object": "charge", "amount": amount, "currency": currency,
        "paid": true, "status": "succeeded"
    });
    (200, body.to_string())
}

fn refund(state: &mut State, request: &StubRequest, key: Option<&str>) -> Answer {
    let charge = request.field("charge").unwrap_or_default().to_owned();
    if !state.charges.iter().any(|known| known.id == charge) {
        return error(
            400,
            "invalid_request_error",
            Some("resource_missing"),
            &format!("No such charge: '{charge}'"),
        );
    }
    if state.refunds.iter().any(|known| known.charge == charge) {
        return error(
            400,
            "invalid_request_error",
            Some("charge_already_refunded"),
            &format!("Charge {charge} has already been refunded."),
        );
    }
    let id = format!("re_stub_{}", state.refunds.len() + 1);
    state.refunds.push(StubRefund {
        id: id.clone(),
        charge: charge.clone(),
        idempotency_key: key.map(str::to_owned),
    });
    let body = json!({"id": id, "object": "refund", "charge": charge, "status": "succeeded"});
    (200, body.to_string())
}

fn error(status: u16, kind: &str, code: Option<&str>, message: &str) -> Answer {
    let mut error = json!({"type": kind, "message": message});
    if let Some(code) = code {
        error["code"] = json!(code);
    }
    (status, json!({ "error": error }).to_string())
}

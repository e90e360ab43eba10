//! A tiny HTTP server on 127.0.0.1 for outbound-HTTP tests: answers every request
//! with one fixed body and counts the requests.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

pub struct HttpStub {
    port: u16,
    requests: Arc<AtomicUsize>,
}

impl HttpStub {
    pub fn start(body: &str) -> HttpStub {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
        let port = listener.local_addr().expect("a bound listener").port();
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = requests.clone();
        let body = body.to_owned();
        // The thread ends with the test process; the listener is never shut down.
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(match stream.try_clone() {
                    Ok(clone) => clone,
                    Err(_) => continue,
                });
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|read| read > 0) {
                    if line == "\r\n" {
                        break;
                    }
                    line.clear();
                }
                counter.fetch_add(1, Ordering::SeqCst);
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\
                     connection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        HttpStub { port, requests }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// How many requests reached the stub.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

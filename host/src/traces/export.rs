//! The background exporter: gathers finished spans into batches and POSTs each to the
//! collector as OTLP/HTTP protobuf, on one kept-alive connection.
//!
//! A batch goes when it holds [`MAX_BATCH`] spans or [`BATCH_DELAY`] after its first
//! span, whichever comes first (Spin's batch processor waits up to 5 s; a short delay
//! lets a test, or a person at a trace viewer, see a request's spans at once). A batch
//! that fails is dropped, not retried: the queue behind it keeps filling meanwhile,
//! and a slow collector must not grow the host's memory. Failures are logged at most
//! once per [`LOG_EVERY`].

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::sync::{mpsc, oneshot};

use super::config::Config;
use super::{SpanRecord, otlp};
use crate::console::log;

pub const MAX_BATCH: usize = 512;
pub const BATCH_DELAY: Duration = Duration::from_millis(200);
/// How long one export may take, connecting included (OTLP's default timeout).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
const LOG_EVERY: Duration = Duration::from_secs(10);
/// The most of a collector's answer that is read (it is only logged on failure).
const MAX_ANSWER: usize = 64 << 10;

pub enum Message {
    Span(SpanRecord),
    /// Export everything queued before this, then answer.
    Flush(oneshot::Sender<()>),
}

/// Runs until every [`super::Tracer`] is gone.
pub async fn run(config: Config, mut queue: mpsc::Receiver<Message>) {
    let mut collector = Collector {
        config,
        connection: None,
        last_failure_said: None,
        failures_unsaid: 0,
    };
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = queue.recv().await {
        let mut flushed = None;
        match first {
            Message::Span(span) => batch.push(span),
            Message::Flush(done) => flushed = Some(done),
        }
        let deadline = tokio::time::Instant::now() + BATCH_DELAY;
        while flushed.is_none() && batch.len() < MAX_BATCH {
            tokio::select! {
                message = queue.recv() => match message {
                    Some(Message::Span(span)) => batch.push(span),
                    Some(Message::Flush(done)) => flushed = Some(done),
                    None => break,
                },
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        if flushed.is_some() {
            // Whatever was queued before the flush was asked for goes too.
            while let Ok(Message::Span(span)) = queue.try_recv() {
                batch.push(span);
            }
        }
        for spans in batch.chunks(MAX_BATCH) {
            collector.export(spans).await;
        }
        batch.clear();
        if let Some(done) = flushed {
            let _ = done.send(());
        }
    }
}

struct Collector {
    config: Config,
    /// Kept alive between batches; None until the first, and after a failure.
    connection: Option<SendRequest<Full<Bytes>>>,
    last_failure_said: Option<Instant>,
    failures_unsaid: usize,
}

impl Collector {
    async fn export(&mut self, spans: &[SpanRecord]) {
        let body = Bytes::from(otlp::export_request(&self.config.resource, spans));
        let outcome = tokio::time::timeout(EXPORT_TIMEOUT, self.post(body))
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {} s", EXPORT_TIMEOUT.as_secs())));
        if let Err(why) = outcome {
            self.connection = None;
            self.failed(spans.len(), &why);
        }
    }

    async fn post(&mut self, body: Bytes) -> Result<(), String> {
        let kept = match self.connection.take() {
            Some(mut connection) => connection.ready().await.ok().map(|()| connection),
            None => None,
        };
        let connection = match kept {
            Some(connection) => connection,
            None => self.connect().await?,
        };
        let connection = self.connection.insert(connection);
        let mut request = http::Request::post(&self.config.endpoint.path)
            .header(http::header::HOST, &self.config.endpoint.authority)
            .header(http::header::CONTENT_TYPE, "application/x-protobuf")
            .body(Full::new(body))
            .map_err(|err| err.to_string())?;
        for (name, value) in &self.config.headers {
            request.headers_mut().insert(name, value.clone());
        }
        let response = connection
            .send_request(request)
            .await
            .map_err(|err| err.to_string())?;
        let status = response.status();
        // Read to the end, so the connection can carry the next batch.
        let answer = Limited::new(response.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|err| err.to_string())?
            .to_bytes();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!(
                "the collector answered {status}: {}",
                String::from_utf8_lossy(&answer).trim()
            ))
        }
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, String> {
        let stream = tokio::net::TcpStream::connect(&self.config.endpoint.address)
            .await
            .map_err(|err| format!("cannot connect: {err}"))?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|err| err.to_string())?;
        // Drives the connection; it ends when the sender is dropped or the peer closes.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(sender)
    }

    fn failed(&mut self, spans: usize, why: &str) {
        if self
            .last_failure_said
            .is_some_and(|said| said.elapsed() < LOG_EVERY)
        {
            self.failures_unsaid += 1;
            return;
        }
        let unsaid = match std::mem::take(&mut self.failures_unsaid) {
            0 => String::new(),
            n => format!(" ({n} more failed exports since the last message)"),
        };
        log!(
            "traces: export of {spans} spans to {} failed: {why}; they are dropped{unsaid}",
            self.config.endpoint
        );
        self.last_failure_said = Some(Instant::now());
    }
}

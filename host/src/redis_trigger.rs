//! The Redis trigger: subscribe to every configured channel and hand each message to
//! every component bound to it, on a fresh instance.
//!
//! As Spin does, the messages from one Redis address are handled one at a time, in the
//! order they arrive: a message's components run side by side, and the next message
//! waits until they have all returned (Spin's `Subscriber::run_listener` awaits
//! `handle_message`, which joins the component invocations, before it reads the next
//! message). So a component never runs more than one Redis invocation per address at
//! once, and a burst of messages queues instead of starting an instance each.
//!
//! Deliberate difference from Spin: when the connection drops, Spin exits the whole
//! app; this host logs it and reconnects with backoff, so a Redis restart during a
//! local run or a test does not take HTTP down with it.
//!
//! When traces are exported, a message is a `{channel} receive` span (CONSUMER), with
//! one `execute_wasm_component {component}` span under it per component it runs. Two
//! more differences from Spin, which has neither: a message that is a JSON object
//! with a top-level `traceparent` (an event envelope) continues that trace, and the
//! per-component spans (`traces` says why).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures_util::StreamExt;
use tokio::sync::watch;
use wasmtime::Store;

use crate::app::{RedisSubscription, RunningApp};
use crate::console::log;
use crate::traces::{Kind, Span, SpanContext, Tracer};

const FIRST_RETRY: Duration = Duration::from_millis(100);
const LAST_RETRY: Duration = Duration::from_secs(5);

/// Subscribes every address's channels; returns when `shutdown` turns true.
pub async fn run(app: Arc<RunningApp>, shutdown: watch::Receiver<bool>) {
    let mut by_address: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (index, subscription) in app.redis_subscriptions.iter().enumerate() {
        by_address
            .entry(subscription.address.clone())
            .or_default()
            .push(index);
    }
    let listeners = by_address.into_iter().map(|(address, subscriptions)| {
        let app = app.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(listen_with_retries(app, address, subscriptions, shutdown))
    });
    for listener in listeners.collect::<Vec<_>>() {
        let _ = listener.await;
    }
}

async fn listen_with_retries(
    app: Arc<RunningApp>,
    address: String,
    subscriptions: Vec<usize>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut delay = FIRST_RETRY;
    loop {
        let started = Instant::now();
        match listen(&app, &address, &subscriptions, &mut shutdown).await {
            Ok(()) => return,
            Err(err) => {
                // A connection that lived a while starts its retries from scratch.
                if started.elapsed() > LAST_RETRY {
                    delay = FIRST_RETRY;
                }
                log!(
                    "redis trigger: {address}: {err:#}; reconnecting in {} ms",
                    delay.as_millis()
                );
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.changed() => return,
        }
        delay = (delay * 2).min(LAST_RETRY);
    }
}

async fn listen(
    app: &Arc<RunningApp>,
    address: &str,
    subscriptions: &[usize],
    shutdown: &mut watch::Receiver<bool>,
) -> Result<()> {
    let client = redis::Client::open(address).context("invalid address")?;
    let mut pubsub = client.get_async_pubsub().await.context("cannot connect")?;
    let mut channels: Vec<&str> = subscriptions
        .iter()
        .map(|&index| app.redis_subscriptions[index].channel.as_str())
        .collect();
    channels.sort_unstable();
    channels.dedup();
    for channel in &channels {
        pubsub
            .subscribe(*channel)
            .await
            .with_context(|| format!("cannot subscribe to `{channel}`"))?;
    }
    log!(
        "redis trigger: {address}: subscribed to {}",
        channels.join(", ")
    );
    let mut messages = pubsub.on_message();
    loop {
        let message = tokio::select! {
            message = messages.next() => message,
            _ = shutdown.changed() => return Ok(()),
        };
        let Some(message) = message else {
            bail!("connection lost");
        };
        let channel = message.get_channel_name();
        let payload = message.get_payload_bytes().to_vec();
        let span = app
            .tracer
            .as_ref()
            .map(|tracer| message_span(tracer, channel, &payload));
        let deliveries = subscriptions
            .iter()
            .map(|&index| &app.redis_subscriptions[index])
            .filter(|subscription| subscription.channel == channel)
            .map(|subscription| async {
                drop(deliver(subscription, payload.clone(), span.as_ref()).await)
            });
        futures_util::future::join_all(deliveries).await;
    }
}

/// Spin's `spin_trigger_redis.handle_message` span, continuing the trace the message
/// names, if it names one.
fn message_span(tracer: &Tracer, channel: &str, payload: &[u8]) -> Span {
    let span = tracer.root(
        format!("{channel} receive"),
        Kind::Consumer,
        envelope_context(payload),
    );
    span.set_attribute("messaging.operation", "receive");
    span.set_attribute("messaging.system", "redis");
    span
}

/// The trace context an event envelope carries: the top-level `traceparent` (and
/// `tracestate`) of a JSON object. None for anything else, or an invalid one.
fn envelope_context(payload: &[u8]) -> Option<SpanContext> {
    #[derive(serde::Deserialize)]
    struct Envelope {
        traceparent: Option<String>,
        tracestate: Option<String>,
    }
    // serde would read a struct from a JSON array too: only an object is an envelope.
    let first = payload.iter().find(|byte| !byte.is_ascii_whitespace())?;
    if *first != b'{' {
        return None;
    }
    let envelope: Envelope = serde_json::from_slice(payload).ok()?;
    SpanContext::from_traceparent(&envelope.traceparent?, envelope.tracestate.as_deref())
}

/// Runs the component's `handle-message` on a fresh instance and logs the outcome (to
/// the test's output, under a component test); Err says why it failed. `message` is
/// the message's span, when traces are exported.
pub async fn deliver(
    subscription: &RedisSubscription,
    payload: Vec<u8>,
    message: Option<&Span>,
) -> Result<(), String> {
    let started = Instant::now();
    let execution = message.map(|message| {
        message.child(
            format!("execute_wasm_component {}", subscription.runtime.id),
            Kind::Internal,
        )
    });
    let outcome = async {
        let state = subscription.runtime.new_state(execution.clone());
        let mut store = Store::new(subscription.pre.engine(), state);
        let instance = subscription.pre.instantiate_async(&mut store).await?;
        let result = instance
            .fermyon_spin_inbound_redis()
            .call_handle_message(&mut store, &payload)
            .await?;
        anyhow::Ok(result)
    }
    .await;
    let outcome = match outcome {
        Ok(Ok(())) => Ok(()),
        // The guest's error carries no detail; the component logs its own reason.
        Ok(Err(_)) => Err("the handler returned an error".to_owned()),
        Err(err) => Err(format!("failed: {err:#}")),
    };
    if let (Err(why), Some(execution)) = (&outcome, &execution) {
        execution.set_error(why.clone());
    }
    drop(execution);
    let line = format!(
        "{} redis {} ({} bytes) -> {} in {:.2} ms",
        subscription.runtime.id,
        subscription.channel,
        payload.len(),
        outcome.as_ref().err().map_or("ok", String::as_str),
        started.elapsed().as_secs_f64() * 1000.0
    );
    match &subscription.runtime.test {
        Some(test) => test.log(&line),
        None => log!("{line}"),
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn an_envelope_with_a_traceparent_names_its_trace() {
        let envelope = format!(
            r#" {{"id":"e1","subject":"order:created","data":{{"traceparent":"no"}},
            "traceparent":"{TRACEPARENT}","tracestate":"app=1"}}"#
        );
        let context = envelope_context(envelope.as_bytes()).expect("a context");
        assert_eq!(context.traceparent(), TRACEPARENT);
        assert_eq!(context.state.as_deref(), Some("app=1"));
    }

    #[test]
    fn anything_else_names_no_trace() {
        for payload in [
            "not json".to_owned(),
            "fail".to_owned(),
            format!(r#"["{TRACEPARENT}"]"#),
            format!(r#""{TRACEPARENT}""#),
            r#"{"id":"e1"}"#.to_owned(),
            r#"{"traceparent":"00-zz"}"#.to_owned(),
            r#"{"traceparent":42}"#.to_owned(),
            format!(r#"{{"data":{{"traceparent":"{TRACEPARENT}"}}}}"#),
        ] {
            assert!(envelope_context(payload.as_bytes()).is_none(), "{payload}");
        }
    }
}

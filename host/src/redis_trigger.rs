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

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures_util::StreamExt;
use tokio::sync::watch;
use wasmtime::Store;

use crate::app::{RedisSubscription, RunningApp};
use crate::console::log;

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
        let deliveries = subscriptions
            .iter()
            .map(|&index| &app.redis_subscriptions[index])
            .filter(|subscription| subscription.channel == channel)
            .map(|subscription| async { drop(deliver(subscription, payload.clone()).await) });
        futures_util::future::join_all(deliveries).await;
    }
}

/// Runs the component's `handle-message` on a fresh instance and logs the outcome (to
/// the test's output, under a component test); Err says why it failed.
pub async fn deliver(subscription: &RedisSubscription, payload: Vec<u8>) -> Result<(), String> {
    let started = Instant::now();
    let outcome = async {
        let state = subscription.runtime.new_state();
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

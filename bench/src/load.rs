//! A closed-loop load generator: N keep-alive HTTP/1.1 connections, each sending its
//! next request as soon as the previous answer is read; latencies of every answer.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

pub struct Load {
    url: hyper::Uri,
    connections: usize,
}

/// What one run measured.
pub struct Summary {
    /// Sorted.
    latencies: Vec<Duration>,
    elapsed: Duration,
    pub errors: usize,
}

impl Load {
    pub fn new(url: &str, connections: usize) -> Load {
        Load {
            url: url.parse().expect("the bench builds valid URLs"),
            connections,
        }
    }

    /// Loads for `warm_up` (not counted), then measures for `measure`.
    pub async fn run(&self, warm_up: Duration, measure: Duration) -> Result<Summary> {
        let started = Instant::now();
        let counted_from = started + warm_up;
        let until = counted_from + measure;
        let workers: Vec<_> = (0..self.connections)
            .map(|_| tokio::spawn(connection(self.url.clone(), counted_from, until)))
            .collect();
        let mut latencies = Vec::new();
        let mut errors = 0;
        for worker in workers {
            let (mut measured, failed) = worker.await??;
            latencies.append(&mut measured);
            errors += failed;
        }
        latencies.sort_unstable();
        Ok(Summary {
            latencies,
            elapsed: measure,
            errors,
        })
    }
}

async fn connection(
    url: hyper::Uri,
    counted_from: Instant,
    until: Instant,
) -> Result<(Vec<Duration>, usize)> {
    let authority = url.authority().context("a URL with a host")?.to_string();
    let stream = tokio::net::TcpStream::connect(&authority).await?;
    stream.set_nodelay(true)?;
    let (mut sender, driver) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(driver);
    let mut latencies = Vec::new();
    let mut errors = 0;
    loop {
        let sent = Instant::now();
        if sent >= until {
            break;
        }
        let request = hyper::Request::get(url.path())
            .header(hyper::header::HOST, &authority)
            .body(Empty::<Bytes>::new())?;
        let ok = match sender.send_request(request).await {
            Ok(response) => {
                let is_success = response.status().is_success();
                response.into_body().collect().await.is_ok() && is_success
            }
            Err(_) => false,
        };
        if sent >= counted_from {
            if ok {
                latencies.push(sent.elapsed());
            } else {
                errors += 1;
            }
        }
        if !ok && sender.ready().await.is_err() {
            break;
        }
    }
    Ok((latencies, errors))
}

impl Summary {
    pub fn requests_per_second(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    pub fn percentile(&self, percent: f64) -> Duration {
        percentile(&self.latencies, percent).unwrap_or(Duration::ZERO)
    }
}

/// The nearest-rank percentile of sorted values; `None` when there are none.
pub fn percentile<T: Copy>(sorted: &[T], percent: f64) -> Option<T> {
    let last = sorted.len().checked_sub(1)?;
    let rank = ((percent / 100.0) * last as f64).round() as usize;
    Some(sorted[rank.min(last)])
}

//! The web app's one route: a file of the app for GET and HEAD (`files` decides which,
//! and this shapes the response: ETag and 304, gzip, caching), 405 for anything else.

use std::path::Path;

use common::ApiError;
use spin_sdk::http::{Params, Request, Response};

use crate::files::{self, Answer, Asset};

/// Where spin.toml mounts the built app.
const ROOT: &str = "/";

pub fn get(req: Request, _params: Params) -> Response {
    answer(&req, Include::Body)
}

pub fn head(req: Request, _params: Params) -> Response {
    answer(&req, Include::HeadersOnly)
}

pub fn other_method(req: Request, _params: Params) -> Response {
    if files::is_api(req.path()) {
        return ApiError::NotFound.into_response();
    }
    Response::builder()
        .status(405)
        .header("allow", "GET, HEAD")
        .header("content-type", "text/plain; charset=utf-8")
        .body("Method Not Allowed")
        .build()
}

/// What a response carries: HEAD gets GET's headers without the body.
#[derive(Clone, Copy, PartialEq)]
enum Include {
    Body,
    HeadersOnly,
}

fn answer(req: &Request, include: Include) -> Response {
    let header = |name: &str| {
        req.header(name)
            .and_then(|value| value.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    match files::resolve(
        Path::new(ROOT),
        req.path(),
        files::accepts_gzip(&header("accept-encoding")),
    ) {
        Answer::Api => ApiError::NotFound.into_response(),
        Answer::Missing => Response::builder()
            .status(404)
            .header("content-type", "text/plain; charset=utf-8")
            .header("cache-control", "no-cache")
            .body("Not Found")
            .build(),
        Answer::File(asset) => file(asset, &header("if-none-match"), include),
        Answer::Unreadable(err) => {
            ApiError::Internal(anyhow::anyhow!("reading the web app: {err}")).into_response()
        }
    }
}

fn file(asset: Asset, if_none_match: &str, include: Include) -> Response {
    let etag = asset.etag();
    let mut response = Response::builder();
    response
        .header("etag", &etag)
        .header("cache-control", asset.cache_control)
        .header("vary", "Accept-Encoding")
        .header("x-content-type-options", "nosniff");
    if files::etag_matches(if_none_match, &etag) {
        return response.status(304).build();
    }
    response
        .status(200)
        .header("content-type", asset.content_type)
        .header("content-length", asset.bytes.len().to_string());
    if asset.gzipped {
        response.header("content-encoding", "gzip");
    }
    if include == Include::Body {
        response.body(asset.bytes).build()
    } else {
        response.build()
    }
}

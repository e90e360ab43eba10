//! web: serves the built web app from the component's `files` (spin.toml mounts
//! `target/web/` at `/`). Every path no API service claims comes here: a file of the
//! app, or `index.html` for the app's own routes (the SPA fallback), or, under
//! `/api/`, API.md's 404.

mod files;

use std::path::Path;

use common::ApiError;
use spin_sdk::http::{IncomingRequest, Params, Request, Response, Router};

use crate::files::{Answer, Asset};

/// Where spin.toml mounts the built app.
const ROOT: &str = "/";

#[cfg_attr(target_arch = "wasm32", spin_sdk::http_component)]
pub async fn handle(req: IncomingRequest) -> Response {
    common::serve(req, &router()).await
}

fn router() -> Router {
    let mut router = Router::new();
    router.get("/*", get);
    router.head("/*", head);
    router.any("/*", other_method);
    router
}

fn get(req: Request, _params: Params) -> Response {
    answer(&req, true)
}

fn head(req: Request, _params: Params) -> Response {
    answer(&req, false)
}

fn other_method(req: Request, _params: Params) -> Response {
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

fn answer(req: &Request, with_body: bool) -> Response {
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
        Answer::File(asset) => file(asset, &header("if-none-match"), with_body),
        Answer::Unreadable(err) => {
            ApiError::Internal(anyhow::anyhow!("reading the web app: {err}")).into_response()
        }
    }
}

fn file(asset: Asset, if_none_match: &str, with_body: bool) -> Response {
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
    if with_body {
        response.body(asset.bytes).build()
    } else {
        response.build()
    }
}

//! web: serves the built web app from the component's `files` (spin.toml mounts
//! `target/web/` at `/`). Every path no API service claims comes here: a file of the
//! app, or `index.html` for the app's own routes (the SPA fallback), or, under
//! `/api/`, API.md's 404.

mod api;
mod files;

use spin_sdk::http::{IncomingRequest, Response, Router};

#[cfg_attr(target_arch = "wasm32", spin_sdk::http_component)]
pub async fn handle(req: IncomingRequest) -> Response {
    common::serve(req, &router()).await
}

fn router() -> Router {
    let mut router = Router::new();
    router.get("/*", api::get);
    router.head("/*", api::head);
    router.any("/*", api::other_method);
    router
}

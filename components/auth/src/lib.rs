//! auth: users, sign up/in/out and the current session (API.md, "auth").

mod api;
mod db;
mod domain;
mod password;

use spin_sdk::http::{IncomingRequest, Response, Router};

// The export only exists in the wasm build: its symbol names (`wasi:http/...#handle`)
// cannot be linked natively, where unit tests run.
#[cfg_attr(target_arch = "wasm32", spin_sdk::http_component)]
pub async fn handle(req: IncomingRequest) -> Response {
    common::serve(req, &router()).await
}

fn router() -> Router {
    let mut router = Router::new();
    router.post("/api/users/signup", api::sign_up);
    router.post("/api/users/signin", api::sign_in);
    router.post("/api/users/signout", api::sign_out);
    router.get("/api/users/currentuser", api::current_user);
    router.any("/*", common::not_found);
    router
}

//! auth: users, sign up/in/out and the current session (API.md, "auth").

mod api;

use spin_sdk::http::{Request, Response, Router};

// The export only exists in the wasm build: its symbol names (`wasi:http/...#handle`)
// cannot be linked natively, where unit tests run.
#[cfg_attr(target_arch = "wasm32", spin_sdk::http_component)]
pub fn handle(req: Request) -> Response {
    let mut router = Router::new();
    router.get("/api/users/currentuser", api::current_user);
    router.any("/*", api::not_found);
    router.handle(req)
}

//! The web component through the real host (and real Spin, where installed), serving
//! the web app that `cargo xtask build` wrote to target/web/.

use harness::{App, Method, Reply, on_every_runtime, spawn_app_on};
use serde_json::json;

fn get_with(app: &App, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut request = app.request(Method::GET, path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    app.send(request)
}

/// The asset `index.html` names with `prefix` (`/app-`) and `suffix` (`.wasm`).
fn asset(index: &str, prefix: &str, suffix: &str) -> String {
    index
        .split('"')
        .find(|quoted| quoted.starts_with(prefix) && quoted.ends_with(suffix))
        .unwrap_or_else(|| panic!("index.html names {prefix}…{suffix}: {index}"))
        .to_owned()
}

#[test]
fn the_app_is_served_with_its_assets_and_its_routes() {
    on_every_runtime(spawn_app_on, |app| {
        let index = app.get("/");
        assert_eq!(index.status, 200);
        assert_eq!(
            index.header("content-type").as_deref(),
            Some("text/html; charset=utf-8")
        );
        assert_eq!(index.header("cache-control").as_deref(), Some("no-cache"));
        let html = index.text();
        assert!(html.contains(r#"<script type="module">"#), "{html}");

        for (prefix, suffix, content_type) in [
            ("/app-", ".wasm", "application/wasm"),
            ("/app-", ".js", "text/javascript; charset=utf-8"),
            ("/style-", ".css", "text/css; charset=utf-8"),
        ] {
            let path = asset(&html, prefix, suffix);
            let reply = app.get(&path);
            assert_eq!(reply.status, 200, "{path}");
            assert_eq!(reply.header("content-type").as_deref(), Some(content_type));
            assert_eq!(
                reply.header("cache-control").as_deref(),
                Some("public, max-age=31536000, immutable")
            );
            assert_eq!(reply.header("content-encoding"), None);
        }

        // Precompressed: gzip to those who take it, the same file's validator apart.
        let wasm = asset(&html, "/app-", ".wasm");
        let plain = app.get(&wasm);
        let gzipped = get_with(app, &wasm, &[("accept-encoding", "gzip")]);
        assert_eq!(gzipped.header("content-encoding").as_deref(), Some("gzip"));
        assert!(gzipped.body.len() < plain.body.len());
        assert_eq!(&gzipped.body[..2], &[0x1f, 0x8b]);
        assert_ne!(gzipped.header("etag"), plain.header("etag"));

        // Revalidation.
        let etag = index.header("etag").expect("an ETag");
        let again = get_with(app, "/", &[("if-none-match", &etag)]);
        assert_eq!(again.status, 304);
        assert!(again.body.is_empty());

        // The app's own routes get its page; missing assets do not.
        for route in ["/orders", "/orders/123", "/tickets/new", "/auth/signin"] {
            let reply = app.get(route);
            assert_eq!(reply.status, 200, "{route}");
            assert_eq!(reply.text(), html, "{route}");
        }
        assert_eq!(app.get("/app-0000000000000000.wasm").status, 404);
        let head = app.send(app.request(Method::HEAD, "/"));
        assert_eq!(head.status, 200);
        assert!(head.body.is_empty());
        assert_eq!(app.send(app.request(Method::POST, "/")).status, 405);
    });
}

#[test]
fn api_routes_win_and_unknown_api_paths_are_api_errors() {
    on_every_runtime(spawn_app_on, |app| {
        let reply = app.get("/api/users/currentuser");
        assert_eq!(reply.json(), json!({"currentUser": null}));
        for reply in [
            app.get("/api/unknown"),
            app.get("/api"),
            app.post_json("/api/nothing/here", &json!({})),
        ] {
            assert_eq!(reply.status, 404);
            assert_eq!(reply.json(), json!({"errors": [{"message": "Not Found"}]}));
        }
    });
}

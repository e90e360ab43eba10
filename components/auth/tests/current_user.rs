//! auth through the real host (and real Spin, where installed): HTTP in, the built
//! component, SQLite and Redis behind.

use harness::Runtime;
use serde_json::json;

#[test]
fn current_user_is_null_without_a_session() {
    for runtime in Runtime::all() {
        let app = harness::spawn_app_on(runtime);
        let reply = app.get("/api/users/currentuser");
        assert_eq!(reply.status, 200, "{}", app.runtime.name());
        assert_eq!(
            reply.header("content-type").as_deref(),
            Some("application/json")
        );
        assert_eq!(reply.json(), json!({ "currentUser": null }));
    }
}

#[test]
fn an_unknown_route_under_the_api_is_a_json_404() {
    for runtime in Runtime::all() {
        let app = harness::spawn_app_on(runtime);
        let reply = app.get("/api/users/nobody-here");
        assert_eq!(reply.status, 404, "{}", app.runtime.name());
        assert_eq!(
            reply.json(),
            json!({ "errors": [{ "message": "Not Found" }] })
        );
    }
}

#[test]
fn a_path_no_component_serves_is_404() {
    for runtime in Runtime::all() {
        let app = harness::spawn_app_on(runtime);
        let reply = app.get("/no/such/page");
        assert_eq!(reply.status, 404, "{}", app.runtime.name());
        assert!(reply.body.is_empty(), "{}", reply.text());
    }
}

//! Host bindings for Spin's `fermyon:spin` interfaces: the worlds of `wit/host.wit`,
//! on the WIT that the spin-sdk crate ships (build.rs puts both in a build directory
//! and defines `spin_bindgen!`: `wasmtime::component::bindgen!` with that path).

include!(concat!(env!("OUT_DIR"), "/spin_bindgen.rs"));

/// What Spin components import beyond WASI: SQLite, key-value, Redis, variables.
mod imports {
    spin_bindgen!({
        world: "spin-imports",
        imports: { default: async },
        with: {
            "fermyon:spin/sqlite@2.0.0.connection": crate::sqlite::Connection,
            "fermyon:spin/key-value@2.0.0.store": crate::key_value::Store,
            "fermyon:spin/redis@2.0.0.connection": crate::redis_outbound::Connection,
        },
    });
}

/// The Redis trigger's export.
mod redis_trigger {
    spin_bindgen!({
        world: "redis-trigger",
        exports: { default: async },
    });
}

/// What a component test imports from the host: spin-test's world (`wit/spin-test/`)
/// and the host's additions (`wit/host-test/`), bound on WASI 0.2.6 (build.rs): WASI
/// and `wasi:http` are wasmtime-wasi's and wasmtime-wasi-http's, SQLite's types Spin's.
pub mod spin_test {
    spin_bindgen!({
        world: "ticketing:host-test/test",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
            "wasi:http/types": wasmtime_wasi_http::p2::bindings::http::types,
            "fermyon:spin/sqlite@2.0.0": crate::bindings::spin::sqlite,
            "fermyon:spin/redis@2.0.0": crate::bindings::spin::redis,
            "fermyon:spin-test-virt/sqlite.connection": crate::spin_test::SqliteConnection,
            "fermyon:spin-test-virt/key-value.store": crate::spin_test::KeyValueStore,
            "fermyon:spin-test/http-helper.response-receiver": crate::spin_test::ResponseReceiver,
        },
    });
}

pub use imports::SpinImports;
/// `fermyon:spin@2.0.0`'s interfaces (the module carries the version because the
/// SDK's WIT also holds the unversioned `fermyon:spin` package).
pub use imports::fermyon::spin2_0_0 as spin;
pub use redis_trigger::RedisTriggerPre;

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

pub use imports::SpinImports;
/// `fermyon:spin@2.0.0`'s interfaces (the module carries the version because the
/// SDK's WIT also holds the unversioned `fermyon:spin` package).
pub use imports::fermyon::spin2_0_0 as spin;
pub use redis_trigger::RedisTriggerPre;

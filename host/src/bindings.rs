//! Host bindings for Spin's `fermyon:spin` interfaces, generated from the WIT the app
//! vendors in `../wit/deps` (unchanged from the spin-sdk crate).

/// What Spin components import beyond WASI: SQLite, key-value, Redis, variables.
mod imports {
    wasmtime::component::bindgen!({
        path: "../wit",
        inline: "
            package ticketing:host;
            world spin-imports {
                import fermyon:spin/sqlite@2.0.0;
                import fermyon:spin/key-value@2.0.0;
                import fermyon:spin/redis@2.0.0;
                import fermyon:spin/variables@2.0.0;
            }
        ",
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
    wasmtime::component::bindgen!({
        path: "../wit",
        inline: "
            package ticketing:host;
            world redis-trigger {
                export fermyon:spin/inbound-redis;
            }
        ",
        exports: { default: async },
    });
}

pub use imports::SpinImports;
/// `fermyon:spin@2.0.0`'s interfaces (the module carries the version because the
/// vendored WIT also holds the unversioned `fermyon:spin` package).
pub use imports::fermyon::spin2_0_0 as spin;
pub use redis_trigger::RedisTriggerPre;

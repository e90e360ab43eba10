//! `host test`: component tests in spin-test's format (`wit/spin-test/`). Work in
//! progress: the resources the test world names.

/// A test's handle on one of the app's SQLite databases.
pub struct SqliteConnection;

/// A test's handle on one of the app's key-value stores.
pub struct KeyValueStore;

/// Receives the response the app sets on one `response-outparam`.
pub struct ResponseReceiver;

use std::collections::BTreeMap;

use crate::bindings::spin_test::fermyon::spin_test_virt::variables;

/// The host side of one test: what the test has set, and the app it calls.
#[derive(Default)]
pub struct TestState {
    /// Application variables the test gave values to (`variables.set`).
    pub variables: BTreeMap<String, String>,
}

impl variables::Host for TestState {
    async fn set(&mut self, key: String, value: String) -> wasmtime::Result<()> {
        self.variables.insert(key, value);
        Ok(())
    }
}

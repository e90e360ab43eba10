//! `host test`: component tests in spin-test's format (`wit/spin-test/`). Work in
//! progress: the resources the test world names.

/// A test's handle on one of the app's SQLite databases.
pub struct SqliteConnection;

/// A test's handle on one of the app's key-value stores.
pub struct KeyValueStore;

/// Receives the response the app sets on one `response-outparam`.
pub struct ResponseReceiver;

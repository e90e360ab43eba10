//! contract: the app's public contract (docs/API.md) as Rust types, defined once for
//! every side of the wire: the services, the web app and the bench's native server.
//!
//! - [`http`]: every request and answer body of the HTTP API, and the error body.
//! - [`price`]: prices in exact cents, as the API and the events write them.
//! - [`events`]: the event types, generated from `wit/events.wit`.
//!
//! Serde only, so it builds for the services (wasm32-wasip1), the browser
//! (wasm32-unknown-unknown) and natively; nothing here knows Spin.

pub mod events;
pub mod http;
pub mod price;

pub use events::OrderStatus;
pub use price::Price;

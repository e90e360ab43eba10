//! The Ticketing on Spin web app: every page of the original client, over the
//! same-origin API. `app.rs` holds the router and the session; `pages/` one module per
//! page; `api.rs` every call.

mod api;
mod app;
mod format;
mod pages;
mod session;
mod stripe;

fn main() {
    yew::Renderer::<app::App>::new().render();
}

//! The build script every component shares (`build = ".../crates/component-build.rs"`
//! in its Cargo.toml): link-time settings for the wasm module.
//!
//! A larger initial linear memory. rustc's default is just enough for the 1 MiB stack
//! and the data, so the first allocations of every request grow the memory. A fresh
//! instance per request starts from the initial size each time, and a runtime makes
//! the grown pages accessible with `mprotect` on the way up and inaccessible again when
//! the slot is reused: two page-table changes per request, each flushing the TLB of
//! every core. With 8 MiB to begin with, a request stays within it (a list of 1,000
//! tickets included) and no page is touched that the request does not use: the
//! runtime maps memory lazily, so the size costs address space, not RAM.
//! docs/performance.md has the figures.

/// 8 MiB, in bytes (a multiple of the 64 KiB wasm page).
const INITIAL_MEMORY: u64 = 8 << 20;

fn main() {
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32") {
        println!("cargo::rustc-link-arg-cdylib=--initial-memory={INITIAL_MEMORY}");
    }
    // Cargo runs this with the package as working directory, where `file!()` is.
    println!("cargo::rerun-if-changed={}", file!());
}

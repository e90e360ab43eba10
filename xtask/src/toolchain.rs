//! Which Rust toolchain builds the workspace, and how to invoke cargo with it.
//!
//! Where rustup has the `wasm32-wasip1` and `wasm32-unknown-unknown` targets, plain
//! `cargo` does everything. Otherwise
//! (no internet to download the target) Debian's `rustc-web` toolchain builds the wasm
//! standard library from its own sources (README.md, "What setup installs"). Then
//! every cargo command, native ones included, uses Debian's toolchain: one compiler
//! for one target directory, so nothing is rebuilt when switching between commands.

use xshell::{Cmd, Shell, cmd};

pub const WASM_TARGET: &str = "wasm32-wasip1";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Toolchain {
    /// rustup's toolchain with the wasm32-wasip1 target installed.
    Rustup,
    /// Debian's rustc-web toolchain in /usr/bin, building std for wasm from source.
    Debian,
}

impl Toolchain {
    pub fn detect(sh: &Shell) -> Toolchain {
        let installed = cmd!(sh, "rustup target list --installed")
            .quiet()
            .ignore_stderr()
            .read()
            .unwrap_or_default();
        let has = |wanted: &str| installed.lines().any(|target| target.trim() == wanted);
        // The components and the web app: both targets, or Debian's toolchain for both.
        if has(WASM_TARGET) && has(crate::web::WEB_TARGET) {
            Toolchain::Rustup
        } else {
            Toolchain::Debian
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Toolchain::Rustup => {
                "rustup's toolchain (it has the wasm32-wasip1 and wasm32-unknown-unknown targets)"
            }
            Toolchain::Debian => {
                "Debian's rustc-web toolchain in /usr/bin (rustup lacks a wasm target)"
            }
        }
    }

    /// The Debian packages this toolchain needs.
    pub fn apt_packages(self) -> &'static [&'static str] {
        match self {
            Toolchain::Rustup => &[],
            Toolchain::Debian => &[
                "rustc-web",
                "cargo-web",
                "rust-web-src",
                "rust-web-clippy",
                "rustfmt-web",
                // `rust-lld`, the linker rustc names for wasm targets. Only a
                // Recommends of rustc-web, so `--no-install-recommends` skips it.
                "rust-web-llvm",
                "lld-22",
                "wasi-libc",
            ],
        }
    }

    /// The `cargo` program of this toolchain.
    pub fn cargo_program(self) -> &'static str {
        match self {
            Toolchain::Rustup => "cargo",
            Toolchain::Debian => "/usr/bin/cargo",
        }
    }

    /// `cargo` for native commands (fmt, clippy, test, run).
    pub fn cargo<'a>(self, sh: &'a Shell) -> Cmd<'a> {
        match self {
            Toolchain::Rustup => sh.cmd(self.cargo_program()),
            Toolchain::Debian => {
                let path = std::env::var("PATH").unwrap_or_default();
                sh.cmd(self.cargo_program())
                    // A cargo started by rustup's `cargo xtask` would otherwise pick
                    // rustup's rustc, clippy and rustfmt.
                    .env("PATH", format!("/usr/bin:{path}"))
                    .env("RUSTC", "/usr/bin/rustc")
                    .env("RUSTDOC", "/usr/bin/rustdoc")
                    // Needed by build-std; set for every command so that build scripts
                    // that watch it do not rerun between native and wasm builds.
                    .env("RUSTC_BOOTSTRAP", "1")
            }
        }
    }

    /// `cargo build --target wasm32-wasip1 --release`.
    pub fn cargo_build_wasm<'a>(self, sh: &'a Shell) -> Cmd<'a> {
        let cargo = self
            .cargo(sh)
            .args(["build", "--target", WASM_TARGET, "--release"]);
        match self {
            Toolchain::Rustup => cargo,
            Toolchain::Debian => cargo
                .env("CARGO_UNSTABLE_BUILD_STD", "std,panic_abort")
                .env(
                    "CARGO_TARGET_WASM32_WASIP1_RUSTFLAGS",
                    "-C link-self-contained=no -L /usr/lib/wasm32-wasi",
                ),
        }
    }
}

//! Gives the host's bindings the Spin WIT they need without a copy in the repository:
//! `wit/host.wit` (the host's worlds) goes into a build directory with the packages it
//! refers to, copied from the spin-sdk crate the workspace depends on (in Cargo's
//! package cache, found through `cargo metadata`). wasmtime's `bindgen!` takes its WIT
//! path as a literal, so this also writes `spin_bindgen!`, which passes that build
//! directory to it; `src/bindings.rs` includes and calls it.

use std::path::PathBuf;

use anyhow::{Context, Result};

fn main() -> Result<()> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let sdk = sdk_wit::locate(&cargo, &manifest_dir.join("Cargo.toml"))?;
    let worlds = manifest_dir.join("wit/host.wit");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed={}", worlds.display());
    println!("cargo:rerun-if-changed={}", sdk.lock_file.display());

    let wit = out.join("wit");
    std::fs::create_dir_all(&wit)?;
    std::fs::copy(&worlds, wit.join("host.wit"))
        .with_context(|| format!("copying {}", worlds.display()))?;
    sdk.copy_dependencies(&[worlds], &wit.join("deps"))?;

    let path = wit
        .to_str()
        .context("the build directory's path is not UTF-8")?;
    let generated = format!(
        "/// `wasmtime::component::bindgen!` on `wit/host.wit` with {sdk} {version}'s WIT.\n\
         macro_rules! spin_bindgen {{\n    \
             ({{ $($options:tt)* }}) => {{\n        \
                 wasmtime::component::bindgen!({{ path: {path:?}, $($options)* }});\n    \
             }};\n\
         }}\n",
        sdk = sdk_wit::SDK,
        version = sdk.version,
    );
    std::fs::write(out.join("spin_bindgen.rs"), generated)?;
    Ok(())
}

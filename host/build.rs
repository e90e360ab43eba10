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

    // spin-test's interfaces (`wit/spin-test/`), for `host test`: its package and the
    // two under its `deps/` go beside the SDK's packages, with the host's own additions
    // (`wit/host-test/`).
    let spin_test = manifest_dir.join("../wit/spin-test");
    println!("cargo:rerun-if-changed={}", spin_test.display());
    let host_test = manifest_dir.join("../wit/host-test/world.wit");
    println!("cargo:rerun-if-changed={}", host_test.display());
    let spin_test_packages = [
        ("host-test", host_test),
        ("spin-test", spin_test.join("world.wit")),
        (
            "spin-test-virt",
            spin_test.join("deps/spin-test-virt/world.wit"),
        ),
        (
            "spin-wasi-virt",
            spin_test.join("deps/spin-wasi-virt/world.wit"),
        ),
    ];

    let wit = out.join("wit");
    std::fs::create_dir_all(&wit)?;
    std::fs::copy(&worlds, wit.join("host.wit"))
        .with_context(|| format!("copying {}", worlds.display()))?;
    // The host binds them on WASI 0.2.6, the version wasmtime-wasi and
    // wasmtime-wasi-http implement (their bindings are reused, not generated again); a
    // test's 0.2.0 imports link to those by semver, as they do for spin-sdk's.
    let staged = out.join("spin-test");
    let mut own = vec![worlds];
    for (name, file) in &spin_test_packages {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let dir = staged.join(name);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("world.wit"), text.replace("@0.2.0", "@0.2.6"))?;
        own.push(dir.join("world.wit"));
    }
    sdk.copy_dependencies(&own, &wit.join("deps"))?;
    for (name, _) in &spin_test_packages {
        let dir = wit.join("deps").join(name);
        std::fs::create_dir_all(&dir)?;
        std::fs::copy(staged.join(name).join("world.wit"), dir.join("world.wit"))?;
    }

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

//! Stages the WIT of the world a test imports, `ticketing:host-test/test-imports`
//! (`wit/host-test/`: spin-test's world `fermyon:spin-test/test-imports`, from
//! `wit/spin-test/`, and the host's additions), in a build directory: its package,
//! spin-test's three, and the WASI and Spin packages they refer to, copied from the spin-sdk crate's WIT
//! (as `host/build.rs` does for the host). WASI stays at 0.2.0, the version spin-test's
//! tests import: the host links them to its 0.2.6 by semver. `wit_bindgen::generate!`
//! takes its path as a literal, so this also writes the call itself, with the build
//! directory in it, for `src/lib.rs` to include.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The world, as `generate!` names it.
const WORLD: &str = "ticketing:host-test/test-imports";

fn main() -> Result<()> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let sdk = sdk_wit::locate(&cargo, &manifest_dir.join("Cargo.toml"))?;

    let spin_test = manifest_dir.join("../../wit/spin-test");
    let host_test = manifest_dir.join("../../wit/host-test");
    let world = host_test.join("world.wit");
    // spin-test's packages, by the directory each goes to under `deps/`.
    let own_deps = [
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
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed={}", spin_test.display());
    println!("cargo:rerun-if-changed={}", host_test.display());
    println!("cargo:rerun-if-changed={}", sdk.lock_file.display());

    let wit = out.join("wit");
    std::fs::create_dir_all(&wit)?;
    copy(&world, &wit.join("world.wit"))?;
    let mut own = vec![world];
    own.extend(own_deps.iter().map(|(_, file)| file.clone()));
    // Empties `deps/` first: the project's own packages go in after.
    sdk.copy_dependencies(&own, &wit.join("deps"))?;
    drop_spin_2_worlds(&wit.join("deps"))?;
    for (name, file) in &own_deps {
        let dir = wit.join("deps").join(name);
        std::fs::create_dir_all(&dir)?;
        copy(file, &dir.join("world.wit"))?;
    }

    let path = wit
        .to_str()
        .context("the build directory's path is not UTF-8")?;
    let generated = format!(
        "// `wit/host-test`'s world `{WORLD}`, with {sdk} {version}'s WIT.\n\
         wit_bindgen::generate!({{\n    \
             path: {path:?},\n    \
             world: {WORLD:?},\n    \
             generate_all,\n\
         }});\n",
        sdk = sdk_wit::SDK,
        version = sdk.version,
    );
    std::fs::write(out.join("bindings.rs"), generated)?;
    Ok(())
}

/// The world needs two interfaces of `fermyon:spin@2.0.0` (`sqlite`, `redis`); the package's
/// `world.wit` holds, besides its `package` header, Spin 2's app worlds, which also
/// name WASI's 0.2.0 release candidate. With two versions of a package in the WIT,
/// wit-bindgen puts the version into the module names (`bindings::wasi::http0_2_0`,
/// where spin-test's SDK has `bindings::wasi::http`), so the staged file keeps only its
/// header, and the release candidate's packages, which nothing else refers to, go (were
/// something to, `generate!` would name the package it cannot find).
fn drop_spin_2_worlds(deps: &Path) -> Result<()> {
    let worlds = deps.join("spin@2.0.0/world.wit");
    let header = package_of(&worlds)?
        .with_context(|| format!("{} has no `package` header", worlds.display()))?;
    std::fs::write(&worlds, format!("package {header};\n"))?;
    for entry in std::fs::read_dir(deps)? {
        let entry = entry?.path();
        if package_of(&entry)?.is_some_and(|id| id.contains("-rc-")) {
            if entry.is_dir() {
                std::fs::remove_dir_all(&entry)?;
            } else {
                std::fs::remove_file(&entry)?;
            }
        }
    }
    Ok(())
}

/// The package a staged dependency (a directory, or one file) holds: `wasi:io@0.2.0`.
fn package_of(entry: &Path) -> Result<Option<String>> {
    let files = if entry.is_dir() {
        std::fs::read_dir(entry)?
            .map(|file| Ok(file?.path()))
            .collect::<Result<Vec<_>>>()?
    } else {
        vec![entry.to_path_buf()]
    };
    for file in files {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("reading {}", file.display()))?;
        let package = text
            .lines()
            .find_map(|line| line.trim().strip_prefix("package "));
        if let Some(id) = package {
            return Ok(Some(id.trim_end_matches([';', ' ']).to_owned()));
        }
    }
    Ok(None)
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    std::fs::copy(from, to).with_context(|| format!("copying {}", from.display()))?;
    Ok(())
}

//! `cargo xtask build`: every component of spin.toml, for wasm32-wasip1, in release.

use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result};

use crate::manifest;
use crate::toolchain::WASM_TARGET;
use crate::{Project, step};

/// A component and the module cargo built for it.
pub struct Built {
    pub component: manifest::Component,
    pub module: PathBuf,
}

/// The app's manifest, and the host's test app (its behaviour tests run it).
pub const APP: &str = "spin.toml";
pub const PROBE: &str = "host/probe/spin.toml";
/// The event bus's test app (its behaviour tests run it).
pub const BUS_PROBE: &str = "crates/bus/probe/spin.toml";

/// `cargo xtask build [MANIFEST…]`: the app's components, or those of the manifests
/// given (e.g. a test app's).
pub fn run(project: &Project, manifests: &[String]) -> Result<Vec<Built>> {
    if manifests.is_empty() {
        return build_apps(project, &[APP]);
    }
    let manifests: Vec<&str> = manifests.iter().map(String::as_str).collect();
    build_apps(project, &manifests)
}

/// Builds the components of these manifests (paths relative to the root) in one cargo
/// invocation, and puts each module where its manifest's `source` expects it.
pub fn build_apps(project: &Project, manifests: &[&str]) -> Result<Vec<Built>> {
    let apps = manifests
        .iter()
        .map(|manifest| manifest::load(&project.root.join(manifest)))
        .collect::<Result<Vec<_>>>()?;
    let mut packages: Vec<&str> = Vec::new();
    for component in apps.iter().flat_map(|app| &app.components) {
        if !packages.contains(&component.package.as_str()) {
            packages.push(&component.package);
        }
    }
    step(&format!(
        "Building {} for {WASM_TARGET} with {}",
        packages.join(", "),
        project.toolchain.describe()
    ));
    build_packages(project, &packages)?;

    step("Placing each module where its manifest's `source` expects it");
    let mut built = Vec::new();
    for app in apps {
        for component in app.components {
            let module = wasm_path(project, &component.package);
            let source = place(&module, &app.dir.join(&component.source))?;
            eprintln!("{}: {}", component.id, source.display());
            built.push(Built { component, module });
        }
    }
    // The app's `web` component serves the built web app.
    if manifests.contains(&APP) {
        crate::web::build(project)?;
    }
    Ok(built)
}

/// Copies a built module to where a manifest's `source` expects it (unless that is where
/// it was built); the normalized `source`.
pub fn place(module: &Path, source: &Path) -> Result<PathBuf> {
    let source = normalize(source);
    if source != module {
        if let Some(dir) = source.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::copy(module, &source)
            .with_context(|| format!("copying {} to {}", module.display(), source.display()))?;
    }
    Ok(source)
}

/// `a/b/../../c` → `c`, without touching the file system (the file may not exist yet).
fn normalize(path: &Path) -> PathBuf {
    let mut normal = PathBuf::new();
    for part in path.components() {
        match part {
            Component::ParentDir => {
                normal.pop();
            }
            Component::CurDir => {}
            other => normal.push(other),
        }
    }
    normal
}

/// One cargo invocation for all packages: they share their dependencies' builds.
pub fn build_packages(project: &Project, packages: &[&str]) -> Result<()> {
    let package_args = packages.iter().flat_map(|package| ["--package", package]);
    project
        .toolchain
        .cargo_build_wasm(&project.sh)
        .args(package_args)
        .run()?;
    Ok(())
}

/// The module cargo writes for a cdylib package.
pub fn wasm_path(project: &Project, package: &str) -> PathBuf {
    project
        .target_dir()
        .join(WASM_TARGET)
        .join("release")
        .join(format!("{}.wasm", package.replace('-', "_")))
}

/// Builds the host and `package` (a native tool of this workspace that starts the app
/// through the harness), then runs the package's binary with `args`, on that host.
/// `release`: the optimized profile (benchmarks), else the dev one that `cargo xtask
/// test` leaves warm.
pub fn run_with_host(project: &Project, package: &str, release: bool, args: &[&str]) -> Result<()> {
    let mut build = vec![
        "build",
        "--locked",
        "--package",
        "host",
        "--package",
        package,
    ];
    if release {
        build.push("--release");
    }
    project.toolchain.cargo(&project.sh).args(build).run()?;
    let binaries = project
        .target_dir()
        .join(if release { "release" } else { "debug" });
    project
        .sh
        .cmd(binaries.join(package))
        .args(args)
        .env("TICKETING_HOST_BIN", binaries.join("host"))
        // The harness finds the checkout (spin.toml, the probes) from here, not from
        // where a shared target directory's binary was compiled.
        .env("CARGO_MANIFEST_DIR", project.root.join(package))
        .run()?;
    Ok(())
}

/// The initial memory `crates/component-build.rs` links every component with: a
/// request's stack, data and heap fit in it, so no request grows the memory (each
/// growth costs the runtime page-table changes on every core).
pub const COMPONENT_INITIAL_MEMORY: u64 = 8 << 20;

/// The initial size of a wasm module's linear memory, in bytes.
pub fn initial_memory(module: &Path) -> Result<u64> {
    let bytes = std::fs::read(module).with_context(|| format!("reading {}", module.display()))?;
    initial_memory_of(&bytes).with_context(|| format!("reading {}", module.display()))
}

fn initial_memory_of(module: &[u8]) -> Result<u64> {
    for payload in wasmparser::Parser::new(0).parse_all(module) {
        if let wasmparser::Payload::MemorySection(memories) = payload?
            && let Some(memory) = memories.into_iter().next()
        {
            let memory = memory?;
            let page = memory.page_size_log2.map_or(1 << 16, |log2| 1u64 << log2);
            return Ok(memory.initial * page);
        }
    }
    anyhow::bail!("the module defines no memory")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_initial_memory_is_read_in_bytes() {
        // The wasm header, then a memory section: one memory of 128 pages, no maximum.
        let mut module = b"\0asm\x01\0\0\0".to_vec();
        module.extend([0x05, 0x04, 0x01, 0x00, 0x80, 0x01]);
        assert_eq!(initial_memory_of(&module).unwrap(), 8 << 20);
        assert!(initial_memory_of(b"\0asm\x01\0\0\0").is_err());
    }
}

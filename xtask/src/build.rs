//! `cargo xtask build`: every component of spin.toml, for wasm32-wasip1, in release.

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::manifest::{self, Component};
use crate::toolchain::WASM_TARGET;
use crate::{Project, step};

/// A component and the module cargo built for it.
pub struct Built {
    pub component: Component,
    pub module: PathBuf,
}

pub fn run(project: &Project) -> Result<Vec<Built>> {
    let app = manifest::load(&project.root)?;
    let packages: Vec<&str> = app.components.iter().map(|c| c.package.as_str()).collect();
    step(&format!(
        "Building {} for {WASM_TARGET} with {}",
        packages.join(", "),
        project.toolchain.describe()
    ));
    build_packages(project, &packages)?;

    step("Placing each module where spin.toml's `source` expects it");
    let mut built = Vec::new();
    for component in app.components {
        let module = wasm_path(project, &component.package);
        let source = project.root.join(&component.source);
        if source != module {
            if let Some(dir) = source.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::copy(&module, &source)
                .with_context(|| format!("copying {} to {}", module.display(), source.display()))?;
        }
        eprintln!("{}: {}", component.id, component.source.display());
        built.push(Built { component, module });
    }
    Ok(built)
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

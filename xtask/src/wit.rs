//! The app's WIT (`wit/`) and the Spin and WASI WIT it refers to, which comes from the
//! spin-sdk crate (located through `cargo metadata` by `sdk_wit`; the repository keeps
//! no copy), and the check that a built component targets its service's world.

use std::ffi::OsStr;
use std::path::Path;

use anyhow::{Context, Result};
use wasmparser::{Parser, Payload};
use wit_parser::{PackageId, Resolve, UnresolvedPackageGroup};

use crate::Project;

/// `wit/` resolved against the spin-sdk crate's WIT: the Spin and WASI packages first,
/// then the app's own package `ticketing:app`.
pub struct AppWit {
    pub resolve: Resolve,
    /// `ticketing:app`.
    pub package: PackageId,
}

impl AppWit {
    pub fn load(project: &Project) -> Result<AppWit> {
        let (mut resolve, sdk) = sdk_resolve(project)?;
        let wit = project.root.join("wit");
        let own = UnresolvedPackageGroup::parse_dir(&wit)
            .with_context(|| format!("reading {}", wit.display()))?;
        let package = resolve.push_group(own).with_context(|| {
            format!(
                "resolving {} against the WIT of {} {}",
                wit.display(),
                sdk_wit::SDK,
                sdk.version
            )
        })?;
        Ok(AppWit { resolve, package })
    }

    /// Componentizes a built module (preview1 adapter, as Spin and the host do) and
    /// checks that it targets `world` of `wit/`: it imports nothing the world does not
    /// declare and exports what the world requires. Returns the component's imports.
    pub fn check_world(&self, module: &Path, world: &str) -> Result<Vec<String>> {
        let world_id = self.resolve.select_world(&[self.package], Some(world))?;
        let bytes =
            std::fs::read(module).with_context(|| format!("reading {}", module.display()))?;
        let component = componentize::componentize(&bytes)?;
        wit_component::targets(&self.resolve, world_id, &component, true)
            .with_context(|| format!("{} does not target world `{world}`", module.display()))?;
        imports_of(&component)
    }
}

/// `wit/spin-test/` (spin-test's interfaces, written here) resolved against the
/// spin-sdk crate's WIT: its two packages under `deps/` first, then
/// `fermyon:spin-test`. Returns the resolved world `test`'s name and its imports.
pub fn spin_test_world(project: &Project) -> Result<(String, Vec<String>)> {
    let (mut resolve, _) = sdk_resolve(project)?;
    let dir = project.root.join("wit/spin-test");
    let (package, _) = resolve
        .push_dir(&dir)
        .with_context(|| format!("resolving {}", dir.display()))?;
    let world = resolve.select_world(&[package], Some("test"))?;
    let imports = resolve.worlds[world]
        .imports
        .keys()
        .map(|key| resolve.name_world_key(key))
        .collect();
    Ok((resolve.id_of_name(package, "test"), imports))
}

/// The spin-sdk crate's WIT: every Spin and WASI package it ships.
fn sdk_resolve(project: &Project) -> Result<(Resolve, sdk_wit::SdkWit)> {
    let sdk = sdk_wit::locate(
        OsStr::new(project.toolchain.cargo_program()),
        &project.root.join("Cargo.toml"),
    )?;
    let mut resolve = Resolve::default();
    resolve
        .push_dir(&sdk.dir)
        .with_context(|| format!("reading the WIT of {} {}", sdk_wit::SDK, sdk.version))?;
    Ok((resolve, sdk))
}

fn imports_of(component: &[u8]) -> Result<Vec<String>> {
    let mut imports = Vec::new();
    let mut depth = 0;
    for payload in Parser::new(0).parse_all(component) {
        match payload? {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth -= 1,
            Payload::ComponentImportSection(section) if depth == 0 => {
                for import in section {
                    imports.push(import?.name.name.to_owned());
                }
            }
            _ => {}
        }
    }
    Ok(imports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spin_test_s_world_resolves_with_its_upstream_names() {
        let project = crate::Project::open().unwrap();
        let (world, imports) = spin_test_world(&project).unwrap();
        assert_eq!(world, "fermyon:spin-test/test");
        for expected in [
            "fermyon:spin-test-virt/key-value",
            "fermyon:spin-test-virt/sqlite",
            "fermyon:spin-test-virt/variables",
            "fermyon:spin-wasi-virt/http-handler",
            "wasi:http/incoming-handler@0.2.0",
            "fermyon:spin-test/http-helper",
        ] {
            assert!(
                imports.iter().any(|import| import == expected),
                "{expected}: {imports:?}"
            );
        }
    }
}

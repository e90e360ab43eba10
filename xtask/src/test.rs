//! `cargo xtask test`: THE test command (README and .ci/run call exactly this).

use std::collections::BTreeSet;

use anyhow::{Result, bail};

use crate::up::spin_on_path;
use crate::{Project, build, codegen, manifest, setup, step, wit};

/// A component that imports outbound HTTP and key-value; the `auth` world grants neither.
const FORBIDDEN_IMPORT_FIXTURE: &str = "fixture-forbidden-import";

pub fn run(project: &Project) -> Result<()> {
    setup::run(project)?;
    let cargo = || project.toolchain.cargo(&project.sh);

    step("Formatting: cargo fmt --check");
    cargo().args(["fmt", "--all", "--check"]).run()?;

    step("Generated code: crates/events/src/contracts.rs matches wit/events.wit");
    codegen::check(project)?;

    step("Lints: clippy with warnings denied");
    cargo()
        .args(["clippy", "--workspace", "--all-targets", "--locked"])
        .args(["--", "--deny", "warnings"])
        .run()?;

    // The black-box tests run the built components: build them first.
    let built = build::build_apps(project, &[build::APP, build::PROBE, build::BUS_PROBE])?;

    step("Checking each component against its world in wit/");
    let app = manifest::load(&project.root.join(build::APP))?;
    let mut checked = BTreeSet::new();
    for component in built
        .into_iter()
        .filter(|built| app.components.contains(&built.component))
    {
        let world = component.component.package;
        if checked.insert(world.clone()) {
            let imports = wit::check_world(&project.root, &component.module, &world)?;
            eprintln!(
                "{world}: targets world `{world}`; imports {}",
                imports.join(", ")
            );
        }
    }

    step("Self-test: the world check rejects an import its world does not declare");
    build::build_packages(project, &[FORBIDDEN_IMPORT_FIXTURE])?;
    let fixture = build::wasm_path(project, FORBIDDEN_IMPORT_FIXTURE);
    match wit::check_world(&project.root, &fixture, "auth") {
        Ok(imports) => bail!(
            "the world check accepted {FORBIDDEN_IMPORT_FIXTURE} against world `auth`, \
             although it imports {}",
            imports.join(", ")
        ),
        // Rejected for the right reason: the import, not an unreadable file or WIT.
        Err(err) if format!("{err:#}").contains("missing import named") => {
            eprintln!("rejected, as it must be: {err:#}")
        }
        Err(err) => return Err(err.context("the world check failed for another reason")),
    }

    step("Tests: unit tests, then the black-box tests on the host (and on real Spin, if found)");
    match spin_on_path(project) {
        Some(version) => eprintln!("real Spin found ({version}): behaviour tests also run on it"),
        None => eprintln!("no Spin >= 3.6 on PATH: behaviour tests run on the project's host only"),
    }
    cargo().args(["test", "--workspace", "--locked"]).run()?;

    step("All tests passed");
    Ok(())
}

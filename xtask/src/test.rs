//! `cargo xtask test`: THE test command (README and .ci/run call exactly this).

use std::collections::BTreeSet;

use anyhow::{Result, bail};

use crate::up::spin_on_path;
use crate::{Project, build, manifest, setup, step, web, wit};

/// A component that imports outbound HTTP and key-value; the `auth` world grants neither.
const FORBIDDEN_IMPORT_FIXTURE: &str = "fixture-forbidden-import";

pub fn run(project: &Project) -> Result<()> {
    setup::run(project, setup::Needs::AppAndBrowser)?;
    let cargo = || project.toolchain.cargo(&project.sh);

    step("Formatting: cargo fmt --check (the workspace, and the web app in frontend/)");
    cargo().args(["fmt", "--all", "--check"]).run()?;
    cargo()
        .args([
            "fmt",
            "--all",
            "--check",
            "--manifest-path",
            "frontend/Cargo.toml",
        ])
        .run()?;

    step("Lints: clippy with warnings denied");
    cargo()
        .args(["clippy", "--workspace", "--all-targets", "--locked"])
        .args(["--", "--deny", "warnings"])
        .run()?;

    step("Lints: clippy on the web app, for the browser");
    web::frontend_cargo(project, "clippy")
        .args(["--locked", "--", "--deny", "warnings"])
        .run()?;

    // The black-box tests run the built components: build them first.
    let built = build::build_apps(project, &[build::APP, build::PROBE, build::BUS_PROBE])?;

    step("Checking each component against its world in wit/");
    let app = manifest::load(&project.root.join(build::APP))?;
    let wit = wit::AppWit::load(project)?;
    let mut checked = BTreeSet::new();
    for component in built
        .into_iter()
        .filter(|built| app.components.contains(&built.component))
    {
        let memory = build::initial_memory(&component.module)?;
        if memory != build::COMPONENT_INITIAL_MEMORY {
            bail!(
                "{} starts with {memory} bytes of memory, not the {} that \
                 crates/component-build.rs links every component with: is its Cargo.toml \
                 missing `build = \"../../crates/component-build.rs\"`?",
                component.module.display(),
                build::COMPONENT_INITIAL_MEMORY
            );
        }
        let world = component.component.package;
        if checked.insert(world.clone()) {
            let imports = wit.check_world(&component.module, &world)?;
            eprintln!(
                "{world}: targets world `{world}`; imports {}",
                imports.join(", ")
            );
        }
    }

    step("wit/spin-test: spin-test's interfaces resolve against the SDK's WIT");
    let (world, imports) = wit::spin_test_world(project)?;
    eprintln!("{world} imports {}", imports.join(", "));

    step("Self-test: the world check rejects an import its world does not declare");
    build::build_packages(project, &[FORBIDDEN_IMPORT_FIXTURE])?;
    let fixture = build::wasm_path(project, FORBIDDEN_IMPORT_FIXTURE);
    match wit.check_world(&fixture, "auth") {
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

    let spinkube_schemas = crate::k8s::run(project, &[])?;
    step("Image: the app's OCI image, pushed to a local registry and pulled back");
    crate::image::round_trip(project)?;

    step("Tests: unit tests, then the black-box tests on the host (and on real Spin, if found)");
    match spin_on_path(project) {
        Some(version) => eprintln!("real Spin found ({version}): behaviour tests also run on it"),
        None => eprintln!("no Spin >= 3.6 on PATH: behaviour tests run on the project's host only"),
    }
    step("Unit tests of the web app (its pure parts, natively)");
    cargo()
        .args(["test", "--locked", "--manifest-path", "frontend/Cargo.toml"])
        .arg("--target-dir")
        .arg(web::frontend_target_dir(project))
        .run()?;
    compile_once(project)?;
    component_tests(project)?;
    step("Unit, black-box and browser tests of the workspace");
    cargo().args(["test", "--workspace", "--locked"]).run()?;
    eprintln!(
        "the browser tests' screenshots are in target/browser/screenshots/ \
         (`cargo xtask screenshots` refreshes docs/screenshots/)"
    );

    step("All tests passed");
    match spinkube_schemas {
        crate::k8s::SpinKubeSchemas::Crds(dir) => {
            eprintln!("the k8s check used SpinKube's CRDs in {}", dir.display())
        }
        crate::k8s::SpinKubeSchemas::Project => eprintln!("{}", crate::k8s::skipped_crd_check()),
    }
    Ok(())
}

/// Builds the host the tests use and compiles every module of the test apps once, into
/// the compiled-code cache the harness gives each host (`host-cache` beside it). Tests
/// run side by side; left to them, each that starts an app first would compile every
/// module at the same time as the others, and on a busy machine a start could outlast
/// the harness's start timeout.
fn compile_once(project: &Project) -> Result<()> {
    step("Compiling the test apps' modules once, for all the tests (host compile)");
    project
        .toolchain
        .cargo(&project.sh)
        .args(["build", "--package", "host", "--locked"])
        .run()?;
    let host = project.target_dir().join("debug").join("host");
    let cache = host.with_file_name("host-cache");
    for manifest in [build::APP, build::PROBE, build::BUS_PROBE] {
        project
            .sh
            .cmd(&host)
            .args(["compile", "--from"])
            .arg(project.root.join(manifest))
            .arg("--cache-dir")
            .arg(&cache)
            .run()?;
    }
    Ok(())
}

/// The manifest whose component tests include one that fails on purpose.
const FAILING_COMPONENT_TEST: &str = "xtask/fixtures/failing-component-test/spin.toml";

/// Builds the tests of each component that has them (`[component.<id>.tool.spin-test]`
/// in the app's and the probe's spin.toml), puts each where its spin.toml expects it,
/// and runs them on the host (`host test`), with the compiled code `compile_once` left;
/// then checks that a failing test fails the run, saying why.
fn component_tests(project: &Project) -> Result<()> {
    let manifests = [build::APP, build::PROBE, FAILING_COMPONENT_TEST];
    let mut packages: Vec<String> = Vec::new();
    let mut placed = Vec::new();
    for manifest in manifests {
        let app = manifest::load(&project.root.join(manifest))?;
        for test in app.components.iter().filter_map(|c| c.spin_test.as_ref()) {
            if !packages.contains(&test.package) {
                packages.push(test.package.clone());
            }
            placed.push((test.package.clone(), app.dir.join(&test.source)));
        }
    }
    step(&format!(
        "Building the component tests: {}",
        packages.join(", ")
    ));
    let packages: Vec<&str> = packages.iter().map(String::as_str).collect();
    build::build_packages(project, &packages)?;
    for (package, source) in &placed {
        build::place(&build::wasm_path(project, package), source)?;
    }

    let host = project.target_dir().join("debug").join("host");
    let host_test = |manifest: &str| {
        project
            .sh
            .cmd(&host)
            .args(["test", "--no-build", "--from"])
            .arg(project.root.join(manifest))
            .arg("--cache-dir")
            .arg(host.with_file_name("host-cache"))
    };
    step("Component tests: each service's, in spin-test's format (host test)");
    host_test(build::APP).run()?;
    step("Component tests of the host's test environment, through the probe (host test)");
    host_test(build::PROBE).run()?;

    step("Self-test: a failing component test fails `host test`, and says why");
    let output = host_test(FAILING_COMPONENT_TEST)
        .ignore_status()
        .quiet()
        .output()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let failed_for_its_reason = !output.status.success()
        && text.contains("this fixture test fails on purpose")
        && text.contains("1 passed; 1 failed");
    if !failed_for_its_reason {
        bail!(
            "`host test` on {FAILING_COMPONENT_TEST} should fail with the test's message; \
             it exited with {} and printed:\n{text}{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    eprintln!(
        "failed, as it must, with the test's message ({})",
        output.status
    );
    Ok(())
}

/// `cargo xtask screenshots`: runs the browser tests, which write their screenshots of
/// the main pages into docs/screenshots/ (the README shows them).
pub fn screenshots(project: &Project) -> Result<()> {
    setup::run(project, setup::Needs::AppAndBrowser)?;
    build::build_apps(project, &[build::APP])?;
    let cargo = || project.toolchain.cargo(&project.sh);
    step("Building the host the tests run the app on");
    cargo()
        .args(["build", "--package", "host", "--locked"])
        .run()?;
    step("Browser tests, saving screenshots into docs/screenshots/");
    let dir = project.root.join("docs/screenshots");
    std::fs::create_dir_all(&dir)?;
    cargo()
        .args(["test", "--package", "web", "--test", "browser", "--locked"])
        .env("TICKETING_SCREENSHOTS", &dir)
        .run()?;
    Ok(())
}

//! `cargo xtask test`: THE test command (README and .ci/run call exactly this).

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::spin::{self, Spin};
use crate::{Project, build, manifest, setup, step, web, wit};

/// A component that imports outbound HTTP and key-value; the `auth` world grants neither.
const FORBIDDEN_IMPORT_FIXTURE: &str = "fixture-forbidden-import";

/// The file the harness notes, for each test, the runtimes it started the app on.
const TALLY_VARIABLE: &str = "TICKETING_RUNTIME_TALLY";

pub fn run(project: &Project) -> Result<()> {
    // Before anything long: a TICKETING_SPIN that will not do ends the run at once.
    let spin = spin::find()?;
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
    match &spin {
        Some(spin) => eprintln!(
            "real Spin found ({}): behaviour tests also run on it",
            spin.version
        ),
        None => eprintln!("no Spin >= 3.6 found: behaviour tests run on the project's host only"),
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
    let tally = project.target_dir().join("runtime-tally");
    match std::fs::remove_file(&tally) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            return Err(err).with_context(|| format!("removing {}", tally.display()));
        }
        _ => {}
    }
    cargo()
        .args(["test", "--workspace", "--locked"])
        .env(TALLY_VARIABLE, &tally)
        .run()?;
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
    eprintln!("{}", RuntimeTally::read(&tally)?.summary(spin.as_ref()));
    Ok(())
}

/// How many tests started the app on each runtime, from the lines `<runtime>\t<test>`
/// the harness appends (a test that starts several apps on one runtime counts once).
#[derive(Debug, PartialEq, Eq)]
struct RuntimeTally {
    host: usize,
    spin: usize,
}

impl RuntimeTally {
    fn read(path: &Path) -> Result<RuntimeTally> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(RuntimeTally::parse(&text)),
            // No test started an app.
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(RuntimeTally::parse("")),
            Err(err) => Err(err).with_context(|| format!("reading {}", path.display())),
        }
    }

    fn parse(text: &str) -> RuntimeTally {
        let tests: BTreeSet<(&str, &str)> = text
            .lines()
            .filter_map(|line| line.split_once('\t'))
            .collect();
        let count = |name: &str| tests.iter().filter(|(runtime, _)| *runtime == name).count();
        RuntimeTally {
            host: count("host"),
            spin: count("spin"),
        }
    }

    /// The run's last word on where its tests ran.
    fn summary(&self, spin: Option<&Spin>) -> String {
        let RuntimeTally {
            host,
            spin: on_spin,
        } = self;
        match spin {
            Some(spin) => format!(
                "tests that ran the app: {host} on the host, {on_spin} on Spin ({})",
                spin.version
            ),
            None => format!(
                "real Spin was not found ({} unset, and no `spin` 3.6 or newer on PATH): \
                 tests that ran the app: {host} on the host, {on_spin} on Spin",
                spin::VARIABLE
            ),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_test_counts_once_per_runtime_it_ran_the_app_on() {
        let lines = "host\tapi-1::sign_up\n\
                     spin\tapi-1::sign_up\n\
                     host\tapi-1::replicas\n\
                     host\tapi-1::replicas\n\
                     host\tbus-2::sign_up\n\
                     a torn line\n";
        assert_eq!(
            RuntimeTally::parse(lines),
            RuntimeTally { host: 3, spin: 1 }
        );
        assert_eq!(RuntimeTally::parse(""), RuntimeTally { host: 0, spin: 0 });
    }

    #[test]
    fn the_summary_says_when_spin_was_not_found() {
        let tally = RuntimeTally { host: 212, spin: 0 };
        assert_eq!(
            tally.summary(None),
            "real Spin was not found (TICKETING_SPIN unset, and no `spin` 3.6 or newer on \
             PATH): tests that ran the app: 212 on the host, 0 on Spin"
        );
        let spin = Spin {
            program: "spin".to_owned(),
            version: "spin 3.6.3 (88d51cf1 2026-04-09)".to_owned(),
        };
        assert_eq!(
            RuntimeTally {
                host: 212,
                spin: 180
            }
            .summary(Some(&spin)),
            "tests that ran the app: 212 on the host, 180 on Spin (spin 3.6.3 (88d51cf1 2026-04-09))"
        );
    }
}

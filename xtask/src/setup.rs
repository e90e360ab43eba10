//! `cargo xtask setup`: install what is missing, and nothing else.

use anyhow::{Context, Result, bail};
use xshell::{Shell, cmd};

use crate::{Project, step};

/// What a command needs: running and building the app, or testing it too (a browser).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    App,
    AppAndBrowser,
}

pub fn run(project: &Project, needs: Needs) -> Result<()> {
    let sh = &project.sh;
    step(&format!("Toolchain: {}", project.toolchain.describe()));

    step("Checking Debian packages");
    let mut wanted: Vec<&str> = project.toolchain.apt_packages().to_vec();
    if !on_path("redis-server") {
        wanted.push("redis-server");
    }
    // `wasm-opt`, which shrinks the web app's module.
    if !on_path("wasm-opt") {
        wanted.push("binaryen");
    }
    // The browser tests: Chromium, driven over WebDriver by its chromedriver.
    if needs == Needs::AppAndBrowser && !on_path("chromedriver") {
        wanted.extend(["chromium", "chromium-driver"]);
    }
    // The image round trip: a local OCI registry.
    if needs == Needs::AppAndBrowser && !on_path("docker-registry") {
        wanted.push("docker-registry");
    }
    let missing: Vec<&str> = wanted
        .into_iter()
        .filter(|package| !is_installed(sh, package))
        .collect();
    if missing.is_empty() {
        eprintln!("everything is installed");
    } else {
        eprintln!("missing: {}", missing.join(" "));
        apt_install(sh, &missing)?;
    }

    step("Versions");
    let cargo = project.toolchain.cargo(sh);
    cargo.arg("--version").run()?;
    let redis = cmd!(sh, "redis-server --version").quiet().read()?;
    eprintln!("{redis}");
    if needs == Needs::AppAndBrowser {
        let chromium = cmd!(sh, "chromium --version")
            .quiet()
            .ignore_stderr()
            .read()?;
        eprintln!("{chromium}");
    }
    Ok(())
}

pub fn on_path(program: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).any(|dir| dir.join(program).is_file())
}

fn is_installed(sh: &Shell, package: &str) -> bool {
    sh.cmd("dpkg-query")
        .args(["--show", "--showformat=${db:Status-Status}", package])
        .quiet()
        .ignore_stderr()
        .read()
        .is_ok_and(|status| status == "installed")
}

fn apt_install(sh: &Shell, packages: &[&str]) -> Result<()> {
    if !on_path("apt-get") {
        bail!(
            "this machine has no apt-get; install these yourself: {}",
            packages.join(" ")
        );
    }
    // Root installs directly; anyone else goes through sudo.
    let is_root = cmd!(sh, "id -u").quiet().read()? == "0";
    let apt = |args: &[&str]| {
        let cmd = if is_root {
            sh.cmd("apt-get")
        } else {
            sh.cmd("sudo").arg("apt-get")
        };
        cmd.env("DEBIAN_FRONTEND", "noninteractive").args(args)
    };
    apt(&["update", "-qq"])
        .run()
        .context("apt-get update failed")?;
    apt(&["install", "-y", "-qq", "--no-install-recommends"])
        .args(packages)
        .run()
        .context("apt-get install failed")?;
    Ok(())
}

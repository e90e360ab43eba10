//! `cargo xtask faults`: the fault suite (`faults/`) at full size against the app on the
//! project's host, its figures written to docs/reliability.md.

use anyhow::Result;

use crate::{Project, build, setup, step};

pub fn run(project: &Project) -> Result<()> {
    setup::run(project, setup::Needs::App)?;
    // The scenarios run the app's components and the bus's test service.
    build::build_apps(project, &[build::APP, build::BUS_PROBE])?;

    step("Building the host and the fault suite");
    // The dev profile, as `cargo xtask test` builds them: a warm test run leaves them.
    project
        .toolchain
        .cargo(&project.sh)
        .args([
            "build",
            "--locked",
            "--package",
            "host",
            "--package",
            "faults",
        ])
        .run()?;

    step("Running every fault scenario (about five minutes)");
    let debug = project.target_dir().join("debug");
    let out = project.root.join("docs").join("reliability.md");
    project
        .sh
        .cmd(debug.join("faults"))
        .arg("--out")
        .arg(&out)
        .env("TICKETING_HOST_BIN", debug.join("host"))
        // The harness finds the checkout (spin.toml, the probe) from here, not from
        // where a shared target directory's binary was compiled.
        .env("CARGO_MANIFEST_DIR", project.root.join("faults"))
        .run()?;
    Ok(())
}

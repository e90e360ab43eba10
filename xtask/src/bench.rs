//! `cargo xtask bench`: the app's throughput and latency on the host next to a native
//! baseline, its event pipeline, start-up and memory, measured in one run on 127.0.0.1
//! (`bench/`), written to docs/benchmarks.md.

use anyhow::Result;

use crate::{Project, build, setup, step};

pub fn run(project: &Project) -> Result<()> {
    setup::run(project, setup::Needs::App)?;
    build::build_apps(project, &[build::APP, build::PROBE])?;

    step("Building the host and the load generator (release)");
    project
        .toolchain
        .cargo(&project.sh)
        .args([
            "build",
            "--release",
            "--locked",
            "--package",
            "host",
            "--package",
            "bench",
        ])
        .run()?;

    step("Benchmarking (under five minutes)");
    let release = project.target_dir().join("release");
    let out = project.root.join("docs").join("benchmarks.md");
    project
        .sh
        .cmd(release.join("bench"))
        .arg("run")
        .arg("--out")
        .arg(&out)
        .env("TICKETING_HOST_BIN", release.join("host"))
        .run()?;
    Ok(())
}

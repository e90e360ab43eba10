//! `cargo xtask faults`: the fault suite (`faults/`) at full size against the app on the
//! project's host, its figures written to docs/reliability.md.

use anyhow::Result;

use crate::{Project, build, setup, step};

pub fn run(project: &Project) -> Result<()> {
    setup::run(project, setup::Needs::App)?;
    // The scenarios run the app's components and the bus's test service.
    build::build_apps(project, &[build::APP, build::BUS_PROBE])?;

    step("Building the host and the fault suite, then running every scenario (about five minutes)");
    let out = project.root.join("docs").join("reliability.md");
    build::run_with_host(project, "faults", false, &["--out", &out.to_string_lossy()])
}

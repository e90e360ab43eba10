//! `cargo xtask faults`: the fault suite (`faults/`) at full size against the app on the
//! project's host, its figures written to docs/reliability.md.

use anyhow::Result;

use crate::{Project, build, setup, step};

/// `cargo xtask faults [--soak MINUTES]`.
pub fn run(project: &Project, args: &[String]) -> Result<()> {
    let soak = match args {
        [] => "10".to_owned(),
        [flag, minutes] if flag == "--soak" && minutes.parse::<u64>().is_ok() => minutes.clone(),
        _ => anyhow::bail!("usage: cargo xtask faults [--soak MINUTES]"),
    };
    setup::run(project, setup::Needs::App)?;
    // The scenarios run the app's components and the bus's test service.
    build::build_apps(project, &[build::APP, build::BUS_PROBE])?;

    step(&format!(
        "Building the host and the fault suite, then running every scenario (about eight \
         minutes) and a soak of {soak} minutes"
    ));
    let out = project.root.join("docs").join("reliability.md");
    build::run_with_host(
        project,
        "faults",
        false,
        &["--out", &out.to_string_lossy(), "--soak", &soak],
    )
}

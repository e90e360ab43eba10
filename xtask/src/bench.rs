//! `cargo xtask bench`: the app's throughput and latency on the host next to a native
//! baseline, its event pipeline, start-up and memory, measured in one run on 127.0.0.1
//! (`bench/`), written to docs/benchmarks.md.

use anyhow::Result;

use crate::{Project, build, setup, step};

pub fn run(project: &Project) -> Result<()> {
    setup::run(project, setup::Needs::App)?;
    build::build_apps(project, &[build::APP, build::PROBE])?;

    step(
        "Building the host and the load generator (release), then benchmarking (under five minutes)",
    );
    let out = project.root.join("docs").join("benchmarks.md");
    build::run_with_host(
        project,
        "bench",
        true,
        &["run", "--out", &out.to_string_lossy()],
    )
}

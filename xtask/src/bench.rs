//! `cargo xtask bench`: the app's throughput and latency on the host next to a native
//! baseline, its event pipeline, start-up and memory, measured in one run on 127.0.0.1
//! (`bench/`), written to docs/benchmarks.md; the goals compared with the app of a
//! reference commit, built from its own sources and measured in the same run.

use std::path::PathBuf;

use anyhow::{Context, Result};
use xshell::cmd;

use crate::{Project, build, setup, step};

/// The commit the goals compare with: the app before the per-request work
/// (`bench/src/reference.rs` says the same).
const REFERENCE: &str = "6d3e31b";

pub fn run(project: &Project) -> Result<()> {
    setup::run(project, setup::Needs::App)?;
    build::build_apps(project, &[build::APP, build::PROBE])?;
    let out = project.root.join("docs").join("benchmarks.md");
    let mut args = vec![
        "run".to_owned(),
        "--out".to_owned(),
        out.display().to_string(),
    ];
    match reference(project) {
        Ok(Some(reference)) => {
            args.push("--reference".to_owned());
            args.push(reference.root.display().to_string());
            args.push(reference.host.display().to_string());
        }
        Ok(None) => {}
        Err(err) => eprintln!(
            "WARNING: the reference commit {REFERENCE} could not be built ({err:#}); the \
             report compares with its recorded figures and does not judge the goals that \
             need it"
        ),
    }

    step(
        "Building the host and the load generator (release), then benchmarking (under ten minutes)",
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    build::run_with_host(project, "bench", true, &args)
}

/// The reference commit's checkout, with its modules built, and its release host.
struct Reference {
    root: PathBuf,
    host: PathBuf,
}

/// Builds the reference commit's app and host in the target directory: its sources
/// from git, its modules by its own `cargo xtask build`, its host by cargo, with a
/// target directory of their own (its crates have today's names, so sharing ours would
/// overwrite today's binaries). The first time takes as long as a cold build; later
/// runs find everything built. `None` when the clone lacks the commit (a shallow one).
fn reference(project: &Project) -> Result<Option<Reference>> {
    let sh = &project.sh;
    let dir = project.target_dir().join("bench-reference").join(REFERENCE);
    let root = dir.join("checkout");
    let target = dir.join("target");
    if !root.join("spin.toml").is_file() {
        let commit = format!("{REFERENCE}^{{commit}}");
        if cmd!(sh, "git cat-file -e {commit}")
            .quiet()
            .ignore_stderr()
            .run()
            .is_err()
        {
            eprintln!(
                "the reference commit {REFERENCE} is not in this clone's history (a shallow \
                 clone?): the report compares with its recorded figures"
            );
            return Ok(None);
        }
        let partial = dir.join("checkout.partial");
        if partial.exists() {
            std::fs::remove_dir_all(&partial)?;
        }
        std::fs::create_dir_all(&partial)?;
        let archive = cmd!(sh, "git archive --format=tar {REFERENCE}")
            .quiet()
            .output()
            .context("git archive of the reference commit")?
            .stdout;
        cmd!(sh, "tar -x -C {partial}")
            .stdin(archive)
            .quiet()
            .run()?;
        std::fs::rename(&partial, &root)?;
    }
    step(&format!(
        "The reference commit {REFERENCE}: its app and its host, from its own sources in \
         {} (a cold build the first time)",
        dir.display()
    ));
    let _in_checkout = sh.push_dir(&root);
    let _own_target = sh.push_env("CARGO_TARGET_DIR", &target);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    cmd!(sh, "{cargo} xtask build spin.toml host/probe/spin.toml").run()?;
    project
        .toolchain
        .cargo(sh)
        .args(["build", "--locked", "--release", "--package", "host"])
        .run()?;
    Ok(Some(Reference {
        host: target.join("release").join("host"),
        root,
    }))
}

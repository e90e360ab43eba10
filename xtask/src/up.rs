//! `cargo xtask up`: the whole app on this machine, with Redis and a dev `jwt_key`.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::{Context, Result};

use crate::{Project, build, manifest, redis, setup, spin, step};

const LISTEN: &str = "127.0.0.1:3000";
/// The payment provider of local runs (spin.toml's `payment_provider`).
const SANDBOX: &str = "sandbox";

/// Which build of the project's host `up` runs (when Spin is not on PATH).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum HostProfile {
    /// The dev build, shared with `cargo xtask test`: compiles in about half the time.
    Dev,
    /// `--release`: optimized, for measuring or heavy local use.
    Release,
}

impl HostProfile {
    pub fn from_args(args: &[String]) -> Result<HostProfile> {
        match args {
            [] => Ok(HostProfile::Dev),
            [flag] if flag == "--release" => Ok(HostProfile::Release),
            other => anyhow::bail!("`up` takes only `--release`, not {other:?}"),
        }
    }

    fn dir(self) -> &'static str {
        match self {
            HostProfile::Dev => "debug",
            HostProfile::Release => "release",
        }
    }
}

/// The app's `redis_url`: `SPIN_VARIABLE_REDIS_URL`, else its default in spin.toml.
pub fn app_redis_url(project: &Project) -> Result<String> {
    if let Ok(url) = std::env::var("SPIN_VARIABLE_REDIS_URL") {
        return Ok(url);
    }
    let app = manifest::load(&project.root.join(build::APP))?;
    Ok(app
        .variables
        .get("redis_url")
        .and_then(|variable| variable.default.clone())
        .unwrap_or_default())
}

pub fn run(project: &Project, profile: HostProfile) -> Result<()> {
    let spin = spin::find()?;
    setup::run(project, setup::Needs::App)?;
    match &spin {
        Some(spin) => step(&format!("Runtime: {}", spin.version)),
        None => step("Runtime: the project's host (no Spin >= 3.6 on PATH)"),
    }

    build::run(project, &[])?;
    if spin.is_none() {
        step(&format!("Building the host ({})", profile.dir()));
        let mut cargo = project.toolchain.cargo(&project.sh);
        cargo = cargo.args(["build", "--locked", "--package", "host"]);
        if profile == HostProfile::Release {
            cargo = cargo.arg("--release");
        }
        cargo.run()?;
    }
    let redis_url = app_redis_url(project)?;
    let _redis = redis::ensure(project, &redis_url)?;
    let jwt_key = dev_jwt_key(&project.root)?;
    let payment_provider =
        dev_payment_provider(std::env::var("SPIN_VARIABLE_PAYMENT_PROVIDER").ok());

    step(&format!(
        "Starting the app: open http://{LISTEN}/ (Ctrl-C stops it)"
    ));
    let sh = &project.sh;
    let args = [
        "up",
        "--from",
        "spin.toml",
        "--runtime-config-file",
        "runtime-config.toml",
        "--listen",
        LISTEN,
    ];
    let runtime = match spin {
        Some(spin) => sh.cmd(spin.program),
        None => sh.cmd(project.target_dir().join(profile.dir()).join("host")),
    };
    let mut runtime = runtime.args(args);
    if let Some(endpoint) = traces_endpoint(project) {
        runtime = runtime.env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint);
    }
    // Ctrl-C reaches the runtime too; its clean exit (or the interrupt) ends xtask,
    // and dropping `_redis` stops a Redis started here.
    let _ = runtime
        .env("SPIN_VARIABLE_JWT_KEY", jwt_key)
        .env("SPIN_VARIABLE_PAYMENT_PROVIDER", payment_provider)
        .run();
    Ok(())
}

/// Where the runtime exports traces: the environment's OTLP endpoint if it names one
/// (the runtime reads it itself), else a running `cargo xtask traces`, else nowhere.
fn traces_endpoint(project: &Project) -> Option<String> {
    step("Traces");
    let configured = [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .into_iter()
    .find(|name| std::env::var_os(name).is_some_and(|value| !value.is_empty()));
    if let Some(name) = configured {
        eprintln!("exported as {name} says");
        return None;
    }
    match crate::traces::running_receiver(project) {
        Some(endpoint) => {
            eprintln!("exported to `cargo xtask traces` at {endpoint}");
            Some(endpoint)
        }
        None => {
            eprintln!("off (`cargo xtask traces` in another terminal shows them)");
            None
        }
    }
}

/// The payment provider of a local run: `SPIN_VARIABLE_PAYMENT_PROVIDER` if set, else
/// the offline sandbox, by name (spin.toml's default is Stripe, which refuses payments
/// without a secret key).
fn dev_payment_provider(from_env: Option<String>) -> String {
    step("Payment provider");
    match from_env {
        Some(provider) => {
            eprintln!("using SPIN_VARIABLE_PAYMENT_PROVIDER from the environment");
            provider
        }
        None => {
            eprintln!(
                "sandbox: no real charges (SPIN_VARIABLE_PAYMENT_PROVIDER=stripe with \
                 SPIN_VARIABLE_STRIPE_SECRET_KEY charges through Stripe)"
            );
            SANDBOX.to_owned()
        }
    }
}

/// `bytes` random bytes from `/dev/urandom`, in hex (a dev key, a trace id).
pub fn random_hex(bytes: usize) -> Result<String> {
    let mut random = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut source| std::io::Read::read_exact(&mut source, &mut random))
        .context("reading /dev/urandom")?;
    Ok(random.iter().map(|byte| format!("{byte:02x}")).collect())
}

/// The development session key: `SPIN_VARIABLE_JWT_KEY` if set, else one generated
/// once and kept in `.spin/jwt_key` (git-ignored), so sessions survive restarts.
fn dev_jwt_key(root: &Path) -> Result<String> {
    step("Development jwt_key");
    if let Ok(key) = std::env::var("SPIN_VARIABLE_JWT_KEY") {
        eprintln!("using SPIN_VARIABLE_JWT_KEY from the environment");
        return Ok(key);
    }
    let path = root.join(".spin").join("jwt_key");
    if let Ok(key) = std::fs::read_to_string(&path) {
        eprintln!("using {}", path.display());
        return Ok(key.trim().to_owned());
    }
    let key = random_hex(32)?;
    std::fs::create_dir_all(path.parent().expect("the key file is in .spin/"))?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(key.as_bytes())?;
    eprintln!("generated {} (readable by you only)", path.display());
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_run_chooses_the_sandbox_unless_the_environment_says_otherwise() {
        assert_eq!(dev_payment_provider(None), "sandbox");
        assert_eq!(dev_payment_provider(Some("stripe".to_owned())), "stripe");
        // Set, even to nothing, is the user's choice (payments then refuse, and say why).
        assert_eq!(dev_payment_provider(Some(String::new())), "");
    }
}

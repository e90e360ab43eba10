//! Real Spin: the binary `up` runs the app on and the tests run on too, when there is
//! one of 3.6 or newer (the harness's `Runtime::spin` applies the same rules).

use std::process::Command;

use anyhow::{Result, anyhow};

/// Names the Spin binary to use; unset, `spin` on PATH is used when it will do.
pub const VARIABLE: &str = "TICKETING_SPIN";

/// A Spin that will do: how to run it, and its `--version` line.
pub struct Spin {
    pub program: String,
    pub version: String,
}

/// The Spin `TICKETING_SPIN` names, which must then be usable (an error says why it is
/// not: a run that quietly tested less would look like one that tested all), else
/// `spin` on PATH when it is 3.6 or newer.
pub fn find() -> Result<Option<Spin>> {
    match std::env::var(VARIABLE)
        .ok()
        .filter(|named| !named.is_empty())
    {
        Some(named) => match version(&named) {
            Ok(version) => Ok(Some(Spin {
                program: named,
                version,
            })),
            Err(why) => Err(anyhow!("{VARIABLE}={named}: {why}")),
        },
        None => Ok(version("spin").ok().map(|version| Spin {
            program: "spin".to_owned(),
            version,
        })),
    }
}

/// `program --version`, when it says 3.6 or newer; else why not.
fn version(program: &str) -> Result<String, String> {
    let output = Command::new(program)
        .arg("--version")
        .output()
        .map_err(|err| match err.kind() {
            std::io::ErrorKind::NotFound => format!("no such file ({err})"),
            std::io::ErrorKind::PermissionDenied => format!("not executable ({err})"),
            _ => format!("cannot be run ({err})"),
        })?;
    if !output.status.success() {
        return Err(format!(
            "`--version` failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let text = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    match parse_version(&text) {
        Some(number) if number >= (3, 6) => Ok(text),
        Some(_) => Err(format!("it is {text}; Spin 3.6 or newer is needed")),
        None => Err(format!(
            "`--version` printed {text:?}, not `spin <version>`"
        )),
    }
}

/// (major, minor) of "spin 3.6.3 (88d51cf1 2026-04-09)".
fn parse_version(text: &str) -> Option<(u32, u32)> {
    let number = text.strip_prefix("spin ")?.split_whitespace().next()?;
    let mut parts = number.split('.').map(|part| part.parse::<u32>().ok());
    Some((parts.next()??, parts.next()??))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_is_read_from_spins_own_line() {
        assert_eq!(
            parse_version("spin 3.6.3 (88d51cf1 2026-04-09)"),
            Some((3, 6))
        );
        assert_eq!(parse_version("spin 10.0.0"), Some((10, 0)));
        assert_eq!(parse_version("spin-cli 3.6.3"), None);
        assert_eq!(parse_version(""), None);
    }

    #[test]
    fn an_unusable_binary_says_why() {
        let dir = std::env::temp_dir().join(format!("xtask-spin-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = |name: &str, text: &str, mode: u32| {
            use std::os::unix::fs::PermissionsExt as _;
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            path.display().to_string()
        };
        let why = |program: &str| version(program).unwrap_err();
        assert!(why("/nonexistent/spin").contains("no such file"));
        assert!(why(&file("plain", "spin 3.6.3", 0o644)).contains("not executable"));
        let old = file(
            "old",
            "#!/bin/sh\necho 'spin 3.5.1 (abc 2025-01-01)'\n",
            0o755,
        );
        assert!(why(&old).contains("it is spin 3.5.1"), "{}", why(&old));
        let failing = file("failing", "#!/bin/sh\necho broken >&2\nexit 3\n", 0o755);
        assert!(
            why(&failing).contains("`--version` failed"),
            "{}",
            why(&failing)
        );
        let good = file(
            "good",
            "#!/bin/sh\necho 'spin 3.6.3 (88d51cf1 2026-04-09)'\n",
            0o755,
        );
        assert_eq!(version(&good).unwrap(), "spin 3.6.3 (88d51cf1 2026-04-09)");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

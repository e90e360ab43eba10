//! Whether a Spin binary will do: the app needs Spin 3.6 or newer. xtask (`up`,
//! `test`) and the test harness ask the same question and give the same reasons.

use std::path::Path;
use std::process::Command;

/// `program --version`, when it says 3.6 or newer; else why not.
pub fn check(program: impl AsRef<Path>) -> Result<String, String> {
    let output = Command::new(program.as_ref())
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
        let dir = std::env::temp_dir().join(format!("spin-version-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = |name: &str, text: &str, mode: u32| {
            use std::os::unix::fs::PermissionsExt as _;
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            path.display().to_string()
        };
        let why = |program: &str| check(program).unwrap_err();
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
        assert_eq!(check(&good).unwrap(), "spin 3.6.3 (88d51cf1 2026-04-09)");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

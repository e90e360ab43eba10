//! Where the project's Spin and WASI WIT comes from: the spin-sdk crate that every
//! component depends on ships it in its `wit/` directory (the package `spin:up` with
//! every Spin and WASI package under `wit/deps/`). The project keeps no copy: whatever
//! needs that WIT (the host's bindings, at build time; `cargo xtask`'s world checks
//! and codegen) reads it from Cargo's package cache, located through `cargo metadata`,
//! which also downloads the crate when it is not there yet.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// The crate whose WIT the project reads.
pub const SDK: &str = "spin-sdk";

/// The spin-sdk crate of a workspace, as `cargo metadata` reports it.
#[derive(Debug, Clone)]
pub struct SdkWit {
    /// Its version (the workspace pins exactly one).
    pub version: String,
    /// Its `wit/` directory: a WIT package with its dependencies in `deps/`.
    pub dir: PathBuf,
    /// The workspace's `Cargo.lock`: the WIT changes only when it does.
    pub lock_file: PathBuf,
}

/// Finds the spin-sdk crate that the workspace of `manifest` (any `Cargo.toml` in it)
/// depends on, running `cargo` (in a build script: the `CARGO` it was given).
pub fn locate(cargo: &OsStr, manifest: &Path) -> Result<SdkWit> {
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--locked",
            "--manifest-path",
        ])
        .arg(manifest)
        .output()
        .with_context(|| format!("running `{} metadata`", cargo.to_string_lossy()))?;
    if !output.status.success() {
        bail!(
            "`cargo metadata` failed for {}:\n{}",
            manifest.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let metadata: Value =
        serde_json::from_slice(&output.stdout).context("reading `cargo metadata`'s answer")?;
    from_metadata(&metadata)
}

impl SdkWit {
    /// Copies into `deps_dir` the SDK's packages that the WIT files `of` refer to, and
    /// those they refer to in turn: a `deps/` directory for a WIT package of one's own
    /// (a build directory, never the repository). Returns the packages' ids.
    pub fn copy_dependencies(&self, of: &[PathBuf], deps_dir: &Path) -> Result<Vec<String>> {
        let available = packages_in(&self.dir.join("deps"))?;
        let own = packages_in_files(of)?;
        let mut wanted: Vec<String> = references_in(of)?
            .into_iter()
            .filter(|id| !own.contains(id))
            .collect();
        let mut chosen = BTreeMap::new();
        while let Some(id) = wanted.pop() {
            if chosen.contains_key(&id) {
                continue;
            }
            let entry = available.get(&id).with_context(|| {
                format!(
                    "the WIT refers to `{id}`, which {SDK} {} does not have",
                    self.version
                )
            })?;
            wanted.extend(references_in(&wit_files(entry)?)?);
            chosen.insert(id, entry.clone());
        }
        if deps_dir.exists() {
            std::fs::remove_dir_all(deps_dir)?;
        }
        std::fs::create_dir_all(deps_dir)?;
        for entry in chosen.values().collect::<BTreeSet<_>>() {
            let name = entry.file_name().context("a directory entry has a name")?;
            copy_entry(entry, &deps_dir.join(name))?;
        }
        Ok(chosen.into_keys().collect())
    }
}

fn from_metadata(metadata: &Value) -> Result<SdkWit> {
    let sdks: Vec<&Value> = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|package| package["name"] == SDK)
        .collect();
    let sdk = match sdks.as_slice() {
        [sdk] => sdk,
        [] => bail!("no crate of the workspace depends on {SDK}, whose WIT the project reads"),
        several => bail!(
            "the workspace depends on {} versions of {SDK} ({}): its WIT must come from one",
            several.len(),
            several
                .iter()
                .filter_map(|sdk| sdk["version"].as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let manifest = sdk["manifest_path"]
        .as_str()
        .context("`cargo metadata` gave no manifest path for spin-sdk")?;
    let dir = Path::new(manifest)
        .parent()
        .context("a manifest path has a directory")?
        .join("wit");
    if !dir.join("deps").is_dir() {
        bail!("{} has no WIT dependencies (deps/)", dir.display());
    }
    let workspace_root = metadata["workspace_root"]
        .as_str()
        .context("`cargo metadata` gave no workspace root")?;
    Ok(SdkWit {
        version: sdk["version"].as_str().unwrap_or("?").to_owned(),
        dir,
        lock_file: Path::new(workspace_root).join("Cargo.lock"),
    })
}

/// The WIT packages in a `deps/` directory: package id → the entry that holds it.
fn packages_in(deps: &Path) -> Result<BTreeMap<String, PathBuf>> {
    let mut packages = BTreeMap::new();
    for entry in std::fs::read_dir(deps).with_context(|| format!("reading {}", deps.display()))? {
        let entry = entry?.path();
        for id in packages_in_files(&wit_files(&entry)?)? {
            packages.insert(id, entry.clone());
        }
    }
    Ok(packages)
}

/// The `.wit` files of a package entry: a directory's files, or the file itself.
fn wit_files(entry: &Path) -> Result<Vec<PathBuf>> {
    if !entry.is_dir() {
        return Ok(vec![entry.to_path_buf()]);
    }
    let mut files = Vec::new();
    for file in std::fs::read_dir(entry)? {
        let file = file?.path();
        if file.extension().is_some_and(|ext| ext == "wit") {
            files.push(file);
        }
    }
    files.sort();
    Ok(files)
}

fn packages_in_files(files: &[PathBuf]) -> Result<BTreeSet<String>> {
    let mut ids = BTreeSet::new();
    for file in files {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        for line in text.lines() {
            if let Some(rest) = line.trim().strip_prefix("package ") {
                ids.insert(rest.trim_end_matches([';', ' ']).to_owned());
            }
        }
    }
    Ok(ids)
}

fn references_in(files: &[PathBuf]) -> Result<BTreeSet<String>> {
    let mut refs = BTreeSet::new();
    for file in files {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        refs.extend(package_refs(&text));
    }
    Ok(refs)
}

/// The packages a WIT text refers to by path: `wasi:io/streams@0.2.0` → `wasi:io@0.2.0`,
/// `fermyon:spin/inbound-redis` → `fermyon:spin`. Comments are skipped: their prose
/// mentions interfaces loosely.
fn package_refs(text: &str) -> BTreeSet<String> {
    let is_token_char = |c: char| c.is_ascii_alphanumeric() || "-_:/@.+".contains(c);
    text.lines()
        .map(|line| line.split_once("//").map_or(line, |(code, _comment)| code))
        .flat_map(|code| code.split(move |c: char| !is_token_char(c)))
        .filter_map(|token| {
            let (package, rest) = token.split_once('/')?;
            let (namespace, name) = package.split_once(':')?;
            let is_ident = |s: &str| {
                s.starts_with(|c: char| c.is_ascii_lowercase())
                    && s.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            };
            if !is_ident(namespace) || !is_ident(name) {
                return None;
            }
            Some(match rest.split_once('@') {
                Some((_, version)) => format!("{package}@{}", version.trim_end_matches('.')),
                None => package.to_owned(),
            })
        })
        .collect()
}

fn copy_entry(from: &Path, to: &Path) -> Result<()> {
    if !from.is_dir() {
        std::fs::copy(from, to)?;
        return Ok(());
    }
    std::fs::create_dir_all(to)?;
    for file in std::fs::read_dir(from)? {
        let file = file?.path();
        if file.is_dir() {
            bail!("{} has a nested directory", from.display());
        }
        std::fs::copy(
            &file,
            to.join(file.file_name().context("a file has a name")?),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This crate's manifest, as `cargo test` names it when it runs the test (the path
    /// compiled in may be another checkout's, when two share a target directory).
    fn this_manifest() -> PathBuf {
        std::env::var_os("CARGO_MANIFEST_DIR")
            .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
            .join("Cargo.toml")
    }

    /// This workspace's own metadata: its components depend on spin-sdk.
    #[test]
    fn finds_the_workspace_s_spin_sdk_and_its_wit() {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let manifest = this_manifest();
        let sdk = locate(&cargo, &manifest).unwrap();
        assert!(
            sdk.dir.ends_with(format!("{SDK}-{}/wit", sdk.version)),
            "{sdk:?}"
        );
        assert!(sdk.dir.join("deps/spin@2.0.0").is_dir(), "{sdk:?}");
        assert!(sdk.lock_file.is_file(), "{sdk:?}");
    }

    #[test]
    fn package_refs_find_versioned_and_unversioned_paths() {
        let text = r#"
            // See https://example.com/x and wasi:io/poll in prose.
            /// Doc comments too: `wasi:http/types`.
            package ticketing:app;
            world auth {
                include wasi:cli/imports@0.2.0;
                use wasi:io/streams@0.2.0-rc-2023-10-18.{input-stream};
                export fermyon:spin/inbound-redis;
                import local-interface;
            }
        "#;
        let refs: Vec<String> = package_refs(text).into_iter().collect();
        assert_eq!(
            refs,
            [
                "fermyon:spin",
                "wasi:cli@0.2.0",
                "wasi:io@0.2.0-rc-2023-10-18"
            ]
        );
    }

    /// The closure of what a world refers to, and nothing else of the SDK.
    #[test]
    fn dependencies_are_copied_transitively_and_alone() {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let manifest = this_manifest();
        let sdk = locate(&cargo, &manifest).unwrap();
        let dir = std::env::temp_dir().join(format!("sdk-wit-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let world = dir.join("world.wit");
        std::fs::write(
            &world,
            "package test:x;\nworld w {\n  import fermyon:spin/variables@2.0.0;\n}\n",
        )
        .unwrap();
        let copied = sdk.copy_dependencies(&[world], &dir.join("deps")).unwrap();
        let mut entries: Vec<String> = std::fs::read_dir(dir.join("deps"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        entries.sort();
        std::fs::remove_dir_all(&dir).unwrap();
        // spin@2.0.0's files refer to WASI 0.2.0 and its release candidate, which
        // need the rest of them; nothing of later WASI or Spin versions.
        assert!(
            copied.contains(&"fermyon:spin@2.0.0".to_owned()),
            "{copied:?}"
        );
        assert!(copied.contains(&"wasi:io@0.2.0".to_owned()), "{copied:?}");
        assert!(entries.contains(&"spin@2.0.0".to_owned()), "{entries:?}");
        assert!(
            entries.iter().all(|entry| entry == "spin@2.0.0"
                || entry.ends_with("@0.2.0")
                || entry.ends_with("-2023-10-18")),
            "{entries:?}"
        );
    }

    #[test]
    fn one_version_of_the_sdk_is_required() {
        let package = |version: &str| {
            serde_json::json!({
                "name": SDK, "version": version,
                "manifest_path": format!("/nowhere/{SDK}-{version}/Cargo.toml"),
            })
        };
        let none = serde_json::json!({"packages": [], "workspace_root": "/w"});
        let err = from_metadata(&none).unwrap_err().to_string();
        assert!(
            err.contains("no crate of the workspace depends on"),
            "{err}"
        );
        let two = serde_json::json!({
            "packages": [package("5.2.0"), package("6.0.0")], "workspace_root": "/w"
        });
        let err = from_metadata(&two).unwrap_err().to_string();
        assert!(
            err.contains("2 versions of spin-sdk (5.2.0, 6.0.0)"),
            "{err}"
        );
    }
}

//! The app's WIT (`wit/`): vendoring Spin's WIT into `wit/deps/`, and checking that a
//! built component targets its service's world.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use wasmparser::{Parser, Payload};
use wit_parser::Resolve;

use crate::{Project, step};

/// The crate whose WIT is vendored; the same version the components link (DESIGN.md).
const SPIN_SDK: (&str, &str) = ("spin-sdk", "5.2.0");

/// `cargo xtask vendor-wit`: copy, unchanged, every package `wit/*.wit` needs (and what
/// those need in turn) from the spin-sdk crate's `wit/deps/` into `wit/deps/`.
pub fn vendor(project: &Project) -> Result<()> {
    step(&format!(
        "Locating the {} {} crate source",
        SPIN_SDK.0, SPIN_SDK.1
    ));
    let source = spin_sdk_dir(project)?.join("wit").join("deps");
    eprintln!("{}", source.display());
    let available = packages_in(&source)?;

    step("Resolving the packages wit/ refers to");
    let wit = project.root.join("wit");
    let own = packages_in_files(&wit_files(&wit)?)?;
    let mut wanted: Vec<String> = references_in(&wit_files(&wit)?)?
        .into_iter()
        .filter(|id| !own.contains(id))
        .collect();
    let mut chosen = BTreeMap::new();
    while let Some(id) = wanted.pop() {
        if chosen.contains_key(&id) {
            continue;
        }
        let entry = available.get(&id).ok_or_else(|| {
            anyhow!(
                "wit/ needs `{id}`, which {} {} does not have",
                SPIN_SDK.0,
                SPIN_SDK.1
            )
        })?;
        wanted.extend(references_in(&wit_files(entry)?)?);
        chosen.insert(id, entry.clone());
    }

    let deps = wit.join("deps");
    step(&format!(
        "Copying {} packages into {}",
        chosen.len(),
        deps.display()
    ));
    for entry in std::fs::read_dir(&deps).into_iter().flatten() {
        let entry = entry?.path();
        if entry.is_dir() {
            std::fs::remove_dir_all(&entry)?;
        } else if entry.extension().is_some_and(|ext| ext == "wit") {
            std::fs::remove_file(&entry)?;
        }
    }
    std::fs::create_dir_all(&deps)?;
    for (id, entry) in &chosen {
        let name = entry.file_name().expect("a directory entry has a name");
        eprintln!("{id:<40} {}", name.to_string_lossy());
        copy_entry(entry, &deps.join(name))?;
    }
    Ok(())
}

/// Componentizes a built module (preview1 adapter, as Spin and the host do) and checks
/// that it targets `world` of `wit/`: it imports nothing the world does not declare
/// and exports what the world requires. Returns the component's imports.
pub fn check_world(root: &Path, module: &Path, world: &str) -> Result<Vec<String>> {
    let mut resolve = Resolve::default();
    let (package, _) = resolve.push_dir(root.join("wit"))?;
    let world_id = resolve.select_world(&[package], Some(world))?;
    let bytes = std::fs::read(module).with_context(|| format!("reading {}", module.display()))?;
    let component = componentize(&bytes)?;
    wit_component::targets(&resolve, world_id, &component, true)
        .with_context(|| format!("{} does not target world `{world}`", module.display()))?;
    imports_of(&component)
}

fn componentize(module: &[u8]) -> Result<Vec<u8>> {
    wit_component::ComponentEncoder::default()
        .validate(true)
        .module(module)?
        .adapter(
            "wasi_snapshot_preview1",
            wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
        )?
        .encode()
}

fn imports_of(component: &[u8]) -> Result<Vec<String>> {
    let mut imports = Vec::new();
    let mut depth = 0;
    for payload in Parser::new(0).parse_all(component) {
        match payload? {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth -= 1,
            Payload::ComponentImportSection(section) if depth == 0 => {
                for import in section {
                    imports.push(import?.name.name.to_owned());
                }
            }
            _ => {}
        }
    }
    Ok(imports)
}

fn spin_sdk_dir(project: &Project) -> Result<PathBuf> {
    let metadata = project
        .toolchain
        .cargo(&project.sh)
        .args(["metadata", "--format-version", "1"])
        .quiet()
        .read()?;
    let metadata: serde_json::Value = serde_json::from_str(&metadata)?;
    let manifest = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|package| package["name"] == SPIN_SDK.0 && package["version"] == SPIN_SDK.1)
        .and_then(|package| package["manifest_path"].as_str())
        .ok_or_else(|| anyhow!("{} {} is not a dependency", SPIN_SDK.0, SPIN_SDK.1))?;
    Ok(Path::new(manifest)
        .parent()
        .expect("a manifest path has a directory")
        .to_path_buf())
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
        let text = std::fs::read_to_string(file)?;
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
        refs.extend(package_refs(&std::fs::read_to_string(file)?));
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
        std::fs::copy(&file, to.join(file.file_name().expect("a file has a name")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
}

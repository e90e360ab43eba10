//! What xtask needs from `spin.toml`: the components, their crates and their `.wasm`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Manifest {
    #[serde(default)]
    variables: BTreeMap<String, Variable>,
    #[serde(default)]
    component: BTreeMap<String, ComponentDef>,
}

#[derive(Debug, Deserialize)]
struct Variable {
    default: Option<String>,
    #[serde(default)]
    required: bool,
}

#[derive(Debug, Deserialize)]
struct ComponentDef {
    source: String,
    build: Option<BuildDef>,
    #[serde(default)]
    sqlite_databases: Vec<String>,
    #[serde(default)]
    files: Vec<FileMount>,
}

/// A `files` entry: a path (or glob), or `{ source, destination }`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum FileMount {
    Path(String),
    Mapped { source: String },
}

#[derive(Debug, Deserialize)]
struct BuildDef {
    command: String,
}

/// A component of spin.toml that this workspace builds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Component {
    pub id: String,
    /// The cargo package, from `--package` in the component's build command.
    pub package: String,
    /// Where spin.toml expects the `.wasm`, relative to the manifest.
    pub source: PathBuf,
    /// The SQLite databases it may open (`sqlite_databases`).
    pub databases: Vec<String>,
    /// The sources of its `files` mounts, relative to the manifest.
    pub files: Vec<PathBuf>,
}

pub struct SpinApp {
    /// The manifest's directory: `source` paths start here.
    pub dir: PathBuf,
    pub components: Vec<Component>,
    pub variable_defaults: BTreeMap<String, String>,
    /// Every application variable, and whether it must be given (no default).
    pub variables: BTreeMap<String, bool>,
}

/// Reads a manifest (`spin.toml`, or a test app's).
pub fn load(path: &Path) -> Result<SpinApp> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut app = parse(&text).with_context(|| format!("in {}", path.display()))?;
    app.dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    Ok(app)
}

fn parse(text: &str) -> Result<SpinApp> {
    let manifest: Manifest = toml::from_str(text)?;
    let components = manifest
        .component
        .into_iter()
        .map(|(id, def)| {
            let command = def
                .build
                .map(|build| build.command)
                .ok_or_else(|| anyhow!("[component.{id}] has no build command"))?;
            let package = package_of(&command).ok_or_else(|| {
                anyhow!("[component.{id}.build] command names no `--package <crate>`: {command}")
            })?;
            Ok(Component {
                id,
                package,
                source: PathBuf::from(def.source),
                databases: def.sqlite_databases,
                files: def
                    .files
                    .into_iter()
                    .map(|mount| match mount {
                        FileMount::Path(path) | FileMount::Mapped { source: path } => {
                            PathBuf::from(path)
                        }
                    })
                    .collect(),
            })
        })
        .collect::<Result<_>>()?;
    let variables = manifest
        .variables
        .iter()
        .map(|(name, var)| (name.clone(), var.required))
        .collect();
    let variable_defaults = manifest
        .variables
        .into_iter()
        .filter_map(|(name, var)| Some((name, var.default?)))
        .collect();
    Ok(SpinApp {
        dir: PathBuf::new(),
        components,
        variable_defaults,
        variables,
    })
}

fn package_of(command: &str) -> Option<String> {
    let mut words = command.split_whitespace();
    while let Some(word) = words.next() {
        if let Some(name) = word.strip_prefix("--package=") {
            return Some(name.to_owned());
        }
        if word == "--package" || word == "-p" {
            return words.next().map(str::to_owned);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_come_with_their_package_and_source() {
        let app = parse(
            r#"
            spin_manifest_version = 2
            [application]
            name = "x"
            [variables]
            redis_url = { default = "redis://127.0.0.1:6379" }
            jwt_key = { required = true }
            [component.auth]
            source = "target/wasm32-wasip1/release/auth.wasm"
            [component.auth.build]
            command = "cargo build --target wasm32-wasip1 --release --package auth"
            [component.tickets-api]
            source = "target/wasm32-wasip1/release/tickets.wasm"
            [component.tickets-api.build]
            command = "cargo build --release -p tickets --target wasm32-wasip1"
            "#,
        )
        .unwrap();
        let packages: Vec<_> = app
            .components
            .iter()
            .map(|c| (c.id.as_str(), c.package.as_str()))
            .collect();
        assert_eq!(packages, [("auth", "auth"), ("tickets-api", "tickets")]);
        assert_eq!(
            app.variable_defaults.get("redis_url").map(String::as_str),
            Some("redis://127.0.0.1:6379")
        );
        assert!(!app.variable_defaults.contains_key("jwt_key"));
        assert_eq!(app.variables.get("jwt_key"), Some(&true));
        assert_eq!(app.variables.get("redis_url"), Some(&false));
    }

    #[test]
    fn a_build_command_without_a_package_is_an_error() {
        let err = parse(
            r#"
            [component.auth]
            source = "auth.wasm"
            [component.auth.build]
            command = "cargo build --target wasm32-wasip1 --release"
            "#,
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("--package"), "{err}");
    }
}

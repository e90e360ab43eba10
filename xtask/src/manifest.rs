//! What xtask needs from `spin.toml`: the application, its variables, its triggers and
//! its components (their crates, their `.wasm`, the files they mount), in the order
//! spin.toml gives them, which is the order Spin keeps when it locks an app (the image's
//! locked app, `image/locked.rs`, is derived from this).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};
use toml::Spanned;

#[derive(Debug, Deserialize)]
struct Manifest {
    #[serde(default)]
    application: Application,
    #[serde(default)]
    variables: BTreeMap<String, VariableDef>,
    /// Trigger type → its triggers; each kept with its place in the file.
    #[serde(default)]
    trigger: BTreeMap<String, Vec<Spanned<toml::Table>>>,
    /// Component id → its definition, kept with its place in the file.
    #[serde(default)]
    component: BTreeMap<String, Spanned<ComponentDef>>,
}

/// `[application]`.
#[derive(Debug, Default, Deserialize)]
pub struct Application {
    #[serde(default)]
    pub name: String,
    pub version: Option<String>,
    pub description: Option<String>,
    #[serde(default)]
    pub authors: Vec<String>,
    /// `[application.trigger.<type>]`: settings shared by every trigger of a type
    /// (the Redis trigger's `address`).
    #[serde(default)]
    pub trigger: BTreeMap<String, toml::Table>,
}

#[derive(Debug, Deserialize)]
struct VariableDef {
    default: Option<String>,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    secret: bool,
    description: Option<String>,
}

/// An application variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variable {
    /// None: the variable must be given (`required = true`).
    pub default: Option<String>,
    pub secret: bool,
    pub description: Option<String>,
}

impl Variable {
    pub fn required(&self) -> bool {
        self.default.is_none()
    }
}

#[derive(Debug, Deserialize)]
struct ComponentDef {
    source: String,
    build: Option<Build>,
    description: Option<String>,
    #[serde(default)]
    sqlite_databases: Vec<String>,
    #[serde(default)]
    key_value_stores: Vec<String>,
    #[serde(default)]
    allowed_outbound_hosts: Vec<String>,
    #[serde(default)]
    files: Vec<FileMountDef>,
    #[serde(default)]
    environment: BTreeMap<String, String>,
    #[serde(default)]
    variables: BTreeMap<String, String>,
    /// `[component.<id>.tool.<tool>]`: settings of tools, not of Spin (a locked app
    /// does not carry them). Only spin-test's is read.
    #[serde(default)]
    tool: BTreeMap<String, toml::Value>,
    /// Whatever else the component says (a field this parser does not read).
    #[serde(flatten)]
    other: BTreeMap<String, toml::Value>,
}

/// A `files` entry: a path, or `{ source, destination }`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum FileMountDef {
    Path(String),
    Mapped { source: String, destination: String },
}

/// `[component.<id>.build]`; serialized as Spin's manifest schema writes it (the image's
/// locked app carries it in each component's metadata).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Build {
    pub command: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub watch: Vec<String>,
}

/// `[component.<id>.tool.spin-test]`: the component's tests, in spin-test's format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpinTest {
    /// The cargo package of the test component, from `--package` in its build command.
    pub package: String,
    /// Where the built test component goes, relative to the manifest.
    pub source: PathBuf,
}

#[derive(Debug, Deserialize)]
struct SpinTestDef {
    source: String,
    build: String,
}

/// A component of spin.toml that this workspace builds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Component {
    pub id: String,
    /// The cargo package, from `--package` in the component's build command.
    pub package: String,
    /// Where spin.toml expects the `.wasm`, relative to the manifest.
    pub source: PathBuf,
    pub build: Build,
    pub description: Option<String>,
    /// The SQLite databases it may open (`sqlite_databases`).
    pub databases: Vec<String>,
    pub key_value_stores: Vec<String>,
    pub allowed_outbound_hosts: Vec<String>,
    pub files: Vec<FileMount>,
    /// Its WASI environment (`environment`).
    pub environment: BTreeMap<String, String>,
    /// Its component variables (`[component.<id>.variables]`).
    pub variables: BTreeMap<String, String>,
    /// Its component tests, if it has any.
    pub spin_test: Option<SpinTest>,
    /// Fields of the component this parser does not read, which the image refuses
    /// rather than drop (e.g. `dependencies`, `exclude_files`).
    pub unread: Vec<String>,
}

/// Files a component sees: the file or directory `source` (relative to the manifest)
/// at `destination`, a path in the guest relative to its root (`""` is the root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMount {
    pub source: PathBuf,
    pub destination: String,
}

/// A trigger: which component it runs, and the rest of its table (route, channel…).
#[derive(Debug, Clone, PartialEq)]
pub struct Trigger {
    /// `http`, `redis`…
    pub trigger_type: String,
    /// Its `id`, when spin.toml gives one.
    pub id: Option<String>,
    pub component: String,
    pub config: toml::Table,
}

pub struct SpinApp {
    /// The manifest's directory: `source` paths start here.
    pub dir: PathBuf,
    pub application: Application,
    /// Every application variable.
    pub variables: BTreeMap<String, Variable>,
    /// In the order of spin.toml: trigger types by first appearance, then each
    /// type's triggers in order.
    pub triggers: Vec<Trigger>,
    /// In the order of spin.toml.
    pub components: Vec<Component>,
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
    let mut components: Vec<(usize, Component)> = manifest
        .component
        .into_iter()
        .map(|(id, def)| Ok((def.span().start, component(id, def.into_inner())?)))
        .collect::<Result<_>>()?;
    components.sort_by_key(|(place, _)| *place);
    let variables = manifest
        .variables
        .into_iter()
        .map(|(name, def)| {
            let variable = Variable {
                default: def.default,
                secret: def.secret,
                description: def.description,
            };
            if def.required == variable.default.is_some() {
                bail!("variable `{name}` must either be `required` or have a `default`");
            }
            Ok((name, variable))
        })
        .collect::<Result<_>>()?;
    Ok(SpinApp {
        dir: PathBuf::new(),
        application: manifest.application,
        variables,
        triggers: triggers(manifest.trigger)?,
        components: components
            .into_iter()
            .map(|(_, component)| component)
            .collect(),
    })
}

fn component(id: String, def: ComponentDef) -> Result<Component> {
    let build = def
        .build
        .ok_or_else(|| anyhow!("[component.{id}] has no build command"))?;
    let package = package_of(&build.command).ok_or_else(|| {
        anyhow!(
            "[component.{id}.build] command names no `--package <crate>`: {}",
            build.command
        )
    })?;
    let spin_test = match def.tool.get("spin-test") {
        None => None,
        Some(section) => {
            let spin_test = SpinTestDef::deserialize(section.clone())
                .with_context(|| format!("[component.{id}.tool.spin-test]"))?;
            let package = package_of(&spin_test.build).ok_or_else(|| {
                anyhow!(
                    "[component.{id}.tool.spin-test] build names no `--package <crate>`: {}",
                    spin_test.build
                )
            })?;
            Some(SpinTest {
                package,
                source: PathBuf::from(spin_test.source),
            })
        }
    };
    Ok(Component {
        package,
        source: PathBuf::from(def.source),
        build,
        description: def.description,
        databases: def.sqlite_databases,
        key_value_stores: def.key_value_stores,
        allowed_outbound_hosts: def.allowed_outbound_hosts,
        files: def.files.into_iter().map(file_mount).collect(),
        environment: def.environment,
        variables: def.variables,
        spin_test,
        unread: def.other.into_keys().collect(),
        id,
    })
}

/// A path mount is seen at the same path in the guest; a mapped one at `destination`.
fn file_mount(def: FileMountDef) -> FileMount {
    let (source, destination) = match def {
        FileMountDef::Path(path) => (path.clone(), path),
        FileMountDef::Mapped {
            source,
            destination,
        } => (source, destination),
    };
    FileMount {
        source: PathBuf::from(source),
        destination: destination
            .trim_start_matches("./")
            .trim_start_matches('/')
            .trim_end_matches('/')
            .to_owned(),
    }
}

/// The triggers in the order of the file: types by their first trigger, then each
/// type's own order (as Spin's manifest, an ordered map of arrays, keeps them).
fn triggers(by_type: BTreeMap<String, Vec<Spanned<toml::Table>>>) -> Result<Vec<Trigger>> {
    let mut types: Vec<(usize, String, Vec<Spanned<toml::Table>>)> = by_type
        .into_iter()
        .map(|(trigger_type, tables)| {
            let first = tables
                .iter()
                .map(|table| table.span().start)
                .min()
                .unwrap_or(usize::MAX);
            (first, trigger_type, tables)
        })
        .collect();
    types.sort_by_key(|(first, _, _)| *first);
    let mut triggers = Vec::new();
    for (_, trigger_type, tables) in types {
        for table in tables {
            triggers.push(trigger(&trigger_type, table.into_inner())?);
        }
    }
    Ok(triggers)
}

fn trigger(trigger_type: &str, mut config: toml::Table) -> Result<Trigger> {
    let id = match config.remove("id") {
        None => None,
        Some(toml::Value::String(id)) => Some(id),
        Some(other) => {
            bail!("a [[trigger.{trigger_type}]] has an `id` that is not a string: {other}")
        }
    };
    let component = match config.remove("component") {
        Some(toml::Value::String(component)) => component,
        Some(_) => bail!(
            "a [[trigger.{trigger_type}]] defines its component inline; \
             name a [component.<id>] instead"
        ),
        None => bail!("a [[trigger.{trigger_type}]] names no `component`"),
    };
    Ok(Trigger {
        trigger_type: trigger_type.to_owned(),
        id,
        component,
        config,
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
            jwt_key = { required = true, secret = true }
            [component.tickets-api]
            source = "target/wasm32-wasip1/release/tickets.wasm"
            [component.tickets-api.build]
            command = "cargo build --release -p tickets --target wasm32-wasip1"
            [component.auth]
            source = "target/wasm32-wasip1/release/auth.wasm"
            [component.auth.build]
            command = "cargo build --target wasm32-wasip1 --release --package auth"
            "#,
        )
        .unwrap();
        let packages: Vec<_> = app
            .components
            .iter()
            .map(|c| (c.id.as_str(), c.package.as_str()))
            .collect();
        assert_eq!(
            packages,
            [("tickets-api", "tickets"), ("auth", "auth")],
            "in the order of the file"
        );
        let redis_url = &app.variables["redis_url"];
        assert_eq!(redis_url.default.as_deref(), Some("redis://127.0.0.1:6379"));
        assert!(!redis_url.required() && !redis_url.secret);
        let jwt_key = &app.variables["jwt_key"];
        assert!(jwt_key.required() && jwt_key.secret);
    }

    #[test]
    fn a_component_s_tests_are_read_from_its_spin_test_tool_section() {
        let app = parse(
            r#"
            spin_manifest_version = 2
            [application]
            name = "x"
            [component.auth]
            source = "auth.wasm"
            [component.auth.build]
            command = "cargo build --package auth"
            [component.auth.tool.spin-test]
            source = "target/auth_tests.wasm"
            build = "cargo build --target wasm32-wasip1 --package auth-tests"
            [component.auth.tool.other-tool]
            anything = true
            "#,
        )
        .unwrap();
        let auth = &app.components[0];
        assert_eq!(
            auth.spin_test,
            Some(SpinTest {
                package: "auth-tests".into(),
                source: "target/auth_tests.wasm".into(),
            })
        );
        // Tools' sections are not Spin's: the image's locked app leaves them out.
        assert!(auth.unread.is_empty(), "{:?}", auth.unread);
    }

    #[test]
    fn every_manifest_the_build_reads_is_read() {
        for manifest in [
            crate::build::APP,
            crate::build::PROBE,
            crate::build::BUS_PROBE,
        ] {
            let app = load(&crate::checkout().join(manifest)).unwrap();
            assert!(
                !app.components.is_empty() && !app.triggers.is_empty(),
                "{manifest}"
            );
        }
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

    #[test]
    fn a_variable_both_required_and_defaulted_is_an_error() {
        let err = parse("[variables]\nx = { required = true, default = \"1\" }\n")
            .err()
            .unwrap();
        assert!(err.to_string().contains("`x`"), "{err}");
    }

    #[test]
    fn triggers_keep_the_order_of_the_file_and_their_settings() {
        let app = parse(
            r#"
            [[trigger.redis]]
            channel = "a"
            component = "events"
            [[trigger.http]]
            route = "/..."
            component = "web"
            id = "the-site"
            [[trigger.redis]]
            channel = "b"
            component = "events"
            "#,
        )
        .unwrap();
        let seen: Vec<_> = app
            .triggers
            .iter()
            .map(|t| {
                (
                    t.trigger_type.as_str(),
                    t.id.as_deref(),
                    t.component.as_str(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("redis", None, "events"),
                ("redis", None, "events"),
                ("http", Some("the-site"), "web"),
            ],
            "types by first appearance, each type's triggers in order"
        );
        assert_eq!(app.triggers[1].config["channel"].as_str(), Some("b"));
        assert_eq!(
            app.triggers[2].config.len(),
            1,
            "id and component taken out"
        );
    }

    #[test]
    fn an_inline_trigger_component_is_refused() {
        let err = parse("[[trigger.http]]\nroute = \"/\"\ncomponent = { source = \"a.wasm\" }\n")
            .err()
            .unwrap();
        assert!(err.to_string().contains("inline"), "{err}");
    }

    #[test]
    fn file_mounts_say_where_the_guest_sees_them_and_unread_fields_are_kept() {
        let app = parse(
            r#"
            [component.web]
            source = "web.wasm"
            files = [{ source = "target/web", destination = "/" }, "static/logo.svg",
                     { source = "data", destination = "/srv/data/" }]
            exclude_files = ["**/*.map"]
            [component.web.build]
            command = "cargo build -p web"
            "#,
        )
        .unwrap();
        let web = &app.components[0];
        let mounts: Vec<_> = web
            .files
            .iter()
            .map(|m| (m.source.to_str().unwrap(), m.destination.as_str()))
            .collect();
        assert_eq!(
            mounts,
            [
                ("target/web", ""),
                ("static/logo.svg", "static/logo.svg"),
                ("data", "srv/data"),
            ]
        );
        assert_eq!(web.unread, ["exclude_files"]);
    }
}

//! `spin.toml` (Spin's manifest version 2) as this project writes it: read strictly
//! (an unknown field is an error naming it, not a surprise), checked as Spin checks it
//! when it loads an app, kept in the order of the file, and written back. What one user
//! makes of it (the host's route table and templates, xtask's packages and image) is
//! that user's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use serde::{Deserialize, Serialize};
use toml::Spanned;

/// A manifest, valid as Spin would load it (but for what one runtime supports: the
/// host refuses what it does not run, the image what its locked app cannot carry).
#[derive(Debug, Clone)]
pub struct Manifest {
    pub application: Application,
    /// Application variables by name.
    pub variables: BTreeMap<String, Variable>,
    /// In the order of the file: trigger types by their first trigger, then each
    /// type's triggers in order (as Spin's manifest, an ordered map of arrays, keeps
    /// them, and its locked app lists them).
    pub triggers: Vec<Trigger>,
    /// In the order of the file.
    pub components: Vec<Component>,
}

/// `[application]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Application {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authors: Vec<String>,
    /// `[application.trigger.<type>]`: settings shared by every trigger of a type
    /// (the Redis trigger's `address`), as each trigger reads them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub trigger: BTreeMap<String, toml::Table>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
    /// `[application.tool.<tool>]`: tools' settings, not Spin's.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tool: BTreeMap<String, toml::Value>,
}

/// An application variable: it has a default, or it is required.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variable {
    /// None: the variable must be given (`required = true`).
    pub default: Option<String>,
    pub secret: bool,
    pub description: Option<String>,
}

impl Variable {
    pub fn is_required(&self) -> bool {
        self.default.is_none()
    }
}

/// A trigger: which component it runs, and the rest of its table (route, channel…),
/// which the trigger type's runtime reads.
#[derive(Debug, Clone, PartialEq)]
pub struct Trigger {
    /// `http`, `redis`…
    pub trigger_type: String,
    /// Its `id`, when the manifest gives one.
    pub id: Option<String>,
    /// The id of a `[component.<id>]` of the manifest.
    pub component: String,
    /// The trigger's other fields.
    pub config: toml::Table,
}

/// `[component.<id>]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Component {
    /// Its id, the key of its table.
    #[serde(skip)]
    pub id: String,
    /// The `.wasm` (a wasip1 module or a component), relative to the manifest.
    #[serde(deserialize_with = "local_source")]
    pub source: PathBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileMount>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_files: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_outbound_hosts: Vec<String>,
    /// Manifest version 1's name of `allowed_outbound_hosts`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_http_hosts: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_value_stores: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sqlite_databases: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ai_models: Vec<String>,
    /// Its WASI environment.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, String>,
    /// Component variables: name → template over application variables.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<Build>,
    /// `[component.<id>.tool.<tool>]`: tools' settings, not Spin's (a locked app does
    /// not carry them). spin-test's is read into `spin_test`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tool: BTreeMap<String, toml::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dependencies_inherit_configuration: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dependencies: Option<toml::Table>,
    /// Its component tests, from `[component.<id>.tool.spin-test]`.
    #[serde(skip)]
    pub spin_test: Option<SpinTest>,
}

/// A `files` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum FileMount {
    /// A path or glob relative to the manifest, seen at the same relative path.
    Pattern(String),
    /// A file or directory relative to the manifest, seen at `destination`, an
    /// absolute path in the guest.
    Mapping {
        source: PathBuf,
        destination: String,
    },
}

/// `[component.<id>.build]`; serialized as Spin's manifest schema writes it (the
/// image's locked app carries it in each component's metadata).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Build {
    pub command: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub watch: Vec<String>,
}

/// `[component.<id>.tool.spin-test]`, as spin-test reads it: the test component, and
/// how it is built.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpinTest {
    /// The built test component (a wasip1 module or a component), relative to the
    /// manifest.
    pub source: PathBuf,
    /// The command that builds it, if any.
    pub build: Option<String>,
    /// Where that command runs, relative to the manifest (the manifest's directory if
    /// not given).
    pub workdir: Option<PathBuf>,
}

/// Reads and checks the manifest at `path`.
pub fn load(path: &Path) -> Result<Manifest> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the manifest {}", path.display()))?;
    parse(&text).with_context(|| format!("invalid manifest {}", path.display()))
}

/// Parses and checks a manifest.
pub fn parse(text: &str) -> Result<Manifest> {
    // The version first: a manifest of another version fails on it, not on its fields.
    let version: ManifestVersion = toml::from_str(text)?;
    ensure!(
        version.spin_manifest_version == Some(toml::Value::Integer(2)),
        "`spin_manifest_version` must be 2 (manifest version 2 only is read here)"
    );
    let raw: RawManifest = toml::from_str(text)?;

    let variables = raw
        .variables
        .into_iter()
        .map(|(name, raw)| {
            let variable = variable(&name, raw).with_context(|| format!("[variables] `{name}`"))?;
            Ok((name, variable))
        })
        .collect::<Result<_>>()?;

    let mut components = raw
        .component
        .into_iter()
        .map(|(id, raw)| {
            let place = raw.span().start;
            let component =
                component(&id, raw.into_inner()).with_context(|| format!("[component.{id}]"))?;
            Ok((place, component))
        })
        .collect::<Result<Vec<_>>>()?;
    components.sort_by_key(|(place, _)| *place);
    let components: Vec<Component> = components
        .into_iter()
        .map(|(_, component)| component)
        .collect();

    let triggers = triggers(raw.trigger, &components)?;
    Ok(Manifest {
        application: raw.application,
        variables,
        triggers,
        components,
    })
}

impl Manifest {
    /// The component with this id.
    pub fn component(&self, id: &str) -> Option<&Component> {
        self.components.iter().find(|component| component.id == id)
    }

    /// Keeps the components `keep` accepts, and the triggers of those.
    pub fn retain_components(&mut self, keep: impl Fn(&str) -> bool) {
        self.components.retain(|component| keep(&component.id));
        self.triggers.retain(|trigger| keep(&trigger.component));
    }

    /// The manifest as TOML, as Spin reads it.
    pub fn to_toml(&self) -> String {
        let mut trigger: BTreeMap<&str, Vec<toml::Table>> = BTreeMap::new();
        for each in &self.triggers {
            let mut table = each.config.clone();
            if let Some(id) = &each.id {
                table.insert("id".into(), id.clone().into());
            }
            table.insert("component".into(), each.component.clone().into());
            trigger.entry(&each.trigger_type).or_default().push(table);
        }
        let written = WrittenManifest {
            spin_manifest_version: 2,
            application: &self.application,
            variables: self
                .variables
                .iter()
                .map(|(name, variable)| {
                    let raw = RawVariable {
                        default: variable.default.clone(),
                        required: variable.is_required(),
                        secret: variable.secret,
                        description: variable.description.clone(),
                    };
                    (name.as_str(), raw)
                })
                .collect(),
            trigger,
            component: self
                .components
                .iter()
                .map(|component| (component.id.as_str(), component))
                .collect(),
        };
        toml::to_string(&written).expect("a manifest is TOML")
    }
}

/// Variable names: lowercase ASCII letters, digits and single `_`, starting with a
/// letter and ending with a letter or digit (Spin's rule and, for the guest, its
/// messages; the environment name is the name in uppercase).
pub fn check_variable_name(name: &str) -> Result<()> {
    if let Err(reason) = variable_name_problem(name) {
        bail!("{name:?}: {reason}");
    }
    Ok(())
}

fn variable_name_problem(name: &str) -> std::result::Result<(), String> {
    let Some(first) = name.chars().next() else {
        return Err("must not be empty".into());
    };
    if let Some(invalid) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_'))
    {
        return Err(format!(
            "invalid character {invalid:?}. Variable names may contain only lower-case \
             letters, numbers, and underscores."
        ));
    }
    if !first.is_ascii_lowercase() {
        return Err("must start with a lowercase ASCII letter".into());
    }
    if !name.ends_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err("must end with a lowercase ASCII letter or digit".into());
    }
    if name.contains("__") {
        return Err("must not contain multiple consecutive underscores".into());
    }
    Ok(())
}

fn variable(name: &str, raw: RawVariable) -> Result<Variable> {
    check_variable_name(name)?;
    ensure!(
        !(raw.required && raw.default.is_some()),
        "a variable cannot be both `required` and have a `default`"
    );
    ensure!(
        raw.required || raw.default.is_some(),
        "give it a `default` or mark it `required = true`"
    );
    Ok(Variable {
        default: raw.default,
        secret: raw.secret,
        description: raw.description,
    })
}

fn component(id: &str, mut component: Component) -> Result<Component> {
    check_component_id(id)?;
    component.id = id.to_owned();
    for file in &component.files {
        if let FileMount::Mapping { destination, .. } = file {
            ensure!(
                destination.starts_with('/'),
                "`files`: destination `{destination}` must be an absolute path"
            );
        }
    }
    for name in component.variables.keys() {
        check_variable_name(name).with_context(|| format!("`variables.{name}`"))?;
    }
    component.spin_test = match component.tool.get("spin-test") {
        None => None,
        Some(section) => Some(SpinTest::deserialize(section.clone()).context("`tool.spin-test`")?),
    };
    Ok(component)
}

/// Component ids: lowercase letters, digits and `-`/`_`, starting with a letter.
fn check_component_id(id: &str) -> Result<()> {
    let mut chars = id.chars();
    let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    let rest_is_valid =
        chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    ensure!(
        starts_with_letter && rest_is_valid,
        "`{id}` is not a valid component id (lowercase letters, digits, `-` and `_`, \
         starting with a letter)"
    );
    Ok(())
}

/// The triggers in the order of the file, each naming a component of the manifest.
fn triggers(
    by_type: BTreeMap<String, Vec<Spanned<toml::Table>>>,
    components: &[Component],
) -> Result<Vec<Trigger>> {
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
        for (index, table) in tables.into_iter().enumerate() {
            let trigger = trigger(&trigger_type, table.into_inner(), components)
                .with_context(|| format!("[[trigger.{trigger_type}]] number {}", index + 1))?;
            triggers.push(trigger);
        }
    }
    Ok(triggers)
}

fn trigger(
    trigger_type: &str,
    mut config: toml::Table,
    components: &[Component],
) -> Result<Trigger> {
    let id = match config.remove("id") {
        None => None,
        Some(toml::Value::String(id)) => Some(id),
        Some(other) => bail!("`id` is not a string: {other}"),
    };
    let component = match config.remove("component") {
        Some(toml::Value::String(component)) => component,
        Some(_) => bail!(
            "inline components are not supported here; \
             declare a [component.<id>] and refer to it by id"
        ),
        None => bail!("it names no `component`"),
    };
    ensure!(
        components.iter().any(|each| each.id == component),
        "`component = \"{component}\"` names no [component.{component}]"
    );
    Ok(Trigger {
        trigger_type: trigger_type.to_owned(),
        id,
        component,
        config,
    })
}

// The manifest as written.

#[derive(Deserialize)]
struct ManifestVersion {
    spin_manifest_version: Option<toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    #[allow(dead_code, reason = "read first, by `ManifestVersion`")]
    spin_manifest_version: toml::Value,
    application: Application,
    #[serde(default)]
    variables: BTreeMap<String, RawVariable>,
    /// Trigger type → its triggers, each kept with its place in the file.
    #[serde(default)]
    trigger: BTreeMap<String, Vec<Spanned<toml::Table>>>,
    /// Component id → its definition, kept with its place in the file.
    #[serde(default)]
    component: BTreeMap<String, Spanned<Component>>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawVariable {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    default: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    required: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    secret: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
}

/// A component's `source`: a local path only, as nothing here downloads (Spin also
/// takes `{ url, digest }`).
fn local_source<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<PathBuf, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Source {
        Path(PathBuf),
        Remote(#[allow(dead_code, reason = "refused whatever it says")] toml::Value),
    }
    match Source::deserialize(deserializer)? {
        Source::Path(path) => Ok(path),
        Source::Remote(_) => Err(serde::de::Error::custom(
            "`source`: only local paths are supported here (no network); \
             download the component and point `source` at the file",
        )),
    }
}

fn is_false(value: &bool) -> bool {
    !value
}

#[derive(Serialize)]
struct WrittenManifest<'a> {
    spin_manifest_version: u8,
    application: &'a Application,
    variables: BTreeMap<&'a str, RawVariable>,
    trigger: BTreeMap<&'a str, Vec<toml::Table>>,
    component: BTreeMap<&'a str, &'a Component>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const APP: &str = r#"
        spin_manifest_version = 2
        [application]
        name = "demo"
        [application.trigger.redis]
        address = "{{ redis_url }}"
        [variables]
        redis_url = { default = "redis://127.0.0.1:6379" }
        jwt_key = { required = true, secret = true }
        [[trigger.redis]]
        channel = "ticket:created"
        component = "worker"
        [[trigger.http]]
        route = "/api/users/..."
        component = "auth"
        id = "users"
        [[trigger.http]]
        route = { private = true }
        component = "worker"
        [component.worker]
        source = "worker.wasm"
        allowed_outbound_hosts = ["{{ redis_url }}"]
        [component.auth]
        source = "auth.wasm"
        sqlite_databases = ["auth"]
        files = [{ source = "static", destination = "/static" }, "robots.txt"]
        exclude_files = ["**/*.map"]
        [component.auth.variables]
        jwt_key = "{{ jwt_key }}"
        [component.auth.build]
        command = "cargo build -p auth"
        [component.auth.tool.spin-test]
        source = "tests/tests.wasm"
        build = "cargo build -p auth-tests"
        workdir = "tests"
        [component.auth.tool.other]
        anything = 1
    "#;

    fn error_of(text: &str) -> String {
        format!("{:#}", parse(text).expect_err("the manifest is invalid"))
    }

    #[test]
    fn a_manifest_is_read_in_the_order_of_the_file() {
        let manifest = parse(APP).unwrap();
        let components: Vec<_> = manifest.components.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(components, ["worker", "auth"]);
        let triggers: Vec<_> = manifest
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
            triggers,
            [
                ("redis", None, "worker"),
                ("http", Some("users"), "auth"),
                ("http", None, "worker"),
            ],
            "types by first appearance, each type's triggers in order"
        );
        assert_eq!(
            manifest.triggers[0].config.keys().collect::<Vec<_>>(),
            ["channel"],
            "id and component taken out"
        );
        let auth = manifest.component("auth").unwrap();
        assert_eq!(auth.sqlite_databases, ["auth"]);
        assert_eq!(auth.exclude_files, ["**/*.map"]);
        assert_eq!(
            auth.files,
            [
                FileMount::Mapping {
                    source: "static".into(),
                    destination: "/static".into()
                },
                FileMount::Pattern("robots.txt".into()),
            ]
        );
        assert_eq!(auth.build.as_ref().unwrap().command, "cargo build -p auth");
        assert!(manifest.variables["jwt_key"].is_required());
        assert!(manifest.variables["jwt_key"].secret);
        assert!(!manifest.variables["redis_url"].is_required());
    }

    #[test]
    fn a_component_s_spin_test_section_is_read_as_spin_test_reads_it() {
        let manifest = parse(APP).unwrap();
        assert_eq!(
            manifest.component("auth").unwrap().spin_test,
            Some(SpinTest {
                source: "tests/tests.wasm".into(),
                build: Some("cargo build -p auth-tests".into()),
                workdir: Some("tests".into()),
            })
        );
        assert_eq!(manifest.component("worker").unwrap().spin_test, None);

        let err = error_of(&APP.replace("workdir = \"tests\"", "work_dir = \"tests\""));
        assert!(err.contains("[component.auth]: `tool.spin-test`"), "{err}");
        assert!(err.contains("unknown field `work_dir`"), "{err}");
    }

    #[test]
    fn an_unknown_field_is_named() {
        let err = error_of(&APP.replace("sqlite_databases", "sqlite_database"));
        assert!(err.contains("unknown field `sqlite_database`"), "{err}");
    }

    #[test]
    fn only_manifest_version_2_is_read() {
        let err = error_of(&APP.replace("spin_manifest_version = 2", "spin_manifest_version = 1"));
        assert!(err.contains("must be 2"), "{err}");
    }

    #[test]
    fn a_variable_is_either_required_or_defaulted() {
        let err = error_of(&APP.replace(
            "jwt_key = { required = true, secret = true }",
            "jwt_key = { required = true, default = \"1\" }",
        ));
        assert!(err.contains("[variables] `jwt_key`"), "{err}");
        let err = error_of(&APP.replace(
            "jwt_key = { required = true, secret = true }",
            "jwt_key = { secret = true }",
        ));
        assert!(err.contains("give it a `default`"), "{err}");
        let err = error_of(&APP.replace("jwt_key = { required", "jwt-key = { required"));
        assert!(err.contains("[variables] `jwt-key`"), "{err}");
    }

    #[test]
    fn variable_names_follow_spin_s_rule() {
        for bad in ["Jwt", "1key", "a__b", "a_", "a-b", ""] {
            assert!(
                check_variable_name(bad).is_err(),
                "{bad} should be rejected"
            );
        }
        assert!(check_variable_name("order_expiration_seconds").is_ok());
    }

    #[test]
    fn a_component_id_and_a_mapped_destination_are_checked() {
        let err = error_of(&APP.replace("[component.worker]", "[component.Worker]"));
        assert!(err.contains("not a valid component id"), "{err}");
        let err = error_of(&APP.replace("destination = \"/static\"", "destination = \"static\""));
        assert!(err.contains("must be an absolute path"), "{err}");
        let err = error_of(&APP.replace(
            "source = \"worker.wasm\"",
            "source = { url = \"https://example.com/w.wasm\", digest = \"sha256:00\" }",
        ));
        assert!(err.contains("only local paths"), "{err}");
    }

    #[test]
    fn a_trigger_names_a_component_of_the_manifest_by_id() {
        let err = error_of(&APP.replace("component = \"auth\"", "component = \"nobody\""));
        assert!(err.contains("names no [component.nobody]"), "{err}");
        assert!(err.contains("[[trigger.http]] number 1"), "{err}");
        let err = error_of(&APP.replace(
            "component = \"auth\"",
            "component = { source = \"a.wasm\" }",
        ));
        assert!(err.contains("inline"), "{err}");
    }

    #[test]
    fn a_part_of_the_app_is_written_back_as_a_manifest_of_its_own() {
        let mut manifest = parse(APP).unwrap();
        manifest.retain_components(|id| id == "auth");
        let part = parse(&manifest.to_toml()).unwrap();
        assert_eq!(part.components.len(), 1);
        let auth = &part.components[0];
        assert_eq!(auth.files, manifest.components[0].files);
        assert_eq!(auth.spin_test, manifest.components[0].spin_test);
        assert_eq!(auth.tool["other"]["anything"].as_integer(), Some(1));
        assert_eq!(part.triggers, manifest.triggers);
        assert_eq!(part.variables, manifest.variables);
        assert_eq!(
            part.application.trigger["redis"]["address"].as_str(),
            Some("{{ redis_url }}")
        );
    }
}

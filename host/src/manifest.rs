//! `spin.toml` (manifest version 2): parsed strictly, validated, and turned into the
//! app model the host runs. Unknown or invalid content is an error naming the file
//! and the field, as Spin reports it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail, ensure};
use serde::Deserialize;

use crate::routes::RoutePattern;
use crate::variables::{self, Template};

/// The application as the host runs it.
#[derive(Debug)]
pub struct App {
    /// The directory of spin.toml: relative paths in the manifest start here.
    pub dir: PathBuf,
    pub variables: BTreeMap<String, VariableDef>,
    pub components: BTreeMap<String, ComponentDef>,
    pub http_triggers: Vec<HttpTrigger>,
    pub redis_triggers: Vec<RedisTrigger>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VariableDef {
    pub default: Option<String>,
    pub required: bool,
    pub secret: bool,
}

#[derive(Debug, Clone)]
pub struct ComponentDef {
    pub source: PathBuf,
    pub files: Vec<FileMount>,
    pub sqlite_databases: BTreeSet<String>,
    pub key_value_stores: BTreeSet<String>,
    /// Component variables: name → template over application variables.
    pub variables: BTreeMap<String, Template>,
    pub allowed_outbound_hosts: Vec<Template>,
    pub environment: BTreeMap<String, String>,
    /// Its component tests, from `[component.<id>.tool.spin-test]`.
    pub spin_test: Option<SpinTest>,
}

/// `[component.<id>.tool.spin-test]`, as spin-test reads it: the test component, and how
/// it is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpinTest {
    /// The built test component (a wasip1 module or a component), relative to the
    /// manifest.
    pub source: PathBuf,
    /// The command that builds it, if any.
    pub build: Option<String>,
    /// Where that command runs (relative to the manifest; the manifest's directory if
    /// not given).
    pub workdir: PathBuf,
}

/// Files made visible to a component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileMount {
    /// A path or glob relative to the manifest, visible at the same relative path.
    Pattern(String),
    /// A directory of the host, visible at `destination` inside the guest.
    Directory {
        source: PathBuf,
        destination: String,
    },
}

#[derive(Debug, Clone)]
pub struct HttpTrigger {
    pub route: RoutePattern,
    pub component: String,
}

#[derive(Debug, Clone)]
pub struct RedisTrigger {
    /// A template over application variables (`{{ redis_url }}`).
    pub address: Template,
    pub channel: Template,
    pub component: String,
}

/// Loads and validates a manifest.
pub fn load(path: &Path) -> Result<App> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the manifest {}", path.display()))?;
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
    .canonicalize()
    .with_context(|| format!("cannot resolve the directory of {}", path.display()))?;
    parse(&text, dir).with_context(|| format!("invalid manifest {}", path.display()))
}

pub fn parse(text: &str, dir: PathBuf) -> Result<App> {
    let version: ManifestVersion = toml::from_str(text)?;
    ensure!(
        version.spin_manifest_version == Some(toml::Value::Integer(2)),
        "`spin_manifest_version` must be 2 (this host reads manifest version 2 only)"
    );
    let raw: RawManifest = toml::from_str(text)?;

    let variables = raw
        .variables
        .into_iter()
        .map(|(name, var)| {
            variables::check_name(&name).with_context(|| format!("[variables] `{name}`"))?;
            ensure!(
                !(var.required && var.default.is_some()),
                "[variables] `{name}`: a variable cannot be both `required` and have a `default`"
            );
            ensure!(
                var.required || var.default.is_some(),
                "[variables] `{name}`: give it a `default` or mark it `required = true`"
            );
            Ok((
                name,
                VariableDef {
                    default: var.default,
                    required: var.required,
                    secret: var.secret,
                },
            ))
        })
        .collect::<Result<BTreeMap<_, _>>>()?;

    let mut components = BTreeMap::new();
    for (id, raw) in raw.component {
        let component = component_def(&id, raw, &dir, &variables)
            .with_context(|| format!("[component.{id}]"))?;
        components.insert(id, component);
    }

    let mut http_triggers = Vec::new();
    let mut redis_triggers = Vec::new();
    let app_redis_address = raw
        .application
        .trigger
        .redis
        .map(|redis| redis.address)
        .map(|address| app_template(&address, &variables))
        .transpose()
        .context("[application.trigger.redis] `address`")?;
    for (kind, triggers) in raw.trigger {
        match kind.as_str() {
            "http" => {
                for (index, trigger) in triggers.into_iter().enumerate() {
                    let trigger: RawHttpTrigger = trigger
                        .try_into()
                        .with_context(|| format!("[[trigger.http]] number {}", index + 1))?;
                    let component = trigger_component(trigger.component, &components)
                        .with_context(|| format!("[[trigger.http]] route {:?}", trigger.route))?;
                    let route = match trigger.route {
                        RawRoute::Path(route) => RoutePattern::parse(&route)
                            .with_context(|| format!("[[trigger.http]] route `{route}`"))?,
                        RawRoute::Private { private: true } => RoutePattern::Private,
                        RawRoute::Private { private: false } => bail!(
                            "[[trigger.http]] component `{component}`: `route = {{ private = false }}` is not a route"
                        ),
                    };
                    http_triggers.push(HttpTrigger { route, component });
                }
            }
            "redis" => {
                for (index, trigger) in triggers.into_iter().enumerate() {
                    let trigger: RawRedisTrigger = trigger
                        .try_into()
                        .with_context(|| format!("[[trigger.redis]] number {}", index + 1))?;
                    let context = || format!("[[trigger.redis]] channel `{}`", trigger.channel);
                    let component = trigger_component(trigger.component.clone(), &components)
                        .with_context(context)?;
                    let address = match &trigger.address {
                        Some(address) => app_template(address, &variables).with_context(context)?,
                        None => app_redis_address.clone().ok_or_else(|| {
                            anyhow!(
                                "{}: no `address`, and no [application.trigger.redis] `address`",
                                context()
                            )
                        })?,
                    };
                    let channel =
                        app_template(&trigger.channel, &variables).with_context(context)?;
                    redis_triggers.push(RedisTrigger {
                        address,
                        channel,
                        component,
                    });
                }
            }
            other => bail!(
                "[[trigger.{other}]]: this host runs `http` and `redis` triggers only \
                 (as SpinKube's shim does without plugins)"
            ),
        }
    }
    check_duplicate_routes(&http_triggers)?;

    Ok(App {
        dir,
        variables,
        components,
        http_triggers,
        redis_triggers,
    })
}

fn component_def(
    id: &str,
    raw: RawComponent,
    dir: &Path,
    variables: &BTreeMap<String, VariableDef>,
) -> Result<ComponentDef> {
    check_component_id(id)?;
    let source = match raw.source {
        RawSource::Path(path) => dir.join(path),
        RawSource::Remote(_) => bail!(
            "`source`: only local paths are supported here (no network); \
             download the component and point `source` at the file"
        ),
    };
    ensure!(
        raw.dependencies.is_none(),
        "`dependencies`: component dependencies are not supported by this host"
    );
    ensure!(
        raw.ai_models.is_empty(),
        "`ai_models`: Serverless AI is not supported by this host"
    );
    ensure!(
        raw.exclude_files.is_empty(),
        "`exclude_files` is not supported by this host; narrow `files` instead"
    );
    ensure!(
        raw.allowed_http_hosts.is_empty(),
        "`allowed_http_hosts` is the manifest v1 name: use `allowed_outbound_hosts`"
    );
    let files = raw
        .files
        .into_iter()
        .map(|file| match file {
            RawFile::Pattern(pattern) => Ok(FileMount::Pattern(pattern)),
            RawFile::Mapping {
                source,
                destination,
            } => {
                ensure!(
                    destination.starts_with('/'),
                    "`files`: destination `{destination}` must be an absolute path"
                );
                Ok(FileMount::Directory {
                    source: dir.join(source),
                    destination,
                })
            }
        })
        .collect::<Result<_>>()?;
    let component_variables = raw
        .variables
        .into_iter()
        .map(|(name, template)| {
            variables::check_name(&name)
                .with_context(|| format!("[component.{id}.variables] `{name}`"))?;
            let template = app_template(&template, variables)
                .with_context(|| format!("[component.{id}.variables] `{name}`"))?;
            Ok((name, template))
        })
        .collect::<Result<_>>()?;
    let allowed_outbound_hosts = raw
        .allowed_outbound_hosts
        .iter()
        .map(|host| {
            let template = app_template(host, variables)
                .with_context(|| format!("`allowed_outbound_hosts` entry `{host}`"))?;
            Ok(template)
        })
        .collect::<Result<_>>()?;
    Ok(ComponentDef {
        source,
        files,
        sqlite_databases: raw.sqlite_databases.into_iter().collect(),
        key_value_stores: raw.key_value_stores.into_iter().collect(),
        variables: component_variables,
        allowed_outbound_hosts,
        environment: raw.environment,
        spin_test: spin_test(raw.tool, dir)?,
    })
}

/// `tool.spin-test` of a component; other tools' sections are theirs, and ignored.
fn spin_test(tool: Option<toml::Value>, dir: &Path) -> Result<Option<SpinTest>> {
    let Some(section) = tool.as_ref().and_then(|tool| tool.get("spin-test")) else {
        return Ok(None);
    };
    let raw = RawSpinTest::deserialize(section.clone()).context("`tool.spin-test`")?;
    Ok(Some(SpinTest {
        source: dir.join(raw.source),
        build: raw.build,
        workdir: raw
            .workdir
            .map_or_else(|| dir.to_owned(), |workdir| dir.join(workdir)),
    }))
}

/// A template whose `{{ name }}` references must be application variables.
fn app_template(text: &str, variables: &BTreeMap<String, VariableDef>) -> Result<Template> {
    let template = Template::parse(text)?;
    for name in template.references() {
        ensure!(
            variables.contains_key(name),
            "`{{{{ {name} }}}}` refers to an application variable that [variables] does not declare"
        );
    }
    Ok(template)
}

fn trigger_component(
    component: RawTriggerComponent,
    components: &BTreeMap<String, ComponentDef>,
) -> Result<String> {
    match component {
        RawTriggerComponent::Id(id) => {
            ensure!(
                components.contains_key(&id),
                "`component = \"{id}\"` names no [component.{id}]"
            );
            Ok(id)
        }
        RawTriggerComponent::Inline(_) => bail!(
            "inline components are not supported by this host; \
             declare a [component.<id>] and refer to it by id"
        ),
    }
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

fn check_duplicate_routes(triggers: &[HttpTrigger]) -> Result<()> {
    let mut seen = BTreeMap::new();
    for trigger in triggers {
        if trigger.route == RoutePattern::Private {
            continue;
        }
        if let Some(other) = seen.insert(trigger.route.to_string(), &trigger.component) {
            bail!(
                "[[trigger.http]] route `{}` is used by both `{other}` and `{}`",
                trigger.route,
                trigger.component
            );
        }
    }
    Ok(())
}

// The manifest as written. `deny_unknown_fields` makes a typo an error, not a surprise.

#[derive(Deserialize)]
struct ManifestVersion {
    spin_manifest_version: Option<toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    #[allow(dead_code)]
    spin_manifest_version: toml::Value,
    application: RawApplication,
    #[serde(default)]
    variables: BTreeMap<String, RawVariable>,
    #[serde(default)]
    trigger: BTreeMap<String, Vec<toml::Value>>,
    #[serde(default)]
    component: BTreeMap<String, RawComponent>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct RawApplication {
    name: String,
    version: Option<String>,
    description: Option<String>,
    #[serde(default)]
    authors: Vec<String>,
    #[serde(default)]
    trigger: RawApplicationTriggers,
    #[serde(default)]
    targets: Vec<String>,
    tool: Option<toml::Value>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawApplicationTriggers {
    redis: Option<RawApplicationRedis>,
    #[allow(dead_code)]
    http: Option<toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApplicationRedis {
    address: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVariable {
    default: Option<String>,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    secret: bool,
    #[allow(dead_code)]
    description: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct RawComponent {
    source: RawSource,
    description: Option<String>,
    #[serde(default)]
    files: Vec<RawFile>,
    #[serde(default)]
    exclude_files: Vec<String>,
    #[serde(default)]
    allowed_outbound_hosts: Vec<String>,
    #[serde(default)]
    allowed_http_hosts: Vec<String>,
    #[serde(default)]
    key_value_stores: Vec<String>,
    #[serde(default)]
    sqlite_databases: Vec<String>,
    #[serde(default)]
    ai_models: Vec<String>,
    #[serde(default)]
    environment: BTreeMap<String, String>,
    #[serde(default)]
    variables: BTreeMap<String, String>,
    build: Option<toml::Value>,
    tool: Option<toml::Value>,
    dependencies_inherit_configuration: Option<bool>,
    dependencies: Option<toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpinTest {
    source: PathBuf,
    build: Option<String>,
    workdir: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawSource {
    Path(String),
    Remote(#[allow(dead_code)] toml::Value),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawFile {
    Pattern(String),
    Mapping { source: String, destination: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttpTrigger {
    #[allow(dead_code)]
    id: Option<String>,
    route: RawRoute,
    component: RawTriggerComponent,
    #[allow(dead_code)]
    executor: Option<toml::Value>,
}

#[derive(Deserialize, Debug)]
#[serde(untagged)]
enum RawRoute {
    Path(String),
    Private { private: bool },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRedisTrigger {
    #[allow(dead_code)]
    id: Option<String>,
    address: Option<String>,
    channel: String,
    component: RawTriggerComponent,
}

#[derive(Deserialize, Clone)]
#[serde(untagged)]
enum RawTriggerComponent {
    Id(String),
    Inline(#[allow(dead_code)] toml::Value),
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
        [[trigger.http]]
        route = "/api/users/..."
        component = "auth"
        [[trigger.http]]
        route = { private = true }
        component = "worker"
        [[trigger.redis]]
        channel = "ticket:created"
        component = "worker"
        [component.auth]
        source = "auth.wasm"
        sqlite_databases = ["auth"]
        files = [{ source = "static", destination = "/static" }]
        [component.auth.variables]
        jwt_key = "{{ jwt_key }}"
        [component.worker]
        source = "worker.wasm"
        allowed_outbound_hosts = ["{{ redis_url }}"]
    "#;

    fn parse_app(text: &str) -> Result<App> {
        parse(text, PathBuf::from("/app"))
    }

    fn error_of(text: &str) -> String {
        format!(
            "{:#}",
            parse_app(text).expect_err("the manifest is invalid")
        )
    }

    #[test]
    fn a_full_manifest_becomes_the_app_model() {
        let app = parse_app(APP).unwrap();
        let auth = &app.components["auth"];
        assert_eq!(auth.source, PathBuf::from("/app/auth.wasm"));
        assert!(auth.sqlite_databases.contains("auth"));
        assert_eq!(
            auth.files,
            [FileMount::Directory {
                source: PathBuf::from("/app/static"),
                destination: "/static".into()
            }]
        );
        assert_eq!(app.http_triggers.len(), 2);
        assert_eq!(app.http_triggers[1].route, RoutePattern::Private);
        assert_eq!(app.redis_triggers[0].component, "worker");
        assert_eq!(
            app.redis_triggers[0]
                .address
                .references()
                .collect::<Vec<_>>(),
            ["redis_url"]
        );
        assert!(app.variables["jwt_key"].required && app.variables["jwt_key"].secret);
    }

    #[test]
    fn a_component_s_spin_test_section_is_read_as_spin_test_reads_it() {
        let text = APP.replace(
            "[component.worker]",
            "[component.auth.tool.spin-test]\n\
             source = \"tests/target/wasm32-wasip1/release/tests.wasm\"\n\
             build = \"cargo build --release --target wasm32-wasip1\"\n\
             workdir = \"tests\"\n\
             [component.auth.tool.other]\nanything = 1\n\
             [component.worker]",
        );
        let app = parse_app(&text).unwrap();
        assert_eq!(
            app.components["auth"].spin_test,
            Some(SpinTest {
                source: PathBuf::from("/app/tests/target/wasm32-wasip1/release/tests.wasm"),
                build: Some("cargo build --release --target wasm32-wasip1".into()),
                workdir: PathBuf::from("/app/tests"),
            })
        );
        assert_eq!(app.components["worker"].spin_test, None);

        let text = text.replace("workdir = \"tests\"", "work_dir = \"tests\"");
        let err = error_of(&text);
        assert!(err.contains("`tool.spin-test`"), "{err}");
        assert!(err.contains("unknown field `work_dir`"), "{err}");
    }

    #[test]
    fn an_unknown_field_is_named() {
        let text = APP.replace("sqlite_databases", "sqlite_database");
        let err = error_of(&text);
        assert!(err.contains("unknown field `sqlite_database`"), "{err}");
    }

    #[test]
    fn a_trigger_for_a_missing_component_is_an_error() {
        let text = APP.replace("component = \"auth\"", "component = \"nobody\"");
        let err = error_of(&text);
        assert!(err.contains("names no [component.nobody]"), "{err}");
    }

    #[test]
    fn a_template_over_an_undeclared_variable_is_an_error() {
        let text = APP.replace("\"{{ jwt_key }}\"", "\"{{ jwt_secret }}\"");
        let err = error_of(&text);
        assert!(
            err.contains("[component.auth.variables] `jwt_key`"),
            "{err}"
        );
        assert!(err.contains("jwt_secret"), "{err}");
    }

    #[test]
    fn only_manifest_version_2_is_read() {
        let err = error_of(&APP.replace("spin_manifest_version = 2", "spin_manifest_version = 1"));
        assert!(err.contains("must be 2"), "{err}");
    }

    #[test]
    fn plugin_triggers_are_refused_clearly() {
        let text = format!(
            "{APP}\n[[trigger.cron]]\ncomponent = \"worker\"\ncron_expression = \"* * * * *\"\n"
        );
        let err = error_of(&text);
        assert!(err.contains("`http` and `redis` triggers only"), "{err}");
    }

    #[test]
    fn a_redis_trigger_needs_an_address() {
        let text = APP.replace(
            "[application.trigger.redis]\n        address = \"{{ redis_url }}\"",
            "",
        );
        let err = error_of(&text);
        assert!(err.contains("no `address`"), "{err}");
    }

    #[test]
    fn two_components_on_one_route_is_an_error() {
        let text = APP.replace("route = { private = true }", "route = \"/api/users/...\"");
        let err = error_of(&text);
        assert!(err.contains("used by both"), "{err}");
    }
}

//! `spin.toml` turned into the app model the host runs: the manifest as
//! `spin-manifest` reads and checks it, then what this host adds (routes, templates
//! over declared variables) and refuses (what it does not run). Invalid content is an
//! error naming the file and the field, as Spin reports it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail, ensure};
use serde::Deserialize;
use spin_manifest::Manifest;

use crate::routes::RoutePattern;
use crate::variables::Template;

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
    let manifest = spin_manifest::parse(text)?;
    let variables: BTreeMap<String, VariableDef> = manifest
        .variables
        .iter()
        .map(|(name, variable)| {
            let def = VariableDef {
                default: variable.default.clone(),
                required: variable.is_required(),
                secret: variable.secret,
            };
            (name.clone(), def)
        })
        .collect();

    let mut components = BTreeMap::new();
    for component in &manifest.components {
        let def = component_def(component, &dir, &variables)
            .with_context(|| format!("[component.{}]", component.id))?;
        components.insert(component.id.clone(), def);
    }

    let app_redis_address = app_redis_address(&manifest, &variables)?;
    let mut http_triggers = Vec::new();
    let mut redis_triggers = Vec::new();
    let mut numbers: BTreeMap<&str, usize> = BTreeMap::new();
    for trigger in &manifest.triggers {
        let number = numbers.entry(&trigger.trigger_type).or_default();
        *number += 1;
        let component = trigger.component.clone();
        match trigger.trigger_type.as_str() {
            "http" => {
                let raw = RawHttpTrigger::deserialize(trigger.config.clone())
                    .with_context(|| format!("[[trigger.http]] number {number}"))?;
                let route = match raw.route {
                    RawRoute::Path(route) => RoutePattern::parse(&route)
                        .with_context(|| format!("[[trigger.http]] route `{route}`"))?,
                    RawRoute::Private { private: true } => RoutePattern::Private,
                    RawRoute::Private { private: false } => bail!(
                        "[[trigger.http]] component `{component}`: `route = {{ private = false }}` is not a route"
                    ),
                };
                http_triggers.push(HttpTrigger { route, component });
            }
            "redis" => {
                let raw = RawRedisTrigger::deserialize(trigger.config.clone())
                    .with_context(|| format!("[[trigger.redis]] number {number}"))?;
                let context = || format!("[[trigger.redis]] channel `{}`", raw.channel);
                let address = match &raw.address {
                    Some(address) => app_template(address, &variables).with_context(context)?,
                    None => app_redis_address.clone().ok_or_else(|| {
                        anyhow!(
                            "{}: no `address`, and no [application.trigger.redis] `address`",
                            context()
                        )
                    })?,
                };
                let channel = app_template(&raw.channel, &variables).with_context(context)?;
                redis_triggers.push(RedisTrigger {
                    address,
                    channel,
                    component,
                });
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

/// `[application.trigger.redis] address`, the Redis triggers' default address; the
/// HTTP trigger's settings are Spin's CLI's business, and ignored.
fn app_redis_address(
    manifest: &Manifest,
    variables: &BTreeMap<String, VariableDef>,
) -> Result<Option<Template>> {
    let mut address = None;
    for (trigger_type, settings) in &manifest.application.trigger {
        match trigger_type.as_str() {
            "redis" => {
                let redis = RawApplicationRedis::deserialize(settings.clone())
                    .context("[application.trigger.redis]")?;
                let template = app_template(&redis.address, variables)
                    .context("[application.trigger.redis] `address`")?;
                address = Some(template);
            }
            "http" => {}
            other => {
                bail!("[application.trigger]: unknown field `{other}`, expected `redis` or `http`")
            }
        }
    }
    Ok(address)
}

fn component_def(
    component: &spin_manifest::Component,
    dir: &Path,
    variables: &BTreeMap<String, VariableDef>,
) -> Result<ComponentDef> {
    let id = &component.id;
    ensure!(
        component.dependencies.is_none() && component.dependencies_inherit_configuration.is_none(),
        "`dependencies`: component dependencies are not supported by this host"
    );
    ensure!(
        component.ai_models.is_empty(),
        "`ai_models`: Serverless AI is not supported by this host"
    );
    ensure!(
        component.exclude_files.is_empty(),
        "`exclude_files` is not supported by this host; narrow `files` instead"
    );
    ensure!(
        component.allowed_http_hosts.is_empty(),
        "`allowed_http_hosts` is the manifest v1 name: use `allowed_outbound_hosts`"
    );
    let files = component
        .files
        .iter()
        .map(|file| match file {
            spin_manifest::FileMount::Pattern(pattern) => FileMount::Pattern(pattern.clone()),
            spin_manifest::FileMount::Mapping {
                source,
                destination,
            } => FileMount::Directory {
                source: dir.join(source),
                destination: destination.clone(),
            },
        })
        .collect();
    let component_variables = component
        .variables
        .iter()
        .map(|(name, template)| {
            let template = app_template(template, variables)
                .with_context(|| format!("[component.{id}.variables] `{name}`"))?;
            Ok((name.clone(), template))
        })
        .collect::<Result<_>>()?;
    let allowed_outbound_hosts = component
        .allowed_outbound_hosts
        .iter()
        .map(|host| {
            app_template(host, variables)
                .with_context(|| format!("`allowed_outbound_hosts` entry `{host}`"))
        })
        .collect::<Result<_>>()?;
    let spin_test = component.spin_test.as_ref().map(|spin_test| SpinTest {
        source: dir.join(&spin_test.source),
        build: spin_test.build.clone(),
        workdir: spin_test
            .workdir
            .as_ref()
            .map_or_else(|| dir.to_owned(), |workdir| dir.join(workdir)),
    });
    Ok(ComponentDef {
        source: dir.join(&component.source),
        files,
        sqlite_databases: component.sqlite_databases.iter().cloned().collect(),
        key_value_stores: component.key_value_stores.iter().cloned().collect(),
        variables: component_variables,
        allowed_outbound_hosts,
        environment: component.environment.clone(),
        spin_test,
    })
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

// What the host reads of a trigger's table and of `[application.trigger.redis]`.
// `deny_unknown_fields` makes a typo an error, not a surprise.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApplicationRedis {
    address: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttpTrigger {
    route: RawRoute,
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
    address: Option<String>,
    channel: String,
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

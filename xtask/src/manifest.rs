//! What xtask makes of `spin.toml` (read and checked by `spin-manifest`): the
//! components this workspace builds (their crates, their `.wasm`, the files they mount),
//! in the order spin.toml gives them, which is the order Spin keeps when it locks an app
//! (the image's locked app, `image/locked.rs`, is derived from this).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};

pub use spin_manifest::{Application, Build, Trigger, Variable};

/// `[component.<id>.tool.spin-test]`: the component's tests, in spin-test's format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpinTest {
    /// The cargo package of the test component, from `--package` in its build command.
    pub package: String,
    /// Where the built test component goes, relative to the manifest.
    pub source: PathBuf,
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
    /// Fields of the component that xtask does not read, which the image refuses
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
    let manifest = spin_manifest::load(path)?;
    let mut app = of(manifest).with_context(|| format!("in {}", path.display()))?;
    app.dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    Ok(app)
}

#[cfg(test)]
fn parse(text: &str) -> Result<SpinApp> {
    of(spin_manifest::parse(text)?)
}

fn of(manifest: spin_manifest::Manifest) -> Result<SpinApp> {
    Ok(SpinApp {
        dir: PathBuf::new(),
        application: manifest.application,
        variables: manifest.variables,
        triggers: manifest.triggers,
        components: manifest
            .components
            .into_iter()
            .map(component)
            .collect::<Result<_>>()?,
    })
}

fn component(def: spin_manifest::Component) -> Result<Component> {
    let id = def.id;
    let build = def
        .build
        .ok_or_else(|| anyhow!("[component.{id}] has no build command"))?;
    let package = package_of(&build.command).ok_or_else(|| {
        anyhow!(
            "[component.{id}.build] command names no `--package <crate>`: {}",
            build.command
        )
    })?;
    let spin_test = match def.spin_test {
        None => None,
        Some(spin_test) => {
            let build = spin_test.build.as_deref().unwrap_or_default();
            let package = package_of(build).ok_or_else(|| {
                anyhow!(
                    "[component.{id}.tool.spin-test] build names no `--package <crate>`: {build}"
                )
            })?;
            Some(SpinTest {
                package,
                source: spin_test.source,
            })
        }
    };
    let unread = [
        ("exclude_files", !def.exclude_files.is_empty()),
        ("allowed_http_hosts", !def.allowed_http_hosts.is_empty()),
        ("ai_models", !def.ai_models.is_empty()),
        (
            "dependencies_inherit_configuration",
            def.dependencies_inherit_configuration.is_some(),
        ),
        ("dependencies", def.dependencies.is_some()),
    ]
    .into_iter()
    .filter(|(_, is_given)| *is_given)
    .map(|(field, _)| field.to_owned())
    .collect();
    Ok(Component {
        package,
        source: def.source,
        build,
        description: def.description,
        databases: def.sqlite_databases,
        key_value_stores: def.key_value_stores,
        allowed_outbound_hosts: def.allowed_outbound_hosts,
        files: def.files.into_iter().map(file_mount).collect(),
        environment: def.environment,
        variables: def.variables,
        spin_test,
        unread,
        id,
    })
}

/// A path mount is seen at the same path in the guest; a mapped one at `destination`.
fn file_mount(def: spin_manifest::FileMount) -> FileMount {
    let (source, destination) = match def {
        spin_manifest::FileMount::Pattern(path) => (PathBuf::from(&path), path),
        spin_manifest::FileMount::Mapping {
            source,
            destination,
        } => (source, destination),
    };
    FileMount {
        source,
        destination: destination
            .trim_start_matches("./")
            .trim_start_matches('/')
            .trim_end_matches('/')
            .to_owned(),
    }
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
        assert!(!redis_url.is_required() && !redis_url.secret);
        let jwt_key = &app.variables["jwt_key"];
        assert!(jwt_key.is_required() && jwt_key.secret);
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
            spin_manifest_version = 2
            [application]
            name = "x"
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
        let err = parse(
            "spin_manifest_version = 2\n[application]\nname = \"x\"\n\
             [variables]\nx = { required = true, default = \"1\" }\n",
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("`x`"), "{err}");
    }

    #[test]
    fn triggers_keep_the_order_of_the_file_and_their_settings() {
        let app = parse(
            r#"
            spin_manifest_version = 2
            [application]
            name = "x"
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
            [component.events]
            source = "events.wasm"
            build = { command = "cargo build -p events" }
            [component.web]
            source = "web.wasm"
            build = { command = "cargo build -p web" }
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
        let err = parse(
            "spin_manifest_version = 2\n[application]\nname = \"x\"\n\
             [[trigger.http]]\nroute = \"/\"\ncomponent = { source = \"a.wasm\" }\n",
        )
        .err()
        .unwrap();
        assert!(format!("{err:#}").contains("inline"), "{err:#}");
    }

    #[test]
    fn file_mounts_say_where_the_guest_sees_them_and_unread_fields_are_kept() {
        let app = parse(
            r#"
            spin_manifest_version = 2
            [application]
            name = "x"
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

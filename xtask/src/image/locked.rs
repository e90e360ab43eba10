//! Spin's locked app as `spin registry push` (Spin 3.6.3) puts it in an image: spin.toml
//! with every variable, trigger and component resolved, and each component's Wasm and
//! files named by the `sha256:` digest of the layer that carries them. SpinKube's shim
//! reads it from the layer of media type `application/vnd.fermyon.spin.application.v1+config`
//! and finds the Wasm and files by those digests among the other layers.
//!
//! The shape is Spin's (spinframework/spin, `crates/locked-app/src/locked.rs`): the same
//! field names and nesting, empty fields left out, maps in sorted order, and
//! `spin_lock_version` 0, which Spin writes while an app has no host requirements (it
//! reads 0 and 1). What goes in it follows Spin's loader (`crates/loader/src/local.rs`),
//! its trigger ids its manifest normalization (`crates/manifest/src/normalize.rs`), and
//! the digests and inlining its push (`crates/oci/src/client.rs`):
//!
//! - `metadata`: the application's `name`, `version`, `description`, `authors`, and
//!   `triggers` (each type's `[application.trigger.<type>]` settings); an app whose
//!   triggers are all of one type also gets `trigger`, those settings with `type`.
//! - `triggers`: `id` (spin.toml's; else `<component>-<type>-trigger`, and
//!   `<type>-trigger<n>` for a component's further triggers of the type),
//!   `trigger_type`, and `trigger_config`: the trigger's table with its `component`.
//! - `components`: `id`; `metadata` (`allowed_outbound_hosts`, `build`, `databases`,
//!   `description`, `key_value_stores`); `source` (`application/wasm`, by digest);
//!   `env`; `files`, each file by its path in the guest (relative to its root) and
//!   digest, those of at most 128 bytes also inline (base64), without a layer, as Spin
//!   does for registries that refuse tiny blobs; `config`, the component's variables.
//!
//! A component field of spin.toml that this does not carry over is refused, not
//! dropped. `resolve` is the way back, as Spin's loader takes it
//! (`crates/oci/src/loader.rs`): from a locked app and its layers to each component's
//! Wasm and files.

use std::collections::{BTreeMap, HashSet};

use anyhow::{Context, Result, bail, ensure};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::digest;
use crate::manifest::{self, SpinApp};

/// Files of at most this many bytes are inlined (Spin's
/// `DEFAULT_CONTENT_REF_INLINE_MAX_SIZE`).
const INLINE_MAX_SIZE: usize = 128;

/// What a component runs with: its Wasm, and its files by path in the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentContent {
    pub wasm: Vec<u8>,
    pub files: BTreeMap<String, Vec<u8>>,
}

/// Component id → what it runs with.
pub type AppContent = BTreeMap<String, ComponentContent>;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockedApp {
    pub spin_lock_version: u32,
    pub metadata: AppMetadata,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: BTreeMap<String, Variable>,
    pub triggers: Vec<LockedTrigger>,
    pub components: Vec<LockedComponent>,
}

/// Fields in alphabetical order: Spin's metadata is a sorted JSON object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppMetadata {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authors: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Value>,
    #[serde(default)]
    pub triggers: BTreeMap<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Variable {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub secret: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockedTrigger {
    pub id: String,
    pub trigger_type: String,
    pub trigger_config: Value,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockedComponent {
    pub id: String,
    pub metadata: ComponentMetadata,
    pub source: Source,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<ContentPath>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
}

/// Fields in alphabetical order, as `AppMetadata`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentMetadata {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_outbound_hosts: Vec<String>,
    pub build: manifest::Build,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub databases: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_value_stores: Vec<String>,
}

/// A component's Wasm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    pub content_type: String,
    #[serde(flatten)]
    pub content: ContentRef,
}

/// A file, at `path` in the guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentPath {
    #[serde(flatten)]
    pub content: ContentRef,
    pub path: String,
}

/// Content by digest, and small content inline too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContentRef {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "base64_bytes"
    )]
    pub inline: Option<Vec<u8>>,
    pub digest: String,
}

impl ContentRef {
    /// As Spin refers to a layer's bytes: by digest, inline too when small.
    pub fn of(bytes: &[u8]) -> ContentRef {
        ContentRef {
            inline: (bytes.len() <= INLINE_MAX_SIZE).then(|| bytes.to_vec()),
            digest: digest(bytes),
        }
    }
}

/// `inline` is base64 (standard alphabet, padded) in Spin's JSON.
mod base64_bytes {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &Option<Vec<u8>>, out: S) -> Result<S::Ok, S::Error> {
        match bytes {
            Some(bytes) => out.serialize_str(&STANDARD.encode(bytes)),
            None => out.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(input: D) -> Result<Option<Vec<u8>>, D::Error> {
        Option::<String>::deserialize(input)?
            .map(|text| STANDARD.decode(text).map_err(serde::de::Error::custom))
            .transpose()
    }
}

impl LockedApp {
    /// The locked app of `app`, whose components run with `content`.
    pub fn new(app: &SpinApp, content: &AppContent) -> Result<LockedApp> {
        let components = app
            .components
            .iter()
            .map(|component| {
                let own = content
                    .get(&component.id)
                    .with_context(|| format!("no content for component `{}`", component.id))?;
                locked_component(component, own)
            })
            .collect::<Result<_>>()?;
        let variables = app
            .variables
            .iter()
            .map(|(name, variable)| {
                let locked = Variable {
                    description: variable.description.clone(),
                    default: variable.default.clone(),
                    secret: variable.secret,
                };
                (name.clone(), locked)
            })
            .collect();
        Ok(LockedApp {
            spin_lock_version: 0,
            metadata: metadata(app)?,
            variables,
            triggers: triggers(&app.triggers)?,
            components,
        })
    }
}

fn metadata(app: &SpinApp) -> Result<AppMetadata> {
    let application = &app.application;
    let triggers: BTreeMap<String, Value> = application
        .trigger
        .iter()
        .map(|(trigger_type, settings)| Ok((trigger_type.clone(), serde_json::to_value(settings)?)))
        .collect::<Result<_>>()?;
    let types: HashSet<&str> = app
        .triggers
        .iter()
        .map(|trigger| trigger.trigger_type.as_str())
        .collect();
    let trigger = match types.into_iter().collect::<Vec<_>>()[..] {
        [only] => {
            let mut settings = match triggers.get(only) {
                Some(Value::Object(settings)) => settings.clone(),
                _ => serde_json::Map::new(),
            };
            settings.insert("type".to_owned(), only.into());
            Some(Value::Object(settings))
        }
        _ => None,
    };
    Ok(AppMetadata {
        authors: application.authors.clone(),
        description: non_empty(&application.description),
        name: application.name.clone(),
        trigger,
        triggers,
        version: non_empty(&application.version),
    })
}

fn non_empty(text: &Option<String>) -> Option<String> {
    text.clone().filter(|text| !text.is_empty())
}

/// Spin's trigger ids: spin.toml's; else `<component>-<type>-trigger` when that is free;
/// else the first free `<type>-trigger<n>`, counting from 1 in each type.
fn triggers(triggers: &[manifest::Trigger]) -> Result<Vec<LockedTrigger>> {
    let mut taken: HashSet<String> = triggers.iter().filter_map(|t| t.id.clone()).collect();
    let mut counters: BTreeMap<&str, usize> = BTreeMap::new();
    triggers
        .iter()
        .map(|trigger| {
            let kind = trigger.trigger_type.as_str();
            let id = match &trigger.id {
                Some(id) => id.clone(),
                None => {
                    let natural = format!("{}-{kind}-trigger", trigger.component);
                    if taken.insert(natural.clone()) {
                        natural
                    } else {
                        let counter = counters.entry(kind).or_insert(1);
                        loop {
                            let id = format!("{kind}-trigger{counter}");
                            if taken.insert(id.clone()) {
                                break id;
                            }
                            *counter += 1;
                        }
                    }
                }
            };
            let mut config: BTreeMap<String, Value> = trigger
                .config
                .iter()
                .map(|(key, value)| Ok((key.clone(), serde_json::to_value(value)?)))
                .collect::<Result<_>>()?;
            config.insert("component".to_owned(), trigger.component.clone().into());
            Ok(LockedTrigger {
                id,
                trigger_type: kind.to_owned(),
                trigger_config: serde_json::to_value(config)?,
            })
        })
        .collect()
}

fn locked_component(
    component: &manifest::Component,
    content: &ComponentContent,
) -> Result<LockedComponent> {
    if !component.unread.is_empty() {
        bail!(
            "[component.{}] has {} that the image's locked app does not carry; \
             xtask/src/image/locked.rs would have to learn {}",
            component.id,
            component.unread.join(", "),
            if component.unread.len() == 1 {
                "it"
            } else {
                "them"
            },
        );
    }
    Ok(LockedComponent {
        id: component.id.clone(),
        metadata: ComponentMetadata {
            allowed_outbound_hosts: component.allowed_outbound_hosts.clone(),
            build: component.build.clone(),
            databases: component.databases.clone(),
            description: non_empty(&component.description),
            key_value_stores: component.key_value_stores.clone(),
        },
        source: Source {
            content_type: "application/wasm".to_owned(),
            content: ContentRef::of(&content.wasm),
        },
        env: component.environment.clone(),
        files: content
            .files
            .iter()
            .map(|(path, bytes)| ContentPath {
                content: ContentRef::of(bytes),
                path: path.clone(),
            })
            .collect(),
        config: component.variables.clone(),
    })
}

/// What Spin's loader finds for each component of `locked`: its Wasm in the layer of
/// its digest, each file inline or in the layer of its digest (`blobs`: digest →
/// bytes), at a path that stays below the guest's root. Every digest is checked.
pub fn resolve(locked: &LockedApp, blobs: &BTreeMap<String, &[u8]>) -> Result<AppContent> {
    let blob = |content: &ContentRef| -> Result<Vec<u8>> {
        let bytes = blobs
            .get(&content.digest)
            .with_context(|| format!("no layer has digest {}", content.digest))?;
        Ok(bytes.to_vec())
    };
    let mut app = AppContent::new();
    for component in &locked.components {
        let wasm = blob(&component.source.content)
            .with_context(|| format!("the Wasm of component `{}`", component.id))?;
        let mut files = BTreeMap::new();
        for file in &component.files {
            ensure!(
                file.path
                    .split('/')
                    .all(|part| !matches!(part, "" | "." | "..")),
                "component `{}` mounts a file at `{}`, which is not below its root",
                component.id,
                file.path
            );
            let bytes = match &file.content.inline {
                Some(bytes) => bytes.clone(),
                None => blob(&file.content)?,
            };
            ensure!(
                digest(&bytes) == file.content.digest,
                "`{}` of component `{}` does not have its digest",
                file.path,
                component.id
            );
            files.insert(file.path.clone(), bytes);
        }
        app.insert(component.id.clone(), ComponentContent { wasm, files });
    }
    Ok(app)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_content_is_inlined_and_base64_in_json() {
        let small = ContentRef::of(b"hi");
        assert_eq!(small.inline.as_deref(), Some(&b"hi"[..]));
        let json = serde_json::to_value(&small).unwrap();
        assert_eq!(json["inline"], "aGk=");
        assert_eq!(json["digest"], digest(b"hi"));
        assert_eq!(serde_json::from_value::<ContentRef>(json).unwrap(), small);

        let large = ContentRef::of(&[7; INLINE_MAX_SIZE + 1]);
        assert_eq!(large.inline, None);
        assert!(
            serde_json::to_value(&large)
                .unwrap()
                .get("inline")
                .is_none()
        );
    }

    #[test]
    fn trigger_ids_are_named_as_spin_names_them() {
        let trigger = |kind: &str, component: &str, id: Option<&str>| manifest::Trigger {
            trigger_type: kind.to_owned(),
            id: id.map(str::to_owned),
            component: component.to_owned(),
            config: toml::Table::new(),
        };
        let locked = triggers(&[
            trigger("http", "web", None),
            trigger("redis", "events", None),
            trigger("redis", "events", None),
            trigger("redis", "events", Some("redis-trigger1")),
            trigger("redis", "events", None),
        ])
        .unwrap();
        let ids: Vec<_> = locked.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "web-http-trigger",
                "events-redis-trigger",
                "redis-trigger2",
                "redis-trigger1",
                "redis-trigger3",
            ],
            "an id spin.toml gives is never given again"
        );
        assert_eq!(
            locked[0].trigger_config,
            serde_json::json!({"component": "web"})
        );
    }

    #[test]
    fn resolve_refuses_a_path_out_of_the_root_and_a_wrong_digest() {
        let wasm = b"\0asm".to_vec();
        let mut locked = LockedApp {
            spin_lock_version: 0,
            metadata: AppMetadata {
                authors: vec![],
                description: None,
                name: "x".to_owned(),
                trigger: None,
                triggers: BTreeMap::new(),
                version: None,
            },
            variables: BTreeMap::new(),
            triggers: vec![],
            components: vec![LockedComponent {
                id: "a".to_owned(),
                metadata: ComponentMetadata {
                    allowed_outbound_hosts: vec![],
                    build: manifest::Build {
                        command: "cargo build -p a".to_owned(),
                        workdir: None,
                        watch: vec![],
                    },
                    databases: vec![],
                    description: None,
                    key_value_stores: vec![],
                },
                source: Source {
                    content_type: "application/wasm".to_owned(),
                    content: ContentRef::of(&wasm),
                },
                env: BTreeMap::new(),
                files: vec![ContentPath {
                    content: ContentRef::of(b"secret"),
                    path: "../etc/passwd".to_owned(),
                }],
                config: BTreeMap::new(),
            }],
        };
        let blobs = BTreeMap::from([(digest(&wasm), &wasm[..])]);
        let err = resolve(&locked, &blobs).unwrap_err();
        assert!(err.to_string().contains("not below its root"), "{err}");

        let file = &mut locked.components[0].files[0];
        file.path = "etc/passwd".to_owned();
        file.content.inline = Some(b"changed".to_vec());
        let err = resolve(&locked, &blobs).unwrap_err();
        assert!(err.to_string().contains("digest"), "{err}");
    }
}

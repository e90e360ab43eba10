//! What SpinKube's objects (SpinApp, SpinAppExecutor) are checked against: the CRDs of
//! the SpinKube release the user runs, when given (`--crds DIR` or `SPINKUBE_CRDS`),
//! or else the project's own schema of the fields its manifests use
//! (`spinkube-schema.yaml`). The repository keeps no copy of SpinKube's CRDs.
//! Either way every object schema that lists its properties refuses others: the CRDs
//! allow unknown fields, so a typo like `componets` would pass a cluster silently.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::Value;

use super::{describe, parse_documents};

/// The kinds SpinKube defines that the manifests use.
pub const KINDS: [&str; 2] = ["SpinApp", "SpinAppExecutor"];
/// The environment variable that names the CRDs, when `--crds` does not.
pub const CRDS_VARIABLE: &str = "SPINKUBE_CRDS";
/// The project's schema, in this directory.
const PROJECT_SCHEMA_FILE: &str = "xtask/src/k8s/spinkube-schema.yaml";
const PROJECT_SCHEMA: &str = include_str!("spinkube-schema.yaml");

/// Where the schemas came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// SpinKube's CRDs, read from this file or directory.
    Crds(PathBuf),
    /// The project's schema of the fields its manifests use.
    Project,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Crds(path) => write!(f, "SpinKube's CRDs in {}", path.display()),
            Source::Project => write!(f, "the project's schema ({PROJECT_SCHEMA_FILE})"),
        }
    }
}

impl Source {
    /// `--crds DIR` among `args`, else `SPINKUBE_CRDS`, else the project's schema.
    pub fn choose(args: &[String]) -> Result<Source> {
        let mut args = args.iter();
        let mut crds = None;
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--crds" => {
                    let dir = args.next().context("`--crds` needs a file or directory")?;
                    crds = Some(PathBuf::from(dir));
                }
                other => bail!("unknown argument `{other}` (k8s-check takes `--crds DIR`)"),
            }
        }
        let crds = crds.or_else(|| {
            std::env::var_os(CRDS_VARIABLE)
                .filter(|dir| !dir.is_empty())
                .map(PathBuf::from)
        });
        match crds {
            // Absolute, so that the tests `cargo xtask test` runs read the same files.
            Some(path) => Ok(Source::Crds(std::fs::canonicalize(&path).with_context(
                || {
                    format!(
                        "the SpinKube CRDs at {} (`--crds` or {CRDS_VARIABLE})",
                        path.display()
                    )
                },
            )?)),
            None => Ok(Source::Project),
        }
    }
}

/// A validator per `(apiVersion, kind)`, strict about unknown fields.
pub struct Schemas {
    pub source: Source,
    validators: BTreeMap<(String, String), jsonschema::Validator>,
}

impl Schemas {
    pub fn load(source: Source) -> Result<Schemas> {
        let schemas = match &source {
            Source::Crds(path) => crd_schemas(path)?,
            Source::Project => project_schemas(PROJECT_SCHEMA)?,
        };
        for kind in KINDS {
            if !schemas.keys().any(|(_, known)| known == kind) {
                bail!("{source} define no `{kind}`");
            }
        }
        let mut validators = BTreeMap::new();
        for (key, schema) in &schemas {
            let validator = jsonschema::validator_for(schema)
                .map_err(|err| anyhow!("{source}: the schema of {}: {err}", key.1))?;
            validators.insert(key.clone(), validator);
        }
        Ok(Schemas { source, validators })
    }

    /// Whether `object` is one of SpinKube's kinds (checked here, not by Kubernetes'
    /// schemas).
    pub fn covers(&self, object: &Value) -> bool {
        object["kind"]
            .as_str()
            .is_some_and(|kind| KINDS.contains(&kind))
    }

    pub fn validate(&self, object: &Value) -> Vec<String> {
        if !self.covers(object) {
            return Vec::new();
        }
        let api_version = object["apiVersion"].as_str().unwrap_or("");
        let kind = object["kind"].as_str().unwrap_or("");
        let Some(validator) = self
            .validators
            .get(&(api_version.to_owned(), kind.to_owned()))
        else {
            let known: Vec<&str> = self
                .validators
                .keys()
                .filter(|(_, known)| known == kind)
                .map(|(version, _)| version.as_str())
                .collect();
            return vec![format!(
                "{}: apiVersion `{api_version}` is not served for {kind} by {} (it serves {})",
                describe(object),
                self.source,
                known.join(", ")
            )];
        };
        let hint = match self.source {
            Source::Project => {
                " (the project's schema lists only the fields its manifests use: a real \
                 SpinKube field belongs in it, from SpinKube's API reference, or check \
                 with the CRDs)"
            }
            Source::Crds(_) => "",
        };
        validator
            .iter_errors(object)
            .map(|error| {
                format!(
                    "{}: at {}: {error}{hint}",
                    describe(object),
                    error.instance_path()
                )
            })
            .collect()
    }
}

/// Every served version of every CRD in `path` (a YAML file, or a directory of them;
/// each may hold several documents, or a `kind: List` as `kubectl get crd -o yaml`
/// prints it).
fn crd_schemas(path: &Path) -> Result<BTreeMap<(String, String), Value>> {
    let files: Vec<PathBuf> = if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("reading the CRDs in {}", path.display()))?
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|file| {
                file.extension()
                    .is_some_and(|ext| ext == "yaml" || ext == "yml")
            })
            .collect();
        files.sort();
        files
    } else if path.is_file() {
        vec![path.to_path_buf()]
    } else {
        bail!(
            "the SpinKube CRDs at {} do not exist (`--crds` or {CRDS_VARIABLE})",
            path.display()
        );
    };
    let mut schemas = BTreeMap::new();
    for file in files {
        let text = std::fs::read_to_string(&file)?;
        let documents =
            parse_documents(&text).with_context(|| format!("reading {}", file.display()))?;
        let crds = documents
            .into_iter()
            .flat_map(|document| match document["kind"].as_str() {
                Some("List") => document["items"].as_array().cloned().unwrap_or_default(),
                _ => vec![document],
            });
        for crd in crds.filter(|crd| crd["kind"] == "CustomResourceDefinition") {
            let kind = crd["spec"]["names"]["kind"]
                .as_str()
                .with_context(|| format!("{}: a CRD without a kind", file.display()))?;
            let group = crd["spec"]["group"].as_str().unwrap_or("");
            for version in crd["spec"]["versions"].as_array().into_iter().flatten() {
                if version["served"] == false {
                    continue;
                }
                let name = version["name"].as_str().unwrap_or("");
                let mut schema = version["schema"]["openAPIV3Schema"].clone();
                refuse_unknown_fields(&mut schema);
                schemas.insert((format!("{group}/{name}"), kind.to_owned()), schema);
            }
        }
    }
    Ok(schemas)
}

/// The project's schema: `apiVersion`, then each kind's schema, with `$ref`s to its
/// `definitions` written out.
fn project_schemas(text: &str) -> Result<BTreeMap<(String, String), Value>> {
    let file: Value = serde_yaml::from_str(text).context(PROJECT_SCHEMA_FILE)?;
    let api_version = file["apiVersion"]
        .as_str()
        .context("the project's schema names no apiVersion")?;
    let definitions = &file["definitions"];
    let mut schemas = BTreeMap::new();
    for (kind, schema) in file["kinds"].as_object().into_iter().flatten() {
        let mut schema = schema.clone();
        inline_refs(&mut schema, definitions)?;
        refuse_unknown_fields(&mut schema);
        schemas.insert((api_version.to_owned(), kind.clone()), schema);
    }
    Ok(schemas)
}

/// Replaces every `{$ref: "#/definitions/<name>"}` with that definition.
fn inline_refs(schema: &mut Value, definitions: &Value) -> Result<()> {
    match schema {
        Value::Object(map) => {
            if let Some(reference) = map.get("$ref").and_then(Value::as_str) {
                let name = reference
                    .strip_prefix("#/definitions/")
                    .with_context(|| format!("`$ref: {reference}` is not a definition"))?;
                let mut definition = definitions
                    .get(name)
                    .with_context(|| format!("no definition `{name}`"))?
                    .clone();
                inline_refs(&mut definition, definitions)?;
                *schema = definition;
                return Ok(());
            }
            map.values_mut()
                .try_for_each(|value| inline_refs(value, definitions))
        }
        Value::Array(items) => items
            .iter_mut()
            .try_for_each(|value| inline_refs(value, definitions)),
        _ => Ok(()),
    }
}

fn refuse_unknown_fields(schema: &mut Value) {
    let Value::Object(map) = schema else { return };
    if map.contains_key("properties")
        && !map.contains_key("additionalProperties")
        && !map.contains_key("x-kubernetes-preserve-unknown-fields")
    {
        map.insert("additionalProperties".to_owned(), Value::Bool(false));
    }
    for (key, value) in map.iter_mut() {
        match key.as_str() {
            "properties" => {
                if let Value::Object(properties) = value {
                    properties.values_mut().for_each(refuse_unknown_fields);
                }
            }
            "items" | "additionalProperties" => refuse_unknown_fields(value),
            "anyOf" | "allOf" | "oneOf" => {
                if let Value::Array(schemas) = value {
                    schemas.iter_mut().for_each(refuse_unknown_fields);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where the project's schema differs from the CRDs' for a field it lists: another
    /// type, or a field the CRDs require that it does not. Empty when they agree.
    fn disagreements(project: &Value, crd: &Value, at: &str) -> Vec<String> {
        let mut found = Vec::new();
        let types = |schema: &Value| -> Vec<String> {
            match &schema["type"] {
                Value::String(one) => vec![one.clone()],
                Value::Array(many) => many
                    .iter()
                    .filter_map(|t| t.as_str().map(str::to_owned))
                    .collect(),
                _ => Vec::new(),
            }
        };
        // The CRDs give an int-or-string (a quantity) no `type`, but `anyOf` both.
        let (ours, theirs) = (types(project), types(crd));
        if !theirs.is_empty() && ours != theirs {
            found.push(format!("{at}: type {ours:?} here, {theirs:?} in the CRDs"));
        }
        let listed = project["properties"].as_object();
        for required in crd["required"].as_array().into_iter().flatten() {
            let required = required.as_str().unwrap_or("");
            let is_listed = listed.is_some_and(|listed| listed.contains_key(required));
            let is_required_here = project["required"]
                .as_array()
                .is_some_and(|here| here.iter().any(|name| name == required));
            if is_listed && !is_required_here {
                found.push(format!("{at}.{required}: required by the CRDs, not here"));
            }
        }
        for (name, field) in listed.into_iter().flatten() {
            let path = format!("{at}.{name}");
            match crd["properties"].get(name) {
                Some(theirs) => found.extend(disagreements(field, theirs, &path)),
                None => found.push(format!("{path}: not a field of the CRDs")),
            }
        }
        for (key, label) in [("items", "[]"), ("additionalProperties", "{}")] {
            if project[key].is_object() && crd[key].is_object() {
                found.extend(disagreements(
                    &project[key],
                    &crd[key],
                    &format!("{at}{label}"),
                ));
            }
        }
        found
    }

    #[test]
    fn the_project_schema_has_both_kinds_and_refuses_unknown_fields() {
        let schemas = project_schemas(PROJECT_SCHEMA).unwrap();
        let app = &schemas[&("core.spinkube.dev/v1alpha1".into(), "SpinApp".into())];
        assert_eq!(app["properties"]["spec"]["additionalProperties"], false);
        // A `$ref` was written out, and made strict too.
        let probe = &app["properties"]["spec"]["properties"]["checks"]["properties"]["liveness"];
        assert_eq!(probe["properties"]["httpGet"]["required"][0], "path");
        assert_eq!(probe["additionalProperties"], false);
    }

    #[test]
    fn an_api_version_the_schemas_do_not_serve_fails() {
        let schemas = Schemas::load(Source::Project).unwrap();
        let object = serde_json::json!({
            "apiVersion": "core.spinkube.dev/v1beta9", "kind": "SpinAppExecutor",
            "metadata": {"name": "x"}, "spec": {"createDeployment": true}
        });
        let problems = schemas.validate(&object);
        assert!(
            problems[0].contains("apiVersion `core.spinkube.dev/v1beta9` is not served"),
            "{problems:?}"
        );
    }

    #[test]
    fn crds_given_as_a_kubectl_list_are_read() {
        let dir = std::env::temp_dir().join(format!("k8s-crd-list-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("crds.yaml");
        let crd = |kind: &str| {
            format!(
                "  - apiVersion: apiextensions.k8s.io/v1\n    kind: CustomResourceDefinition\n    \
                 spec:\n      group: core.spinkube.dev\n      names: {{kind: {kind}}}\n      \
                 versions:\n        - name: v1alpha1\n          served: true\n          \
                 schema:\n            openAPIV3Schema:\n              type: object\n              \
                 properties: {{spec: {{type: object, properties: {{image: {{type: string}}}}}}}}\n"
            )
        };
        let text = format!(
            "apiVersion: v1\nkind: List\nitems:\n{}{}",
            crd("SpinApp"),
            crd("SpinAppExecutor")
        );
        std::fs::write(&file, text).unwrap();
        let schemas = Schemas::load(Source::Crds(file)).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let object = serde_json::json!({
            "apiVersion": "core.spinkube.dev/v1alpha1", "kind": "SpinApp",
            "spec": {"imag": "x"}
        });
        let problems = schemas.validate(&object);
        assert!(problems.iter().any(|p| p.contains("imag")), "{problems:?}");
    }

    #[test]
    fn crds_without_a_spinkube_kind_are_refused() {
        let dir = std::env::temp_dir().join(format!("k8s-crd-none-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let err = Schemas::load(Source::Crds(dir.clone()))
            .err()
            .unwrap()
            .to_string();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(err.contains("define no `SpinApp`"), "{err}");
    }

    /// The project's schema says what SpinKube's CRDs say, for every field it lists.
    /// Needs the CRDs (`SPINKUBE_CRDS`, as CI sets it); without them it says so.
    #[test]
    fn the_project_schema_agrees_with_the_crds() {
        let Ok(Source::Crds(path)) = Source::choose(&[]) else {
            eprintln!(
                "skipped: {CRDS_VARIABLE} names no CRDs to compare the project's schema with"
            );
            return;
        };
        let crds = crd_schemas(&path).unwrap();
        let mut found = Vec::new();
        for ((api_version, kind), ours) in &project_schemas(PROJECT_SCHEMA).unwrap() {
            let theirs = crds
                .get(&(api_version.clone(), kind.clone()))
                .unwrap_or_else(|| panic!("the CRDs do not serve {api_version} {kind}"));
            found.extend(disagreements(ours, theirs, kind));
        }
        assert_eq!(found, Vec::<String>::new());
    }

    #[test]
    fn a_disagreement_with_the_crds_is_found() {
        let crd = serde_json::json!({
            "type": "object", "required": ["image"],
            "properties": {"image": {"type": "string"}, "replicas": {"type": "integer"}}
        });
        let ours = serde_json::json!({
            "type": "object",
            "properties": {"image": {"type": "string"}, "replicas": {"type": "string"},
                           "replicaz": {"type": "integer"}}
        });
        let found = disagreements(&ours, &crd, "spec");
        assert_eq!(
            found,
            [
                "spec.image: required by the CRDs, not here",
                "spec.replicas: type [\"string\"] here, [\"integer\"] in the CRDs",
                "spec.replicaz: not a field of the CRDs",
            ]
        );
    }
}

//! `cargo xtask k8s-check`: the SpinKube manifests, checked offline. Every overlay of
//! `k8s/SpinKube/overlays/` is rendered with kubectl's kustomize (the command the
//! deployment guide gives), then every object is validated:
//! - `SpinApp` and `SpinAppExecutor` against SpinKube's CRDs when they are given
//!   (`--crds DIR` or `SPINKUBE_CRDS`), else against the project's own schema of the
//!   fields its manifests use (`spinkube.rs`), with unknown fields rejected;
//! - core kinds against Kubernetes' own schemas, strictly (`kubernetes-validate`);
//! - spin-operator's webhook rules (replicas with autoscaling, replicas below 1, an
//!   executor that exists);
//! - cross-references: every ConfigMap, Secret and volume claim referenced exists with
//!   its key (Secrets the user creates are those of `secrets.example.yaml`), every
//!   component named is in spin.toml and every one is deployed, every database a
//!   deployed component opens is configured, every required variable is given (and
//!   `payment_provider`, whose default is no deployment's choice) and every variable
//!   given is declared;
//! - the offline sandbox payment provider, which moves no money, runs only in an
//!   overlay whose directory name says it is a demo (contains `demo`).

mod spinkube;
mod tools;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::{Project, build, manifest, step};

const OVERLAYS: &str = "k8s/SpinKube/overlays";
/// The Secrets the user creates, with the keys the manifests may reference.
const USER_SECRETS: &str = "k8s/SpinKube/base/secrets.example.yaml";
/// Variables every SpinApp gives although spin.toml has a default: which provider
/// charges the cards is the deployment's choice, made in the open.
const ALWAYS_GIVEN: &[&str] = &["payment_provider"];
/// What an overlay's directory name holds when it may run the sandbox provider.
const DEMO: &str = "demo";

/// What SpinApp and SpinAppExecutor objects were checked against.
pub use spinkube::Source as SpinKubeSchemas;

/// `cargo xtask k8s-check [--crds DIR]`.
pub fn run(project: &Project, args: &[String]) -> Result<SpinKubeSchemas> {
    let tools = tools::ensure(project)?;
    let schemas = spinkube::Schemas::load(spinkube::Source::choose(args)?)?;
    step(&format!(
        "k8s: SpinKube's kinds are checked against {}",
        schemas.source
    ));
    if schemas.source == SpinKubeSchemas::Project {
        eprintln!("{}", skipped_crd_check());
    }
    let facts = Facts::load(&project.root, schemas)?;
    let out = project.target_dir().join("k8s-check");
    std::fs::create_dir_all(&out)?;
    let mut failed = Vec::new();
    for overlay in overlays(&project.root)? {
        let name = overlay
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or("?")
            .to_owned();
        step(&format!(
            "k8s: rendering overlay `{name}` (kubectl kustomize)"
        ));
        let rendered = project
            .sh
            .cmd(&tools.kubectl)
            .arg("kustomize")
            .arg(&overlay)
            .quiet()
            .read()
            .with_context(|| format!("kubectl kustomize {}", overlay.display()))?;
        let objects = parse_documents(&rendered)?;
        let mut problems = check_objects(&name, &objects, &facts);
        let core: Vec<&Value> = objects
            .iter()
            .filter(|object| !facts.spinkube.covers(object))
            .collect();
        problems.extend(validate_core(project, &tools, &out.join(&name), &core)?);
        eprintln!(
            "{} objects: {}",
            objects.len(),
            objects.iter().map(describe).collect::<Vec<_>>().join(", ")
        );
        if problems.is_empty() {
            eprintln!("overlay `{name}`: every object is valid");
        } else {
            for problem in &problems {
                eprintln!("  {problem}");
            }
            failed.push(name);
        }
    }

    step("k8s: self-test: the strict core check rejects a misspelled field");
    let mut service = json!({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "redis"},
        "spec": {"prots": [{"port": 6379}]}
    });
    let problems = validate_core(project, &tools, &out.join("self-test"), &[&service])?;
    if !problems.iter().any(|problem| problem.contains("prots")) {
        bail!("the core check accepted a Service with `prots`: {problems:?}");
    }
    service["spec"] = json!({"ports": [{"port": 6379}]});
    let problems = validate_core(project, &tools, &out.join("self-test"), &[&service])?;
    if !problems.is_empty() {
        bail!("the core check refused a valid Service: {problems:?}");
    }
    eprintln!("rejected, as it must be; the same Service spelled right passes");

    step("k8s: self-test: the SpinApp check rejects a misspelled field");
    let mut app = json!({
        "apiVersion": "core.spinkube.dev/v1alpha1", "kind": "SpinApp",
        "metadata": {"name": "self-test"},
        "spec": {"image": "ticketing", "executor": "containerd-shim-spin", "componets": ["web"]}
    });
    if !facts
        .spinkube
        .validate(&app)
        .iter()
        .any(|problem| problem.contains("componets"))
    {
        bail!("the SpinApp check accepted `componets`");
    }
    app["spec"]["components"] = app["spec"]["componets"].take();
    app["spec"]
        .as_object_mut()
        .expect("spec is an object")
        .remove("componets");
    let problems = facts.spinkube.validate(&app);
    if !problems.is_empty() {
        bail!("the SpinApp check refused a valid SpinApp: {problems:?}");
    }
    eprintln!("rejected, as it must be; the same SpinApp spelled right passes");

    if !failed.is_empty() {
        bail!("k8s check failed for overlay(s): {}", failed.join(", "));
    }
    Ok(facts.spinkube.source)
}

/// What a run without SpinKube's CRDs did not check, and how to check it.
pub fn skipped_crd_check() -> String {
    format!(
        "NOTE: SpinKube's CRDs were not given, so the full CRD check was SKIPPED: SpinApp \
         and SpinAppExecutor were checked only against the project's schema of the fields \
         its manifests use. For the full check run `cargo xtask k8s-check --crds <dir>` \
         (or set {}=<dir>) with the CRDs of the SpinKube release you run; \
         docs/deploy.md (\"The CRDs\") says where to get them.",
        spinkube::CRDS_VARIABLE
    )
}

fn overlays(root: &Path) -> Result<Vec<PathBuf>> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root.join(OVERLAYS))?
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.join("kustomization.yaml").is_file())
        .collect();
    dirs.sort();
    Ok(dirs)
}

/// `Kind/name`.
fn describe(object: &Value) -> String {
    format!(
        "{}/{}",
        object["kind"].as_str().unwrap_or("?"),
        object["metadata"]["name"].as_str().unwrap_or("?")
    )
}

/// Every YAML document of `text`, as JSON values (empty documents dropped).
fn parse_documents(text: &str) -> Result<Vec<Value>> {
    let mut objects = Vec::new();
    for document in serde_yaml::Deserializer::from_str(text) {
        let value: Value = serde::Deserialize::deserialize(document).context("YAML")?;
        if !value.is_null() {
            objects.push(value);
        }
    }
    Ok(objects)
}

/// What the checks compare the manifests with: SpinKube's schemas, spin.toml, the
/// user's Secrets.
struct Facts {
    spinkube: spinkube::Schemas,
    /// Component id → the databases it opens.
    components: BTreeMap<String, Vec<String>>,
    /// Application variable → required.
    variables: BTreeMap<String, bool>,
    /// Secret name → its keys, for the Secrets the user creates.
    user_secrets: BTreeMap<String, BTreeSet<String>>,
}

impl Facts {
    fn load(root: &Path, spinkube: spinkube::Schemas) -> Result<Facts> {
        let app = manifest::load(&root.join(build::APP))?;
        let components = app
            .components
            .into_iter()
            .map(|component| (component.id, component.databases))
            .collect();
        let secrets_text = std::fs::read_to_string(root.join(USER_SECRETS))
            .with_context(|| format!("reading {USER_SECRETS}"))?;
        let mut user_secrets = BTreeMap::new();
        for secret in parse_documents(&secrets_text)? {
            user_secrets.insert(
                name_of(&secret).to_owned(),
                data_keys(&secret, &["data", "stringData"]),
            );
        }
        Ok(Facts {
            spinkube,
            components,
            variables: app
                .variables
                .iter()
                .map(|(name, variable)| (name.clone(), variable.is_required()))
                .collect(),
            user_secrets,
        })
    }
}

/// Every check that needs no tool, on the objects of the overlay named `overlay` (its
/// directory): CRD schemas, webhook rules, cross-references, the payment provider.
fn check_objects(overlay: &str, objects: &[Value], facts: &Facts) -> Vec<String> {
    let mut problems = Vec::new();
    for object in objects {
        problems.extend(facts.spinkube.validate(object));
    }
    problems.extend(webhook_rules(objects));
    problems.extend(references(objects, facts));
    problems.extend(app_coverage(objects, facts));
    problems.extend(autoscaling(objects));
    problems.extend(start_budget(objects));
    problems.extend(payment_provider(overlay, objects));
    problems.extend(otlp_endpoints(objects));
    problems
}

/// An executor's OTLP endpoints (`deploymentConfig.otel`), which the pods get as
/// `OTEL_EXPORTER_OTLP_*ENDPOINT`, are what Spin's exporter can use: absolute
/// `http(s)://` URLs; the combined one a base (the exporter appends `/v1/traces`, so
/// one already ending in it would post to `/v1/traces/v1/traces`), the traces one
/// the full URL (used as is, so it ends in `/v1/traces`).
fn otlp_endpoints(objects: &[Value]) -> Vec<String> {
    let mut problems = Vec::new();
    for executor in of_kind(objects, "SpinAppExecutor") {
        let Some(otel) = executor["spec"]["deploymentConfig"]["otel"].as_object() else {
            continue;
        };
        for (field, endpoint) in otel {
            let Some(endpoint) = endpoint.as_str() else {
                continue;
            };
            let host = endpoint
                .strip_prefix("http://")
                .or_else(|| endpoint.strip_prefix("https://"))
                .map(|rest| rest.split(['/', ':']).next().unwrap_or(""));
            let problem = match (field.as_str(), host) {
                (_, None) => Some("is not an http:// or https:// URL"),
                (_, Some("")) => Some("names no host"),
                ("exporter_otlp_endpoint", _)
                    if endpoint.trim_end_matches('/').ends_with("/v1/traces") =>
                {
                    Some("is a base URL: the exporter appends /v1/traces itself")
                }
                ("exporter_otlp_traces_endpoint", _)
                    if !endpoint.trim_end_matches('/').ends_with("/v1/traces") =>
                {
                    Some("is used as is: it must end in /v1/traces")
                }
                _ => None,
            };
            if let Some(problem) = problem {
                problems.push(format!(
                    "{}: otel.{field} `{endpoint}` {problem}",
                    describe(executor)
                ));
            }
        }
    }
    problems
}

/// The longest start measured on SpinKube's shim: every component compiled at pod
/// start, 109 s to the first answer on a busy 2-core node (with the earlier image; the
/// first start of an image on a node still compiles every component).
const LONGEST_MEASURED_START_SECONDS: i64 = 109;

/// A liveness probe lets a pod start: SpinApp has no startup probe, so the liveness
/// probe's first failures must outlast the slowest measured start, or a busy node
/// restarts the pod before it ever answers (Kubernetes' defaults: 10 s delay, 3
/// failures 10 s apart).
fn start_budget(objects: &[Value]) -> Vec<String> {
    let mut problems = Vec::new();
    for app in of_kind(objects, "SpinApp") {
        let liveness = &app["spec"]["checks"]["liveness"];
        if liveness.is_null() {
            continue;
        }
        let field = |name: &str, default: i64| liveness[name].as_i64().unwrap_or(default);
        let budget = field("initialDelaySeconds", 10)
            + field("failureThreshold", 3) * field("periodSeconds", 10);
        if budget < LONGEST_MEASURED_START_SECONDS * 3 / 2 {
            problems.push(format!(
                "{}: the liveness probe restarts a pod that has not answered within {budget} s, \
                 but a start has been measured at {LONGEST_MEASURED_START_SECONDS} s; give it \
                 half as much again (initialDelaySeconds + failureThreshold × periodSeconds)",
                describe(app)
            ));
        }
    }
    problems
}

/// An autoscaled SpinApp has a HorizontalPodAutoscaler on its Deployment (which
/// spin-operator names after it), and every autoscaler scales such a SpinApp.
fn autoscaling(objects: &[Value]) -> Vec<String> {
    let autoscaled: BTreeSet<&str> = of_kind(objects, "SpinApp")
        .filter(|app| app["spec"]["enableAutoscaling"] == true)
        .map(name_of)
        .collect();
    let mut targets = BTreeSet::new();
    let mut problems = Vec::new();
    for hpa in of_kind(objects, "HorizontalPodAutoscaler") {
        let target = &hpa["spec"]["scaleTargetRef"];
        let name = target["name"].as_str().unwrap_or("");
        if target["kind"] != "Deployment" || !autoscaled.contains(name) {
            problems.push(format!(
                "{}: scales {}/{name}, which is not the Deployment of a SpinApp with \
                 `enableAutoscaling: true`",
                describe(hpa),
                target["kind"].as_str().unwrap_or("?")
            ));
        }
        targets.insert(name);
    }
    for app in autoscaled.difference(&targets) {
        problems.push(format!(
            "SpinApp/{app}: `enableAutoscaling: true`, but no HorizontalPodAutoscaler scales it"
        ));
    }
    problems
}

fn name_of(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or("")
}

fn of_kind<'a>(objects: &'a [Value], kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    objects.iter().filter(move |object| object["kind"] == kind)
}

fn data_keys(object: &Value, fields: &[&str]) -> BTreeSet<String> {
    fields
        .iter()
        .filter_map(|field| object[*field].as_object())
        .flat_map(|data| data.keys().cloned())
        .collect()
}

/// What spin-operator's admission webhook refuses.
fn webhook_rules(objects: &[Value]) -> Vec<String> {
    let mut problems = Vec::new();
    let executors: BTreeSet<&str> = of_kind(objects, "SpinAppExecutor").map(name_of).collect();
    for app in of_kind(objects, "SpinApp") {
        let spec = &app["spec"];
        if spec["enableAutoscaling"] == true && !spec["replicas"].is_null() {
            problems.push(format!(
                "{}: `replicas` cannot be set with `enableAutoscaling: true`",
                describe(app)
            ));
        }
        if spec["replicas"]
            .as_i64()
            .is_some_and(|replicas| replicas < 1)
        {
            problems.push(format!("{}: `replicas` must be at least 1", describe(app)));
        }
        match spec["executor"].as_str() {
            Some(executor) if !executors.contains(executor) => problems.push(format!(
                "{}: executor `{executor}` is not among the SpinAppExecutors ({executors:?})",
                describe(app)
            )),
            Some(_) => {}
            None => problems.push(format!("{}: names no executor", describe(app))),
        }
    }
    problems
}

/// Every ConfigMap, Secret, claim and volume referenced exists (with its key).
fn references(objects: &[Value], facts: &Facts) -> Vec<String> {
    let config_maps: BTreeMap<&str, BTreeSet<String>> = of_kind(objects, "ConfigMap")
        .map(|map| (name_of(map), data_keys(map, &["data", "binaryData"])))
        .collect();
    let mut secrets: BTreeMap<&str, BTreeSet<String>> = of_kind(objects, "Secret")
        .map(|secret| (name_of(secret), data_keys(secret, &["data", "stringData"])))
        .collect();
    for (name, keys) in &facts.user_secrets {
        secrets
            .entry(name)
            .or_default()
            .extend(keys.iter().cloned());
    }
    let claims: BTreeSet<&str> = of_kind(objects, "PersistentVolumeClaim")
        .map(name_of)
        .collect();
    let mut problems = Vec::new();
    for object in objects {
        let mut found = Vec::new();
        walk(object, &mut |key, value| {
            found.push((key.to_owned(), value.clone()))
        });
        for (key, value) in found {
            let name = value["name"].as_str().unwrap_or("");
            let optional = value["optional"] == true;
            let missing = match key.as_str() {
                "configMapKeyRef" | "secretKeyRef" => {
                    let wanted = value["key"].as_str().unwrap_or("");
                    let known = if key == "configMapKeyRef" {
                        &config_maps
                    } else {
                        &secrets
                    };
                    match known.get(name) {
                        None => Some(format!("{key}: there is no {name}")),
                        Some(keys) if !keys.contains(wanted) => {
                            Some(format!("{key}: {name} has no key `{wanted}`"))
                        }
                        Some(_) => None,
                    }
                }
                "configMap" if !config_maps.contains_key(name) => Some(format!(
                    "volume from ConfigMap {name}, which does not exist"
                )),
                "persistentVolumeClaim" => {
                    let claim = value["claimName"].as_str().unwrap_or("");
                    (!claims.contains(claim))
                        .then(|| format!("claim {claim}, which does not exist"))
                }
                _ => None,
            };
            if let Some(message) = missing.filter(|_| !optional) {
                problems.push(format!("{}: {message}", describe(object)));
            }
        }
    }
    for app in of_kind(objects, "SpinApp") {
        let volumes: BTreeSet<&str> = app["spec"]["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|volume| volume["name"].as_str())
            .collect();
        for mount in app["spec"]["volumeMounts"].as_array().into_iter().flatten() {
            let name = mount["name"].as_str().unwrap_or("");
            if !volumes.contains(name) {
                problems.push(format!(
                    "{}: mounts volume {name}, which it lacks",
                    describe(app)
                ));
            }
        }
    }
    problems
}

/// Calls `visit` for every `(key, value)` pair below `value` whose key is a reference.
fn walk(value: &Value, visit: &mut impl FnMut(&str, &Value)) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                if matches!(
                    key.as_str(),
                    "configMapKeyRef" | "secretKeyRef" | "configMap" | "persistentVolumeClaim"
                ) && child.is_object()
                {
                    visit(key, child);
                }
                walk(child, visit);
            }
        }
        Value::Array(items) => items.iter().for_each(|item| walk(item, visit)),
        _ => {}
    }
}

/// The SpinApps deploy spin.toml whole: known components, all of them, the databases
/// and variables they need.
fn app_coverage(objects: &[Value], facts: &Facts) -> Vec<String> {
    let mut problems = Vec::new();
    let mut deployed = BTreeSet::new();
    for app in of_kind(objects, "SpinApp") {
        let spec = &app["spec"];
        // No `components`: the whole app.
        let components: Vec<String> = match spec["components"].as_array() {
            Some(list) => list
                .iter()
                .filter_map(|id| id.as_str().map(str::to_owned))
                .collect(),
            None => facts.components.keys().cloned().collect(),
        };
        let configured: BTreeSet<&str> = spec["runtimeConfig"]["sqliteDatabases"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|database| database["name"].as_str())
            .collect();
        for id in &components {
            let Some(databases) = facts.components.get(id) else {
                problems.push(format!(
                    "{}: component `{id}` is not in spin.toml",
                    describe(app)
                ));
                continue;
            };
            for database in databases {
                if database != "default" && !configured.contains(database.as_str()) {
                    problems.push(format!(
                        "{}: component `{id}` opens database `{database}`, which its \
                         runtimeConfig.sqliteDatabases does not configure",
                        describe(app)
                    ));
                }
            }
            deployed.insert(id.clone());
        }
        let given: BTreeSet<&str> = spec["variables"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|variable| variable["name"].as_str())
            .collect();
        for (name, required) in &facts.variables {
            if given.contains(name.as_str()) {
                continue;
            }
            if *required {
                problems.push(format!(
                    "{}: the required variable `{name}` is not given",
                    describe(app)
                ));
            } else if ALWAYS_GIVEN.contains(&name.as_str()) {
                problems.push(format!(
                    "{}: the variable `{name}` is not given: a deployment says which \
                     payment provider it runs (`stripe`; `sandbox` only in a demo)",
                    describe(app)
                ));
            }
        }
        for name in given {
            if !facts.variables.contains_key(name) {
                problems.push(format!(
                    "{}: variable `{name}` is not declared in spin.toml",
                    describe(app)
                ));
            }
        }
    }
    for id in facts.components.keys() {
        if !deployed.contains(id) {
            problems.push(format!("component `{id}` of spin.toml is in no SpinApp"));
        }
    }
    problems
}

/// The sandbox payment provider takes Stripe's test tokens and moves no money: a
/// SpinApp may run it only in an overlay whose directory name contains `demo`. So that
/// this holds, `payment_provider` must be visible here (a value, or a ConfigMap key of
/// the overlay) and be one payments knows. Its absence is `app_coverage`'s, a missing
/// ConfigMap `references`'.
fn payment_provider(overlay: &str, objects: &[Value]) -> Vec<String> {
    let is_demo = overlay.to_ascii_lowercase().contains(DEMO);
    let mut problems = Vec::new();
    for app in of_kind(objects, "SpinApp") {
        let Some(variable) = app["spec"]["variables"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|variable| variable["name"] == "payment_provider")
        else {
            continue;
        };
        let value = match variable_value(variable, objects) {
            Ok(Some(value)) => value,
            Ok(None) => continue,
            Err(problem) => {
                problems.push(format!("{}: `payment_provider` {problem}", describe(app)));
                continue;
            }
        };
        match value.trim() {
            "stripe" => {}
            "sandbox" if is_demo => {}
            "sandbox" => problems.push(format!(
                "{}: runs the sandbox payment provider (`payment_provider` is `sandbox`), \
                 which marks orders paid and charges nothing: only an overlay whose \
                 directory name contains `{DEMO}` may (this one is `{overlay}`)",
                describe(app)
            )),
            // Not repeated: it may be a key pasted into the wrong place.
            _ => problems.push(format!(
                "{}: `payment_provider` is neither `stripe` nor `sandbox`: payments would \
                 refuse every payment",
                describe(app)
            )),
        }
    }
    problems
}

/// The value a SpinApp variable resolves to: its `value`, or its ConfigMap key in
/// `objects` (`None` when that does not exist: `references` reports it). `Err` says
/// why the value is out of this check's sight.
fn variable_value(variable: &Value, objects: &[Value]) -> Result<Option<String>, String> {
    if let Some(value) = variable["value"].as_str() {
        return Ok(Some(value.to_owned()));
    }
    let from = &variable["valueFrom"];
    if from["configMapKeyRef"].is_object() {
        let reference = &from["configMapKeyRef"];
        let key = reference["key"].as_str().unwrap_or("");
        return Ok(of_kind(objects, "ConfigMap")
            .find(|map| reference["name"] == name_of(map))
            .and_then(|map| map["data"][key].as_str())
            .map(str::to_owned));
    }
    if from["secretKeyRef"].is_object() {
        return Err(
            "comes from a Secret, which this check cannot read: give it as a \
                    `value` or from a ConfigMap (it is not secret)"
                .to_owned(),
        );
    }
    Err("has neither a `value` nor a ConfigMap key".to_owned())
}

/// Core kinds against Kubernetes' schemas, strictly; one message per failure.
fn validate_core(
    project: &Project,
    tools: &tools::Tools,
    dir: &Path,
    objects: &[&Value],
) -> Result<Vec<String>> {
    std::fs::create_dir_all(dir)?;
    let file = dir.join("core.yaml");
    let mut text = String::new();
    for object in objects {
        text.push_str("---\n");
        text.push_str(&serde_yaml::to_string(object)?);
    }
    std::fs::write(&file, text)?;
    let output = project
        .sh
        .cmd("python3")
        .args([
            "-m",
            "kubernetes_validate",
            "--strict",
            "--quiet",
            "--no-warn",
        ])
        .args(["--kubernetes-version", tools::KUBERNETES_VERSION])
        .arg(&file)
        .env("PYTHONPATH", &tools.python_path)
        .quiet()
        .ignore_status()
        .output()?;
    let printed = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    let mut problems: Vec<String> = printed
        .lines()
        .filter(|line| line.starts_with("ERROR"))
        .map(|line| line.replace(&format!("{} ", file.display()), ""))
        .collect();
    if !output.status.success() && problems.is_empty() {
        problems.push(format!("kubernetes-validate failed: {printed}"));
    }
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default overlay's objects, as kustomize would combine them (without
    /// kustomize: these tests need no tool).
    fn default_overlay() -> Vec<Value> {
        let root = crate::checkout();
        [
            "k8s/SpinKube/base/executor.yaml",
            "k8s/SpinKube/base/config.yaml",
            "k8s/SpinKube/overlays/default/data.yaml",
            "k8s/SpinKube/overlays/default/spinapp.yaml",
        ]
        .iter()
        .flat_map(|file| {
            parse_documents(&std::fs::read_to_string(root.join(file)).unwrap()).unwrap()
        })
        .collect()
    }

    /// The problems found in the default overlay after `change` to its SpinApp, with
    /// each schema at hand: the project's, and SpinKube's CRDs where `SPINKUBE_CRDS`
    /// names them (as in CI). Every rule must hold with both.
    fn problems_with(change: impl Fn(&mut Value)) -> Vec<(String, Vec<String>)> {
        overlay_problems("default", |objects| {
            change(
                objects
                    .iter_mut()
                    .find(|object| object["kind"] == "SpinApp")
                    .unwrap(),
            )
        })
    }

    /// The same, with the default overlay's objects changed by `change` and its
    /// directory named `overlay`.
    fn overlay_problems(
        overlay: &str,
        change: impl Fn(&mut Vec<Value>),
    ) -> Vec<(String, Vec<String>)> {
        let mut sources = vec![spinkube::Source::Project];
        if let Ok(crds @ spinkube::Source::Crds(_)) = spinkube::Source::choose(&[]) {
            sources.push(crds);
        }
        sources
            .into_iter()
            .map(|source| {
                let label = source.to_string();
                let schemas = spinkube::Schemas::load(source).unwrap();
                let facts = Facts::load(&crate::checkout(), schemas).unwrap();
                let mut objects = default_overlay();
                change(&mut objects);
                (label, check_objects(overlay, &objects, &facts))
            })
            .collect()
    }

    fn assert_one_problem_mentions(problems: &[(String, Vec<String>)], text: &str) {
        for (schemas, problems) in problems {
            assert!(
                problems.iter().any(|problem| problem.contains(text)),
                "with {schemas}, no problem mentions {text:?}: {problems:#?}"
            );
        }
    }

    fn assert_no_problem(problems: &[(String, Vec<String>)]) {
        for (schemas, problems) in problems {
            assert_eq!(problems, &Vec::<String>::new(), "with {schemas}");
        }
    }

    /// The SpinApp's `payment_provider` entry (the overlays give one).
    fn payment_provider_of(objects: &mut [Value]) -> &mut Value {
        objects
            .iter_mut()
            .find(|object| object["kind"] == "SpinApp")
            .and_then(|app| app["spec"]["variables"].as_array_mut())
            .and_then(|variables| {
                variables
                    .iter_mut()
                    .find(|variable| variable["name"] == "payment_provider")
            })
            .expect("the SpinApp gives payment_provider")
    }

    /// `ticketing-config`'s `payment_provider`, which the overlays' SpinApps read.
    fn config_says(provider: &'static str) -> impl Fn(&mut Vec<Value>) {
        move |objects| {
            let config = objects
                .iter_mut()
                .find(|object| {
                    object["kind"] == "ConfigMap" && name_of(object) == "ticketing-config"
                })
                .expect("the base has ticketing-config");
            config["data"]["payment_provider"] = json!(provider);
        }
    }

    #[test]
    fn the_sandbox_runs_only_in_an_overlay_named_as_a_demo() {
        const SANDBOX: &str = "runs the sandbox payment provider";
        // Through the ConfigMap key the overlays read, and through a literal value.
        let literal = |objects: &mut Vec<Value>| {
            *payment_provider_of(objects) = json!({"name": "payment_provider", "value": "sandbox"});
        };
        assert_one_problem_mentions(
            &overlay_problems("default", config_says("sandbox")),
            SANDBOX,
        );
        assert_one_problem_mentions(&overlay_problems("default", literal), SANDBOX);
        assert_one_problem_mentions(
            &overlay_problems("staging", literal),
            "this one is `staging`",
        );
        assert_no_problem(&overlay_problems("demo", config_says("sandbox")));
        assert_no_problem(&overlay_problems("trade-show-demo", literal));
        // Stripe, anywhere.
        assert_no_problem(&overlay_problems("default", config_says("stripe")));
    }

    #[test]
    fn the_payment_provider_is_given_known_and_visible() {
        let problems = problems_with(|app| {
            app["spec"]["variables"]
                .as_array_mut()
                .unwrap()
                .retain(|variable| variable["name"] != "payment_provider");
        });
        assert_one_problem_mentions(&problems, "the variable `payment_provider` is not given");
        for overlay in ["default", "demo"] {
            let problems = overlay_problems(overlay, config_says("sk_live_pasted_here"));
            assert_one_problem_mentions(&problems, "neither `stripe` nor `sandbox`");
            for (_, problems) in &problems {
                assert!(
                    problems.iter().all(|problem| !problem.contains("sk_live")),
                    "{problems:?}"
                );
            }
        }
        let problems = overlay_problems("default", |objects| {
            *payment_provider_of(objects) = json!({
                "name": "payment_provider",
                "valueFrom": {"secretKeyRef": {"name": "ticketing-secrets", "key": "jwt_key"}}
            });
        });
        assert_one_problem_mentions(&problems, "comes from a Secret");
    }

    #[test]
    fn otlp_endpoints_are_urls_the_exporter_can_use() {
        let with_otel = |otel: Value| {
            move |objects: &mut Vec<Value>| {
                let executor = objects
                    .iter_mut()
                    .find(|object| object["kind"] == "SpinAppExecutor")
                    .unwrap();
                executor["spec"]["deploymentConfig"]["otel"] = otel.clone();
            }
        };
        let component = std::fs::read_to_string(
            crate::checkout().join("k8s/SpinKube/components/tracing/kustomization.yaml"),
        )
        .unwrap();
        assert!(component.contains("exporter_otlp_endpoint: http://otel-collector"));
        assert_no_problem(&overlay_problems(
            "traced",
            with_otel(json!({
                "exporter_otlp_endpoint": "http://otel-collector.observability.svc.cluster.local:4318",
                "exporter_otlp_traces_endpoint": "https://tempo.example.com/v1/traces"
            })),
        ));
        for (otel, problem) in [
            (
                json!({"exporter_otlp_endpoint": "otel-collector:4318"}),
                "is not an http:// or https:// URL",
            ),
            (
                json!({"exporter_otlp_endpoint": "http://:4318"}),
                "names no host",
            ),
            (
                json!({"exporter_otlp_endpoint": "http://collector:4318/v1/traces"}),
                "appends /v1/traces itself",
            ),
            (
                json!({"exporter_otlp_traces_endpoint": "http://collector:4318"}),
                "must end in /v1/traces",
            ),
        ] {
            assert_one_problem_mentions(&overlay_problems("traced", with_otel(otel)), problem);
        }
        // A misspelled setting is no setting: the schema refuses it.
        assert_one_problem_mentions(
            &overlay_problems(
                "traced",
                with_otel(json!({"exporter_otlp_endpiont": "http://collector:4318"})),
            ),
            "exporter_otlp_endpiont",
        );
    }

    #[test]
    fn a_liveness_probe_must_outlast_the_slowest_measured_start() {
        let problems = problems_with(|app| {
            let liveness = &mut app["spec"]["checks"]["liveness"];
            liveness["initialDelaySeconds"] = json!(30);
            liveness["periodSeconds"] = json!(15);
            liveness["failureThreshold"] = json!(3);
        });
        assert_one_problem_mentions(&problems, "has not answered within 75 s");
    }

    #[test]
    fn the_default_overlay_is_valid() {
        for (schemas, problems) in problems_with(|_| {}) {
            assert_eq!(problems, Vec::<String>::new(), "with {schemas}");
        }
    }

    #[test]
    fn a_misspelled_field_fails() {
        let problems = problems_with(|app| {
            let components = app["spec"]["replicas"].take();
            app["spec"]["replicaz"] = components;
        });
        assert_one_problem_mentions(&problems, "replicaz");
    }

    #[test]
    fn a_wrong_type_fails() {
        let problems = problems_with(|app| app["spec"]["replicas"] = json!("two"));
        assert_one_problem_mentions(&problems, "/spec/replicas");
    }

    #[test]
    fn a_missing_key_fails() {
        let problems = problems_with(|app| {
            app["spec"]["variables"][0]["valueFrom"]["secretKeyRef"]["key"] = json!("jwt_kye");
        });
        assert_one_problem_mentions(&problems, "ticketing-secrets has no key `jwt_kye`");
        let problems = problems_with(|app| {
            app["spec"]["variables"][2]["valueFrom"]["configMapKeyRef"]["name"] = json!("cfg");
        });
        assert_one_problem_mentions(&problems, "there is no cfg");
    }

    #[test]
    fn the_webhooks_rules_hold() {
        let problems = problems_with(|app| app["spec"]["enableAutoscaling"] = json!(true));
        assert_one_problem_mentions(&problems, "cannot be set with `enableAutoscaling");
        assert_one_problem_mentions(&problems, "no HorizontalPodAutoscaler scales it");
        let problems = problems_with(|app| app["spec"]["replicas"] = json!(0));
        assert_one_problem_mentions(&problems, "at least 1");
        let problems = problems_with(|app| app["spec"]["executor"] = json!("other"));
        assert_one_problem_mentions(&problems, "executor `other`");
    }

    #[test]
    fn the_app_must_be_deployed_whole() {
        let problems = problems_with(|app| {
            app["spec"]["components"] = json!(["auth-api", "tickets-apy"]);
        });
        assert_one_problem_mentions(&problems, "component `tickets-apy` is not in spin.toml");
        assert_one_problem_mentions(&problems, "component `web` of spin.toml is in no SpinApp");
        let problems = problems_with(|app| {
            app["spec"]["runtimeConfig"]["sqliteDatabases"]
                .as_array_mut()
                .unwrap()
                .retain(|database| database["name"] != "orders");
        });
        assert_one_problem_mentions(&problems, "opens database `orders`");
        let problems = problems_with(|app| {
            app["spec"]["variables"].as_array_mut().unwrap().remove(0);
        });
        assert_one_problem_mentions(&problems, "required variable `jwt_key`");
        let problems =
            problems_with(|app| app["spec"]["variables"][1]["name"] = json!("stripe_key"));
        assert_one_problem_mentions(&problems, "`stripe_key` is not declared");
        let problems = problems_with(|app| app["spec"]["volumeMounts"][0]["name"] = json!("dta"));
        assert_one_problem_mentions(&problems, "mounts volume dta");
    }
}

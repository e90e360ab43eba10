//! `cargo xtask image [--push REFERENCE]`: the app as an OCI artifact laid out the way
//! `spin registry push` (Spin 3.6.3, spinframework/spin `crates/oci/src/client.rs`)
//! lays out an app, so that SpinKube's shim can precompile its components.
//!
//! The manifest's layers, in order, without repeats (components sharing a `.wasm`
//! share its layer):
//!
//! - each component's Wasm, `application/vnd.wasm.content.layer.v1+wasm`, then its
//!   files, one `application/vnd.wasm.content.layer.v1+data` layer each (files of at
//!   most 128 bytes travel inline in the locked app instead);
//! - last, Spin's locked app (`locked.rs`), `application/vnd.fermyon.spin.application.v1+config`,
//!   which names each Wasm and file by the `sha256:` digest of its layer.
//!
//! The config is not the locked app (Spin pushed it so before 2.0, spinframework/spin
//! #1882) but an OCI image config (`application/vnd.oci.image.config.v1+json`), as Spin
//! writes it: architecture `wasm`, os `Wasip1`, no layers of a file system, and the
//! label `com.fermyon.spin.lockedAppDigest` with the locked app's digest. runwasi reads
//! the config as an OCI platform (below): a locked app there, with no `architecture`,
//! would not be taken for a Wasm image, and nothing would be precompiled. The manifest's
//! annotations are Spin's `org.opencontainers.image.*` title, description and version
//! from `[application]`, but not `created`, which would change every push's digest.
//! Spin's archive layers (`application/vnd.wasm.content.bundle.v1.tar+gzip`, one
//! tarball of a component's files) are not made: Spin falls back to them only past 500
//! layers, or when `SPIN_OCI_ARCHIVE_LAYERS` is set, and this image refuses that many.
//! The Wasm layers carry the modules cargo builds; `spin registry push` would turn them
//! into components first, and the shim (before precompiling) and Spin's loader do the
//! same with the same code (`spin-componentize`), so both run the same.
//!
//! What the shim does with it (containerd-shim-spin v0.24, on runwasi's
//! containerd-shim-wasm 1.0): runwasi (`crates/containerd-shim-wasm/src/containerd/client.rs`,
//! `load_modules`) reads the image config as an OCI platform and goes on only when its
//! architecture is `wasm`; it keeps the layers whose media types the shim supports
//! (`containerd-shim-spin/src/engine.rs`, `supported_layers_types`: the Wasm, data,
//! archive and locked-app types above, and `application/wasm`) and, unless the image
//! already has the label `runwasi.io/precompiled/spin/<hash>` (a hash of the shim's
//! Wasmtime compatibility), hands them to the shim's `Compiler`. That compiles the
//! layers of a Wasm media type (`utils.rs`, `is_wasm_content`) and nothing else; runwasi
//! stores the results in containerd's content store, labels the original layers with
//! them, and on later starts of the image on that node reads the compiled code instead
//! of compiling. The shim writes the locked app to `/spin.json`, the Wasm and data
//! layers to Spin's cache by digest (`source.rs`), and loads the components as
//! precompiled. So a node compiles the app once, not at every pod start. The old
//! `FROM scratch` image (spin.toml and its files in a tar layer) has no Wasm layers, so
//! runwasi gave the shim none to precompile and Spin compiled every component at every
//! start.
//!
//! The image is written as an OCI image layout to `target/image/` and, with `--push`,
//! pushed to a registry and pulled back: every layer compared, and the pulled locked
//! app resolved as Spin's loader would into each component's Wasm and files, which
//! must be the built ones. The same build gives the same digests: files in sorted
//! order, nothing timestamped. Credentials for `--push`, when the registry wants them:
//! `TICKETING_REGISTRY_USER` and `TICKETING_REGISTRY_PASSWORD`. Registries on 127.0.0.1
//! or localhost are spoken to over plain HTTP, others over HTTPS.

mod locked;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::config::{Architecture, ConfigFile, Os};
use oci_client::manifest::OciImageManifest;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde_json::json;
use sha2::{Digest, Sha256};

use self::locked::{AppContent, ComponentContent, LockedApp};
use crate::manifest::{self, SpinApp};
use crate::{Project, build, step};

const LAYOUT_DIR: &str = "target/image/";

/// A component's Wasm (what runwasi hands to the shim's compiler).
const WASM_LAYER: &str = "application/vnd.wasm.content.layer.v1+wasm";
/// A file a component mounts.
const DATA_LAYER: &str = "application/vnd.wasm.content.layer.v1+data";
/// Spin's locked app.
const LOCKED_APP_LAYER: &str = "application/vnd.fermyon.spin.application.v1+config";
/// The config's label naming the locked app's digest.
const LOCKED_APP_DIGEST_LABEL: &str = "com.fermyon.spin.lockedAppDigest";
/// The most layers an image may have (Spin's limit, the lowest of well-known
/// registries').
const MAX_LAYERS: usize = 500;

/// The image of the app.
pub struct Image {
    /// What each component runs with, as built.
    content: AppContent,
    /// The Wasm and data layers, then the locked app.
    layers: Vec<ImageLayer>,
    config: Config,
    annotations: BTreeMap<String, String>,
}

pub fn run(project: &Project, args: &[String]) -> Result<()> {
    let push = match args {
        [] => None,
        [flag, reference] if flag == "--push" => Some(reference.clone()),
        _ => bail!("usage: cargo xtask image [--push <registry>/<name>:<tag>]"),
    };
    build::build_apps(project, &[build::APP])?;
    let image = Image::assemble(&project.root)?;
    step(&format!("Writing the OCI image layout to {LAYOUT_DIR}"));
    image.write_layout(&project.root.join(LAYOUT_DIR))?;
    let files: usize = image.content.values().map(|c| c.files.len()).sum();
    let bytes: usize = image.layers.iter().map(|layer| layer.data.len()).sum();
    eprintln!(
        "{} components, {files} files; {} layers, {bytes} bytes; manifest {}",
        image.content.len(),
        image.layers.len(),
        digest(&image.manifest_bytes()?),
    );
    if let Some(reference) = push {
        push_and_check(&image, &reference)?;
    }
    Ok(())
}

impl Image {
    /// The image of the app in `root` as built (spin.toml and what it names).
    pub fn assemble(root: &Path) -> Result<Image> {
        let app = manifest::load(&root.join(build::APP))?;
        let content = read_content(&app)?;
        Image::of(&app, content)
    }

    fn of(app: &SpinApp, content: AppContent) -> Result<Image> {
        let locked = LockedApp::new(app, &content)?;
        let mut layers: Vec<ImageLayer> = Vec::new();
        let mut add = |data: &[u8], media_type: &str| {
            let layer = ImageLayer::new(data.to_vec(), media_type.to_owned(), None);
            if !layers.contains(&layer) {
                layers.push(layer);
            }
        };
        for component in &locked.components {
            let own = &content[&component.id];
            add(&own.wasm, WASM_LAYER);
            for file in &component.files {
                if file.content.inline.is_none() {
                    add(&own.files[&file.path], DATA_LAYER);
                }
            }
        }
        ensure!(
            layers.len() < MAX_LAYERS,
            "{} Wasm and file layers: more than registries take (Spin would put each \
             component's files in one archive layer, which this image does not make)",
            layers.len()
        );
        let locked_layer = ImageLayer::new(
            serde_json::to_vec(&locked)?,
            LOCKED_APP_LAYER.to_owned(),
            None,
        );
        let config = config_naming(&locked_layer.sha256_digest())?;
        layers.push(locked_layer);
        Ok(Image {
            content,
            layers,
            config,
            annotations: annotations(&app.application),
        })
    }

    fn manifest(&self) -> OciImageManifest {
        let annotations = (!self.annotations.is_empty()).then(|| self.annotations.clone());
        OciImageManifest::build(&self.layers, &self.config, annotations)
    }

    /// The manifest as oci-client pushes it (canonical JSON: sorted keys, no
    /// whitespace), so the layout and the registry name it by the same digest.
    fn manifest_bytes(&self) -> Result<Vec<u8>> {
        let value = serde_json::to_value(self.manifest())?;
        Ok(serde_json::to_vec(&sorted(value))?)
    }

    /// An OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/`).
    fn write_layout(&self, dir: &Path) -> Result<()> {
        let _ = std::fs::remove_dir_all(dir);
        let blobs = dir.join("blobs/sha256");
        std::fs::create_dir_all(&blobs)?;
        let manifest = self.manifest_bytes()?;
        let layers = self.layers.iter().map(|layer| &layer.data[..]);
        for blob in layers.chain([&self.config.data[..], &manifest[..]]) {
            std::fs::write(blobs.join(hex_sha256(blob)), blob)?;
        }
        std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)?;
        let index = json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": oci_client::manifest::OCI_IMAGE_MEDIA_TYPE,
                "digest": digest(&manifest),
                "size": manifest.len(),
            }],
        });
        std::fs::write(dir.join("index.json"), serde_json::to_vec_pretty(&index)?)?;
        Ok(())
    }
}

/// Spin's image config: an OCI one whose architecture, `wasm`, tells runwasi this is a
/// Wasm image, and whose label makes each app's config (so its image id) its own.
fn config_naming(locked_app_digest: &str) -> Result<Config> {
    let labels = HashMap::from([(
        LOCKED_APP_DIGEST_LABEL.to_owned(),
        locked_app_digest.to_owned(),
    )]);
    let file = ConfigFile {
        architecture: Architecture::Wasm,
        os: Os::Other("Wasip1".to_owned()),
        config: Some(oci_client::config::Config {
            labels: Some(labels),
            ..Default::default()
        }),
        ..Default::default()
    };
    Ok(Config::oci_v1_from_config_file(file, None)?)
}

/// The annotations `spin registry push` infers from `[application]`, but `created`.
fn annotations(application: &manifest::Application) -> BTreeMap<String, String> {
    use oci_client::annotations::{
        ORG_OPENCONTAINERS_IMAGE_AUTHORS, ORG_OPENCONTAINERS_IMAGE_DESCRIPTION,
        ORG_OPENCONTAINERS_IMAGE_TITLE, ORG_OPENCONTAINERS_IMAGE_VERSION,
    };
    let values = [
        (
            ORG_OPENCONTAINERS_IMAGE_AUTHORS,
            application.authors.join(", "),
        ),
        (ORG_OPENCONTAINERS_IMAGE_TITLE, application.name.clone()),
        (
            ORG_OPENCONTAINERS_IMAGE_DESCRIPTION,
            application.description.clone().unwrap_or_default(),
        ),
        (
            ORG_OPENCONTAINERS_IMAGE_VERSION,
            application.version.clone().unwrap_or_default(),
        ),
    ];
    values
        .into_iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(key, value)| (key.to_owned(), value))
        .collect()
}

/// `value` with every object's keys in sorted order.
fn sorted(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let entries: BTreeMap<String, Value> = map
                .into_iter()
                .map(|(key, value)| (key, sorted(value)))
                .collect();
            Value::Object(entries.into_iter().collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// Each component's Wasm and the files it mounts, read from the build.
fn read_content(app: &SpinApp) -> Result<AppContent> {
    let mut content = AppContent::new();
    for component in &app.components {
        let wasm = read(&app.dir.join(&component.source))?;
        let mut files = BTreeMap::new();
        for mount in &component.files {
            add_mount(&app.dir.join(&mount.source), &mount.destination, &mut files)?;
        }
        content.insert(component.id.clone(), ComponentContent { wasm, files });
    }
    Ok(content)
}

/// Adds the file `source` at `destination` (a path in the guest), or every file below
/// the directory `source` below `destination`.
fn add_mount(
    source: &Path,
    destination: &str,
    files: &mut BTreeMap<String, Vec<u8>>,
) -> Result<()> {
    if source.is_dir() {
        for entry in std::fs::read_dir(source)? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_str().context("a file name that is not UTF-8")?;
            let below = match destination {
                "" => name.to_owned(),
                _ => format!("{destination}/{name}"),
            };
            add_mount(&entry.path(), &below, files)?;
        }
        return Ok(());
    }
    ensure!(
        !destination.is_empty(),
        "{} is a file mounted as the guest's root directory",
        source.display()
    );
    files.insert(destination.to_owned(), read(source)?);
    Ok(())
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| {
        format!(
            "{} (spin.toml names it): build first (`cargo xtask build`)",
            path.display()
        )
    })
}

/// `sha256:<hex>`, the digest OCI and Spin name content by.
fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex_sha256(bytes))
}

fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Pushes the image, pulls it back and compares every layer, then every component's
/// Wasm and files as the pulled locked app leads to them.
fn push_and_check(image: &Image, reference: &str) -> Result<()> {
    let reference: Reference = reference
        .parse()
        .with_context(|| format!("`{reference}` is not an image reference"))?;
    let registry = reference.resolve_registry().to_owned();
    let is_local = ["127.0.0.1", "localhost", "[::1]"]
        .iter()
        .any(|host| registry == *host || registry.starts_with(&format!("{host}:")));
    let auth = match (
        std::env::var("TICKETING_REGISTRY_USER"),
        std::env::var("TICKETING_REGISTRY_PASSWORD"),
    ) {
        (Ok(user), Ok(password)) => RegistryAuth::Basic(user, password),
        _ => RegistryAuth::Anonymous,
    };
    // reqwest is built without a crypto provider of its own: ring's serves HTTPS.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = Client::new(ClientConfig {
        protocol: if is_local {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        },
        ..Default::default()
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;

    step(&format!("Pushing {reference}"));
    let pushed = runtime
        .block_on(client.push(
            &reference,
            &image.layers,
            image.config.clone(),
            &auth,
            Some(image.manifest()),
        ))
        .with_context(|| format!("pushing {reference}"))?;
    eprintln!("pushed: {}", pushed.manifest_url);
    let manifest_digest = digest(&image.manifest_bytes()?);
    ensure!(
        pushed.manifest_url.ends_with(&manifest_digest),
        "the registry names the manifest otherwise than the layout ({manifest_digest})"
    );

    step(&format!(
        "Pulling {reference} back and comparing every layer and file"
    ));
    let pulled = runtime
        .block_on(client.pull(
            &reference,
            &auth,
            vec![WASM_LAYER, DATA_LAYER, LOCKED_APP_LAYER],
        ))
        .with_context(|| format!("pulling {reference}"))?;
    ensure!(
        pulled.digest.as_deref() == Some(manifest_digest.as_str()),
        "the pulled manifest is {:?}, not {manifest_digest}",
        pulled.digest
    );
    ensure!(
        pulled.config.data == image.config.data,
        "the pulled config differs"
    );
    check_layers(image, &pulled.layers)?;
    eprintln!(
        "pulled back: {} layers, and {} components' Wasm and files, each the same",
        pulled.layers.len(),
        image.content.len(),
    );
    Ok(())
}

/// The pulled layers are the image's (in any order: they are pulled side by side),
/// and lead through the pulled locked app to the built Wasm and files.
fn check_layers(image: &Image, pulled: &[ImageLayer]) -> Result<()> {
    let key = |layer: &ImageLayer| (layer.sha256_digest(), layer.media_type.clone());
    let mut expected: Vec<_> = image.layers.iter().map(key).collect();
    let mut got: Vec<_> = pulled.iter().map(key).collect();
    expected.sort();
    got.sort();
    ensure!(
        got == expected,
        "the pulled layers differ: {got:?} vs {expected:?}"
    );
    let locked = pulled
        .iter()
        .find(|layer| layer.media_type == LOCKED_APP_LAYER)
        .context("no locked app among the pulled layers")?;
    let locked: LockedApp =
        serde_json::from_slice(&locked.data).context("the pulled locked app")?;
    let blobs = pulled
        .iter()
        .map(|layer| (layer.sha256_digest(), &layer.data[..]))
        .collect();
    let content = locked::resolve(&locked, &blobs)?;
    for (id, built) in &image.content {
        ensure!(
            content.get(id) == Some(built),
            "component `{id}`'s Wasm or files differ once pulled"
        );
    }
    ensure!(
        content.len() == image.content.len(),
        "the pulled locked app has other components: {:?}",
        content.keys().collect::<Vec<_>>()
    );
    Ok(())
}

/// For `cargo xtask test`: the image pushed to a local registry (Debian's
/// `docker-registry`, on 127.0.0.1) and pulled back.
pub fn round_trip(project: &Project) -> Result<()> {
    let image = Image::assemble(&project.root)?;
    let registry = LocalRegistry::start(&project.target_dir().join("image-test"))?;
    push_and_check(
        &image,
        &format!("127.0.0.1:{}/ticketing:test", registry.port),
    )
}

/// A `docker-registry` on a free loopback port, stopped (by PID) on drop.
struct LocalRegistry {
    child: Child,
    port: u16,
}

impl LocalRegistry {
    fn start(dir: &Path) -> Result<LocalRegistry> {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir.join("storage"))?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
                 http:\n  addr: 127.0.0.1:{port}\n",
                dir.join("storage").display()
            ),
        )?;
        step(&format!("Starting a local registry on 127.0.0.1:{port}"));
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("registry.log"))?)
            .spawn()
            .context("starting docker-registry (Debian package docker-registry)")?;
        let registry = LocalRegistry { child, port };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            ensure!(
                started.elapsed() < Duration::from_secs(20),
                "the registry did not listen within 20 s; see {}",
                dir.join("registry.log").display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(registry)
    }
}

impl Drop for LocalRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// A small app on disk: two components sharing a `.wasm`, and a web component
    /// with files, one of them repeated and two small enough to be inlined.
    struct Fixture {
        dir: std::path::PathBuf,
    }

    const SPIN_TOML: &str = r#"
        spin_manifest_version = 2
        [application]
        name = "shop"
        version = "1.2.3"
        description = "A test app"
        [application.trigger.redis]
        address = "{{ redis_url }}"
        [variables]
        redis_url = { default = "redis://127.0.0.1:6379" }
        key = { required = true, secret = true }

        [[trigger.http]]
        route = "/api/..."
        component = "api"
        [[trigger.redis]]
        channel = "a"
        component = "events"
        [[trigger.redis]]
        channel = "b"
        component = "events"
        [[trigger.http]]
        route = "/..."
        component = "web"

        [component.api]
        source = "service.wasm"
        sqlite_databases = ["shop"]
        allowed_outbound_hosts = ["{{ redis_url }}"]
        [component.api.variables]
        key = "{{ key }}"
        [component.api.build]
        command = "cargo build -p service"
        [component.events]
        source = "service.wasm"
        environment = { MODE = "events" }
        [component.events.build]
        command = "cargo build -p service"
        [component.web]
        source = "web.wasm"
        files = [{ source = "site", destination = "/" }, "extra/robots.txt"]
        [component.web.build]
        command = "cargo build -p web"
        watch = ["web/**/*.rs"]
    "#;

    impl Fixture {
        fn new(name: &str, spin_toml: &str) -> Fixture {
            let dir =
                std::env::temp_dir().join(format!("xtask-image-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            let page = "<!doctype html><title>shop</title>".repeat(8);
            for (path, bytes) in [
                ("spin.toml", spin_toml.as_bytes().to_vec()),
                ("service.wasm", [&b"\0asm"[..], &[1; 300]].concat()),
                ("web.wasm", [&b"\0asm"[..], &[2; 300]].concat()),
                ("site/index.html", page.clone().into_bytes()),
                ("site/copy.html", page.into_bytes()),
                (
                    "site/assets/app.js",
                    "console.log(1);".repeat(20).into_bytes(),
                ),
                ("site/tiny.css", b"body{}".to_vec()),
                ("extra/robots.txt", b"User-agent: *".to_vec()),
            ] {
                let path = dir.join(path);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, bytes).unwrap();
            }
            Fixture { dir }
        }

        fn image(&self) -> Result<Image> {
            let app = manifest::load(&self.dir.join("spin.toml"))?;
            let content = read_content(&app)?;
            Image::of(&app, content)
        }
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn locked_json(image: &Image) -> Value {
        let last = image.layers.last().unwrap();
        assert_eq!(
            last.media_type, LOCKED_APP_LAYER,
            "the locked app is the last layer"
        );
        serde_json::from_slice(&last.data).unwrap()
    }

    fn layer_digests(image: &Image, media_type: &str) -> Vec<String> {
        image
            .layers
            .iter()
            .filter(|layer| layer.media_type == media_type)
            .map(ImageLayer::sha256_digest)
            .collect()
    }

    #[test]
    fn the_locked_app_names_each_wasm_and_file_by_its_layer() {
        let fixture = Fixture::new("layers", SPIN_TOML);
        let image = fixture.image().unwrap();
        let locked = locked_json(&image);
        let service = digest(&std::fs::read(fixture.dir.join("service.wasm")).unwrap());
        let web = digest(&std::fs::read(fixture.dir.join("web.wasm")).unwrap());
        assert_eq!(
            layer_digests(&image, WASM_LAYER),
            [service.clone(), web.clone()]
        );
        let components = locked["components"].as_array().unwrap();
        let sources: Vec<_> = components
            .iter()
            .map(|c| (c["id"].as_str().unwrap(), c["source"].clone()))
            .collect();
        let source = |digest: &str| json!({"content_type": "application/wasm", "digest": digest});
        assert_eq!(
            sources,
            [
                ("api", source(&service)),
                ("events", source(&service)),
                ("web", source(&web))
            ],
            "one layer for the Wasm two components share; components in spin.toml's order"
        );

        let data = layer_digests(&image, DATA_LAYER);
        let files = components[2]["files"].as_array().unwrap();
        let paths: Vec<_> = files.iter().map(|f| f["path"].as_str().unwrap()).collect();
        assert_eq!(
            paths,
            [
                "assets/app.js",
                "copy.html",
                "extra/robots.txt",
                "index.html",
                "tiny.css"
            ]
        );
        for file in files {
            let digest = file["digest"].as_str().unwrap();
            match file.get("inline") {
                Some(_) => assert!(
                    !data.contains(&digest.to_owned()),
                    "{file}: inline, no layer"
                ),
                None => assert!(data.contains(&digest.to_owned()), "{file}: its layer"),
            }
        }
        assert_eq!(
            data.len(),
            2,
            "app.js, and one layer for the two equal pages"
        );
        assert_eq!(files[3]["digest"], files[1]["digest"]);
        assert_eq!(files[4]["inline"], "Ym9keXt9", "body{{}}, base64");

        let blobs = image
            .layers
            .iter()
            .map(|layer| (layer.sha256_digest(), &layer.data[..]))
            .collect();
        let locked: LockedApp = serde_json::from_value(locked).unwrap();
        assert_eq!(
            locked::resolve(&locked, &blobs).unwrap(),
            image.content,
            "the locked app and its layers give back every Wasm and file"
        );
    }

    #[test]
    fn the_locked_app_keeps_spin_toml_in_spin_s_shape() {
        let fixture = Fixture::new("shape", SPIN_TOML);
        let locked = locked_json(&fixture.image().unwrap());
        assert_eq!(locked["spin_lock_version"], 0);
        assert_eq!(
            locked["metadata"],
            json!({
                "name": "shop",
                "version": "1.2.3",
                "description": "A test app",
                "triggers": {"redis": {"address": "{{ redis_url }}"}},
            })
        );
        assert_eq!(
            locked["variables"],
            json!({
                "key": {"secret": true},
                "redis_url": {"default": "redis://127.0.0.1:6379"},
            })
        );
        assert_eq!(
            locked["triggers"],
            json!([
                {"id": "api-http-trigger", "trigger_type": "http",
                 "trigger_config": {"component": "api", "route": "/api/..."}},
                {"id": "web-http-trigger", "trigger_type": "http",
                 "trigger_config": {"component": "web", "route": "/..."}},
                {"id": "events-redis-trigger", "trigger_type": "redis",
                 "trigger_config": {"channel": "a", "component": "events"}},
                {"id": "redis-trigger1", "trigger_type": "redis",
                 "trigger_config": {"channel": "b", "component": "events"}},
            ])
        );
        let api = &locked["components"][0];
        assert_eq!(
            api["metadata"],
            json!({
                "allowed_outbound_hosts": ["{{ redis_url }}"],
                "build": {"command": "cargo build -p service"},
                "databases": ["shop"],
            })
        );
        assert_eq!(api["config"], json!({"key": "{{ key }}"}));
        assert!(api.get("env").is_none() && api.get("files").is_none());
        let events = &locked["components"][1];
        assert_eq!(events["env"], json!({"MODE": "events"}));
        let web = &locked["components"][2];
        assert_eq!(
            web["metadata"]["build"],
            json!({"command": "cargo build -p web", "watch": ["web/**/*.rs"]})
        );
    }

    #[test]
    fn the_config_media_types_and_annotations_are_spin_s() {
        let fixture = Fixture::new("config", SPIN_TOML);
        let image = fixture.image().unwrap();
        let manifest = image.manifest();
        assert_eq!(
            manifest.config.media_type,
            oci_client::manifest::IMAGE_CONFIG_MEDIA_TYPE
        );
        let config: Value = serde_json::from_slice(&image.config.data).unwrap();
        assert_eq!(
            config,
            json!({
                "architecture": "wasm",
                "os": "Wasip1",
                "config": {"Labels": {
                    "com.fermyon.spin.lockedAppDigest":
                        image.layers.last().unwrap().sha256_digest(),
                }},
                "rootfs": {"type": "layers", "diff_ids": []},
            }),
            "runwasi takes an image whose config says architecture `wasm`"
        );
        let media_types: Vec<_> = manifest
            .layers
            .iter()
            .map(|layer| layer.media_type.as_str())
            .collect();
        assert_eq!(
            media_types,
            [
                WASM_LAYER,
                WASM_LAYER,
                DATA_LAYER,
                DATA_LAYER,
                LOCKED_APP_LAYER
            ],
            "each component's Wasm, then its files; the locked app last"
        );
        assert_eq!(
            manifest.annotations.unwrap(),
            BTreeMap::from([
                (
                    "org.opencontainers.image.description".to_owned(),
                    "A test app".to_owned()
                ),
                (
                    "org.opencontainers.image.title".to_owned(),
                    "shop".to_owned()
                ),
                (
                    "org.opencontainers.image.version".to_owned(),
                    "1.2.3".to_owned()
                ),
            ])
        );
    }

    #[test]
    fn the_same_build_gives_the_same_digests() {
        let fixture = Fixture::new("reproducible", SPIN_TOML);
        let layouts: Vec<BTreeMap<String, Vec<u8>>> = ["first", "second"]
            .into_iter()
            .map(|name| {
                let dir = fixture.dir.join(name);
                fixture.image().unwrap().write_layout(&dir).unwrap();
                let mut files = BTreeMap::new();
                add_mount(&dir, "", &mut files).unwrap();
                files
            })
            .collect();
        assert_eq!(layouts[0], layouts[1], "every blob and index.json alike");
        assert_eq!(
            layouts[0].len(),
            2 + 5 + 2,
            "oci-layout, index.json; 5 layers, the config and the manifest"
        );
    }

    #[test]
    fn the_pull_back_check_takes_layers_in_any_order_but_not_a_changed_one() {
        let fixture = Fixture::new("pull-back", SPIN_TOML);
        let image = fixture.image().unwrap();
        let mut pulled: Vec<ImageLayer> = image.layers.iter().rev().cloned().collect();
        check_layers(&image, &pulled).unwrap();

        let page = pulled
            .iter_mut()
            .find(|layer| layer.media_type == DATA_LAYER)
            .unwrap();
        page.data = b"<!doctype html><title>someone else's shop</title>"
            .repeat(4)
            .into();
        let err = check_layers(&image, &pulled).unwrap_err();
        assert!(err.to_string().contains("layers differ"), "{err}");
    }

    #[test]
    fn a_component_field_the_locked_app_would_drop_is_refused() {
        let spin_toml = SPIN_TOML.replace(
            "[component.web.build]",
            "exclude_files = [\"**/*.map\"]\n[component.web.build]",
        );
        let fixture = Fixture::new("unread", &spin_toml);
        let err = fixture.image().err().unwrap();
        assert!(err.to_string().contains("exclude_files"), "{err}");
    }

    #[test]
    fn the_app_s_locked_app_has_every_route_and_channel_of_spin_toml() {
        let path = crate::checkout().join(build::APP);
        let app = manifest::load(&path).unwrap();
        let content = app
            .components
            .iter()
            .map(|c| {
                let wasm = c.source.to_str().unwrap().as_bytes().to_vec();
                (
                    c.id.clone(),
                    ComponentContent {
                        wasm,
                        files: BTreeMap::new(),
                    },
                )
            })
            .collect();
        let locked = serde_json::to_value(LockedApp::new(&app, &content).unwrap()).unwrap();

        // spin.toml read on its own: (type, route or channel, component).
        let toml: toml::Table = std::fs::read_to_string(&path).unwrap().parse().unwrap();
        let mut expected = Vec::new();
        for (kind, key) in [("http", "route"), ("redis", "channel")] {
            for trigger in toml["trigger"][kind].as_array().unwrap() {
                let at = trigger[key].as_str().unwrap();
                expected.push((
                    kind.to_owned(),
                    at.to_owned(),
                    trigger["component"].as_str().unwrap().to_owned(),
                ));
            }
        }
        let triggers = locked["triggers"].as_array().unwrap();
        let got: Vec<_> = triggers
            .iter()
            .map(|t| {
                let config = &t["trigger_config"];
                let at = config.get("route").or(config.get("channel")).unwrap();
                (
                    t["trigger_type"].as_str().unwrap().to_owned(),
                    at.as_str().unwrap().to_owned(),
                    config["component"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(got, expected);
        let ids: std::collections::HashSet<_> = triggers.iter().map(|t| &t["id"]).collect();
        assert_eq!(ids.len(), triggers.len(), "every trigger id is its own");
        assert_eq!(
            locked["metadata"]["triggers"]["redis"]["address"],
            "{{ redis_url }}"
        );
        let sources: Vec<_> = locked["components"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["source"]["digest"].clone())
            .collect();
        let expected: Vec<_> = app
            .components
            .iter()
            .map(|c| Value::from(digest(c.source.to_str().unwrap().as_bytes())))
            .collect();
        assert_eq!(
            sources, expected,
            "each component's source by the digest of its Wasm"
        );
    }
}

//! `cargo xtask image [--push REFERENCE]`: the app as an OCI image that SpinKube's shim
//! runs, in the `FROM scratch` shape: one layer holding `/spin.toml` and every file it
//! names (each component's `.wasm`, the web app's files), at the paths spin.toml gives.
//! The image is written as an OCI image layout to `target/image/` and, with `--push`,
//! pushed to a registry and pulled back to check every file.
//!
//! The layer is reproducible: files in sorted order, owner 0, mode 0644, time 0, so
//! the same build gives the same digests. Credentials for `--push`, when the registry
//! wants them: `TICKETING_REGISTRY_USER` and `TICKETING_REGISTRY_PASSWORD`. Registries
//! on 127.0.0.1 or localhost are spoken to over plain HTTP, others over HTTPS.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::manifest::{IMAGE_CONFIG_MEDIA_TYPE, IMAGE_LAYER_GZIP_MEDIA_TYPE};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::{Project, build, manifest, step};

const LAYOUT_DIR: &str = "target/image";

/// The image of the app: its files and the blobs made of them.
pub struct Image {
    /// Path inside the image → bytes.
    pub files: BTreeMap<String, Vec<u8>>,
    layer: Vec<u8>,
    config: Vec<u8>,
}

pub fn run(project: &Project, args: &[String]) -> Result<()> {
    let push = match args {
        [] => None,
        [flag, reference] if flag == "--push" => Some(reference.clone()),
        _ => bail!("usage: cargo xtask image [--push <registry>/<name>:<tag>]"),
    };
    build::build_apps(project, &[build::APP])?;
    let image = Image::assemble(&project.root)?;
    let layout = project.root.join(LAYOUT_DIR);
    step(&format!("Writing the OCI image layout to {LAYOUT_DIR}/"));
    image.write_layout(&layout)?;
    eprintln!(
        "{} files, layer {} bytes (gzip)",
        image.files.len(),
        image.layer.len()
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
        let mut files = BTreeMap::new();
        files.insert(
            "spin.toml".to_owned(),
            std::fs::read(root.join(build::APP))?,
        );
        for component in &app.components {
            add_path(root, &component.source, &mut files)?;
            for mount in &component.files {
                add_path(root, mount, &mut files)?;
            }
        }
        let (layer, diff_id) = layer_of(&files)?;
        // What `docker buildx build --platform wasi/wasm` gives a FROM scratch image.
        let config = serde_json::to_vec(&json!({
            "architecture": "wasm",
            "os": "wasi",
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }))?;
        Ok(Image {
            files,
            layer,
            config,
        })
    }

    fn layers(&self) -> Vec<ImageLayer> {
        vec![ImageLayer::new(
            self.layer.clone(),
            IMAGE_LAYER_GZIP_MEDIA_TYPE.to_owned(),
            None,
        )]
    }

    fn oci_config(&self) -> Config {
        Config::new(
            self.config.clone(),
            IMAGE_CONFIG_MEDIA_TYPE.to_owned(),
            None,
        )
    }

    fn manifest(&self) -> oci_client::manifest::OciImageManifest {
        oci_client::manifest::OciImageManifest::build(&self.layers(), &self.oci_config(), None)
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
        for blob in [&self.layer, &self.config, &manifest] {
            std::fs::write(blobs.join(hex_sha256(blob)), blob)?;
        }
        std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)?;
        let index = json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": oci_client::manifest::OCI_IMAGE_MEDIA_TYPE,
                "digest": format!("sha256:{}", hex_sha256(&manifest)),
                "size": manifest.len(),
            }],
        });
        std::fs::write(dir.join("index.json"), serde_json::to_vec_pretty(&index)?)?;
        Ok(())
    }
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

/// Adds a file, or every file below a directory, at its path relative to `root`.
fn add_path(root: &Path, relative: &Path, files: &mut BTreeMap<String, Vec<u8>>) -> Result<()> {
    let path = root.join(relative);
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&path)?
            .map(|entry| entry.map(|entry| entry.path()))
            .collect::<std::io::Result<_>>()?;
        entries.sort();
        for entry in entries {
            let below = entry
                .strip_prefix(root)
                .expect("below the root")
                .to_path_buf();
            add_path(root, &below, files)?;
        }
        return Ok(());
    }
    let bytes = std::fs::read(&path).with_context(|| {
        format!(
            "{} (spin.toml names it): build first (`cargo xtask build`)",
            path.display()
        )
    })?;
    let name = relative
        .to_str()
        .context("a path that is not UTF-8")?
        .trim_start_matches("./")
        .to_owned();
    files.insert(name, bytes);
    Ok(())
}

/// The gzipped tar of `files` and the digest of the tar itself (its `diff_id`).
fn layer_of(files: &BTreeMap<String, Vec<u8>>) -> Result<(Vec<u8>, String)> {
    let mut tar = tar::Builder::new(Vec::new());
    tar.mode(tar::HeaderMode::Deterministic);
    for (name, bytes) in files {
        let mut header = tar::Header::new_ustar();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, name, &bytes[..])?;
    }
    let tar = tar.into_inner()?;
    let diff_id = format!("sha256:{}", hex_sha256(&tar));
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gzip.write_all(&tar)?;
    Ok((gzip.finish()?, diff_id))
}

/// The files of a gzipped tar layer.
fn files_of_layer(layer: &[u8]) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut files = BTreeMap::new();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(layer));
    for entry in archive.entries()? {
        let mut entry = entry?;
        let name = entry.path()?.to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes)?;
        files.insert(name, bytes);
    }
    Ok(files)
}

fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Pushes the image, pulls it back and compares every file.
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
            &image.layers(),
            image.oci_config(),
            &auth,
            Some(image.manifest()),
        ))
        .with_context(|| format!("pushing {reference}"))?;
    eprintln!("pushed: {}", pushed.manifest_url);
    let digest = format!("sha256:{}", hex_sha256(&image.manifest_bytes()?));
    ensure!(
        pushed.manifest_url.ends_with(&digest),
        "the registry names the manifest otherwise than the layout ({digest})"
    );

    step(&format!(
        "Pulling {reference} back and comparing every file"
    ));
    let pulled = runtime
        .block_on(client.pull(&reference, &auth, vec![IMAGE_LAYER_GZIP_MEDIA_TYPE]))
        .with_context(|| format!("pulling {reference}"))?;
    ensure!(
        pulled.layers.len() == 1,
        "the pulled image has {} layers",
        pulled.layers.len()
    );
    ensure!(
        pulled.config.data[..] == image.config[..],
        "the pulled config differs"
    );
    let files = files_of_layer(&pulled.layers[0].data)?;
    ensure!(
        files == image.files,
        "the pulled files differ: {:?} vs {:?}",
        files.keys().collect::<Vec<_>>(),
        image.files.keys().collect::<Vec<_>>()
    );
    eprintln!(
        "pulled back: {} files, each the same ({})",
        files.len(),
        pulled.digest.unwrap_or_default()
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

    #[test]
    fn a_layer_is_reproducible_and_reads_back() {
        let files = BTreeMap::from([
            (
                "spin.toml".to_owned(),
                b"spin_manifest_version = 2\n".to_vec(),
            ),
            (
                "target/web/index.html".to_owned(),
                b"<!doctype html>".to_vec(),
            ),
        ]);
        let (first, diff_id) = layer_of(&files).unwrap();
        let (second, _) = layer_of(&files).unwrap();
        assert_eq!(first, second, "the same files give the same bytes");
        assert!(diff_id.starts_with("sha256:") && diff_id.len() == 71);
        assert_eq!(files_of_layer(&first).unwrap(), files);
    }
}

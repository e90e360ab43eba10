//! The web app's build: the Yew app in `frontend/` compiled for wasm32-unknown-unknown,
//! bound with wasm-bindgen (the library, the same version as the app's pin), shrunk by
//! `wasm-opt -Oz` (Debian's binaryen), and written to `target/web/` with
//! content-hashed names, an `index.html` that loads them, and a gzip copy of each
//! file that compresses. The `web` component serves that directory.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use crate::setup::on_path;
use crate::toolchain::Toolchain;
use crate::{Project, step};

pub const WEB_TARGET: &str = "wasm32-unknown-unknown";
/// Where the built app goes (spin.toml's `web` component mounts it).
pub const OUT_DIR: &str = "target/web";
const CRATE: &str = "ticketing-web";

/// Builds the web app into [`OUT_DIR`], printing each file's size (and gzipped size).
pub fn build(project: &Project) -> Result<()> {
    let frontend = project.root.join("frontend");
    let target = frontend_target_dir(project);
    step(&format!(
        "Building the web app (frontend/) for {WEB_TARGET} with {}",
        project.toolchain.describe()
    ));
    frontend_cargo(project, "build")
        .args(["--release", "--locked"])
        .run()?;
    let module = target
        .join(WEB_TARGET)
        .join("release")
        .join(format!("{CRATE}.wasm"));

    step("Binding it with wasm-bindgen");
    let bound = target.join("bindgen");
    let _ = std::fs::remove_dir_all(&bound);
    std::fs::create_dir_all(&bound)?;
    wasm_bindgen_cli_support::Bindgen::new()
        .input_path(&module)
        .web(true)?
        .typescript(false)
        .generate(&bound)
        .context("wasm-bindgen")?;
    let js = bound.join(format!("{CRATE}.js"));
    let wasm = bound.join(format!("{CRATE}_bg.wasm"));
    if bound.join("snippets").exists() {
        bail!("the app uses inline JS snippets, which the build does not ship yet");
    }
    if on_path("wasm-opt") {
        step("Shrinking it with wasm-opt -Oz");
        project
            .sh
            .cmd("wasm-opt")
            .args(["-Oz", "--strip-debug", "--strip-producers"])
            .arg(&wasm)
            .arg("-o")
            .arg(&wasm)
            .run()?;
    } else {
        eprintln!("warning: no wasm-opt on PATH (Debian: binaryen); the module stays larger");
    }

    step(&format!("Writing {OUT_DIR}/"));
    let out = project.root.join(OUT_DIR);
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out)?;
    let wasm_name = place(&out, "app", "wasm", &std::fs::read(&wasm)?)?;
    let js_name = place(&out, "app", "js", &std::fs::read(&js)?)?;
    let css_name = place(
        &out,
        "style",
        "css",
        &std::fs::read(frontend.join("style.css"))?,
    )?;
    let index = index_html(&js_name, &wasm_name, &css_name);
    std::fs::write(out.join("index.html"), &index)?;
    for name in ["index.html", &js_name, &wasm_name, &css_name] {
        let bytes = std::fs::read(out.join(name))?;
        let gzipped = gzip_beside(&out.join(name), &bytes)?;
        eprintln!(
            "{name}: {} bytes{}",
            bytes.len(),
            gzipped.map_or(String::new(), |size| format!(", {size} gzipped"))
        );
    }
    Ok(())
}

/// `cargo <subcommand>` for the web app: its own manifest and target directory, for
/// [`WEB_TARGET`], with the workspace's toolchain.
pub fn frontend_cargo<'a>(project: &'a Project, subcommand: &str) -> xshell::Cmd<'a> {
    let cargo = project
        .toolchain
        .cargo(&project.sh)
        .args([subcommand, "--target", WEB_TARGET])
        .arg("--manifest-path")
        .arg(project.root.join("frontend/Cargo.toml"))
        .arg("--target-dir")
        .arg(frontend_target_dir(project))
        // Debian's binaryen 108 reads no reference types, which rustc emits by default.
        .env(
            "CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS",
            "-C target-feature=-reference-types",
        );
    match project.toolchain {
        Toolchain::Debian => cargo.env("CARGO_UNSTABLE_BUILD_STD", "std,panic_abort"),
        Toolchain::Rustup => cargo,
    }
}

pub fn frontend_target_dir(project: &Project) -> PathBuf {
    project.target_dir().join("frontend")
}

/// Writes `bytes` as `<stem>-<16 hex of its SHA-256>.<ext>`; the name.
fn place(out: &Path, stem: &str, ext: &str, bytes: &[u8]) -> Result<String> {
    let name = format!("{stem}-{}.{ext}", content_hash(bytes));
    std::fs::write(out.join(&name), bytes)?;
    Ok(name)
}

pub fn content_hash(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().take(8).fold(String::new(), |mut hex, byte| {
        let _ = write!(hex, "{byte:02x}");
        hex
    })
}

/// A gzip copy next to the file when it is smaller; its size.
fn gzip_beside(path: &Path, bytes: &[u8]) -> Result<Option<u64>> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes)?;
    let gzipped = encoder.finish()?;
    if gzipped.len() >= bytes.len() {
        return Ok(None);
    }
    let mut gz = PathBuf::from(path);
    gz.as_mut_os_string().push(".gz");
    std::fs::write(&gz, &gzipped)?;
    Ok(Some(gzipped.len() as u64))
}

fn index_html(js: &str, wasm: &str, css: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Ticketing</title>
<meta name="description" content="Buy and sell tickets.">
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/{css}">
<link rel="modulepreload" href="/{js}">
<link rel="preload" href="/{wasm}" as="fetch" type="application/wasm" crossorigin>
</head>
<body>
<noscript><p>Ticketing needs JavaScript and WebAssembly to run.</p></noscript>
<script type="module">
import init from "/{js}";
init({{ module_or_path: "/{wasm}" }});
</script>
</body>
</html>
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_change_with_the_content() {
        assert_eq!(content_hash(b"a").len(), 16);
        assert_ne!(content_hash(b"a"), content_hash(b"b"));
        let html = index_html("app-1.js", "app-2.wasm", "style-3.css");
        assert!(html.contains(r#"import init from "/app-1.js";"#));
        assert!(html.contains(r#"init({ module_or_path: "/app-2.wasm" });"#));
        assert!(html.contains(r#"href="/style-3.css""#));
    }
}

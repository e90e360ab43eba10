//! Which file answers a path, and how it is labelled: pure, apart from reading files.

use std::path::{Path, PathBuf};

/// What a path resolves to.
#[derive(Debug)]
pub enum Answer {
    /// Under `/api/`: no service claimed it, so it is API.md's 404, never the app.
    Api,
    /// A file the app does not have (a path with an extension: an asset, not a page).
    Missing,
    File(Asset),
    Unreadable(std::io::Error),
}

#[derive(Debug)]
pub struct Asset {
    pub bytes: Vec<u8>,
    pub content_type: &'static str,
    pub cache_control: &'static str,
    /// The bytes are the gzip copy (`Content-Encoding: gzip`).
    pub gzipped: bool,
}

impl Asset {
    /// A strong validator of exactly these bytes.
    pub fn etag(&self) -> String {
        format!("\"{:016x}\"", fnv1a(&self.bytes))
    }
}

/// Names written by the build carry a content hash (`app-0123456789abcdef.wasm`):
/// they never change, so browsers keep them for a year without asking again.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Everything else (`index.html` above all) is revalidated on every use.
const REVALIDATE: &str = "no-cache";

pub fn is_api(path: &str) -> bool {
    path == "/api" || path.starts_with("/api/")
}

pub fn resolve(root: &Path, path: &str, accepts_gzip: bool) -> Answer {
    if is_api(path) {
        return Answer::Api;
    }
    let Some(relative) = safe_relative(path) else {
        return Answer::Missing;
    };
    let wanted = root.join(&relative);
    if wanted.is_file() {
        return read(&wanted, accepts_gzip);
    }
    let last = relative
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or("");
    if last.contains('.') {
        return Answer::Missing;
    }
    // A route of the app (`/orders/42`): the app's page, which routes in the browser.
    read(&root.join("index.html"), accepts_gzip)
}

/// The path below the root, or `None` for anything that could leave it.
fn safe_relative(path: &str) -> Option<PathBuf> {
    let mut relative = PathBuf::new();
    for segment in path.split('/').filter(|segment| !segment.is_empty()) {
        if segment == "." || segment == ".." || segment.contains('\\') || segment.contains('\0') {
            return None;
        }
        relative.push(segment);
    }
    if relative.as_os_str().is_empty() {
        relative.push("index.html");
    }
    Some(relative)
}

fn read(path: &Path, accepts_gzip: bool) -> Answer {
    let content_type = content_type(path);
    let cache_control = if is_hashed(path) {
        IMMUTABLE
    } else {
        REVALIDATE
    };
    if accepts_gzip {
        let mut gz = path.as_os_str().to_owned();
        gz.push(".gz");
        if let Ok(bytes) = std::fs::read(&gz) {
            return Answer::File(Asset {
                bytes,
                content_type,
                cache_control,
                gzipped: true,
            });
        }
    }
    match std::fs::read(path) {
        Ok(bytes) => Answer::File(Asset {
            bytes,
            content_type,
            cache_control,
            gzipped: false,
        }),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Answer::Missing,
        Err(err) => Answer::Unreadable(err),
    }
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|ext| ext.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "wasm" => "application/wasm",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "webp" => "image/webp",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// `name-<16 hex>.ext`.
fn is_hashed(path: &Path) -> bool {
    let stem = path
        .file_stem()
        .and_then(|stem| stem.to_str())
        .unwrap_or("");
    stem.rsplit_once('-').is_some_and(|(_, hash)| {
        hash.len() == 16 && hash.bytes().all(|byte| byte.is_ascii_hexdigit())
    })
}

/// Whether `Accept-Encoding` takes gzip (and not with `q=0`).
pub fn accepts_gzip(header: &str) -> bool {
    header.split(',').any(|coding| {
        let mut parts = coding.split(';').map(str::trim);
        let name = parts.next().unwrap_or("");
        let refused = parts.any(|param| {
            param
                .strip_prefix("q=")
                .and_then(|q| q.parse::<f32>().ok())
                .is_some_and(|q| q == 0.0)
        });
        (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
    })
}

/// Whether `If-None-Match` names `etag` (or `*`).
pub fn etag_matches(header: &str, etag: &str) -> bool {
    header
        .split(',')
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == etag || tag == "*")
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("index.html"), "<!doctype html>").unwrap();
        std::fs::write(dir.path().join("index.html.gz"), "gz").unwrap();
        std::fs::write(dir.path().join("app-0123456789abcdef.wasm"), "wasm").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "n").unwrap();
        dir
    }

    fn file(answer: Answer) -> Asset {
        match answer {
            Answer::File(asset) => asset,
            other => panic!("expected a file, got {other:?}"),
        }
    }

    #[test]
    fn pages_fall_back_to_the_app_and_assets_do_not() {
        let site = site();
        let root = site.path();
        for page in ["/", "/orders", "/orders/42", "/auth/signin/"] {
            let asset = file(resolve(root, page, false));
            assert_eq!(asset.bytes, b"<!doctype html>", "{page}");
            assert_eq!(asset.content_type, "text/html; charset=utf-8");
            assert_eq!(asset.cache_control, "no-cache");
        }
        assert!(matches!(
            resolve(root, "/missing.js", false),
            Answer::Missing
        ));
        assert!(matches!(resolve(root, "/api/nope", false), Answer::Api));
        assert!(matches!(resolve(root, "/api", false), Answer::Api));
        assert!(matches!(
            resolve(root, "/../etc/passwd", false),
            Answer::Missing
        ));
        assert!(matches!(resolve(root, "/a/./b", false), Answer::Missing));
    }

    #[test]
    fn hashed_assets_are_immutable_and_typed() {
        let site = site();
        let asset = file(resolve(site.path(), "/app-0123456789abcdef.wasm", true));
        assert_eq!(asset.content_type, "application/wasm");
        assert_eq!(asset.cache_control, IMMUTABLE);
        assert!(!asset.gzipped, "no gzip copy: the file itself");
        let notes = file(resolve(site.path(), "/notes.txt", false));
        assert_eq!(notes.cache_control, "no-cache");
    }

    #[test]
    fn the_gzip_copy_is_served_only_to_who_accepts_it() {
        let site = site();
        let gz = file(resolve(site.path(), "/", true));
        assert!(gz.gzipped);
        assert_eq!(gz.bytes, b"gz");
        assert!(!file(resolve(site.path(), "/", false)).gzipped);
        assert!(accepts_gzip("gzip, deflate, br"));
        assert!(accepts_gzip("br;q=1.0, gzip;q=0.8"));
        assert!(!accepts_gzip("gzip;q=0"));
        assert!(!accepts_gzip("br"));
        assert!(!accepts_gzip(""));
    }

    #[test]
    fn etags_validate_exact_bytes() {
        let site = site();
        let plain = file(resolve(site.path(), "/", false)).etag();
        let gz = file(resolve(site.path(), "/", true)).etag();
        assert_ne!(plain, gz, "each representation has its own tag");
        assert!(etag_matches(&plain, &plain));
        assert!(etag_matches(&format!("\"x\", W/{plain}"), &plain));
        assert!(etag_matches("*", &plain));
        assert!(!etag_matches("\"other\"", &plain));
        assert!(!etag_matches("", &plain));
    }
}

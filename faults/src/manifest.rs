//! A part of the app: spin.toml with only some of its components, as one role of a
//! cluster runs it (SpinKube selects components the same way).

use std::path::PathBuf;

use tempfile::TempDir;

/// A manifest of the components `keep` accepts, with their triggers; kept on disk as
/// long as this value lives.
pub struct Part {
    _dir: TempDir,
    pub path: PathBuf,
}

pub fn part(keep: impl Fn(&str) -> bool) -> Part {
    let root = harness::workspace_root();
    let mut manifest =
        spin_manifest::load(&root.join("spin.toml")).unwrap_or_else(|err| panic!("{err:#}"));
    manifest.retain_components(keep);
    for component in &mut manifest.components {
        // The part lives elsewhere: its sources must not be relative to it.
        component.source = root.join(&component.source);
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("spin.toml");
    std::fs::write(&path, manifest.to_toml()).expect("the temporary directory is writable");
    Part { _dir: dir, path }
}

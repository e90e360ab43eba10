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
    let text = std::fs::read_to_string(root.join("spin.toml")).expect("spin.toml is readable");
    let mut manifest: toml::Table = toml::from_str(&text).expect("spin.toml is TOML");
    if let Some(components) = manifest
        .get_mut("component")
        .and_then(toml::Value::as_table_mut)
    {
        components.retain(|id, _| keep(id));
        for (_, component) in components.iter_mut() {
            // The part lives elsewhere: its sources must not be relative to it.
            if let Some(source) = component.get_mut("source")
                && let Some(path) = source.as_str()
            {
                *source = toml::Value::String(root.join(path).display().to_string());
            }
        }
    }
    if let Some(triggers) = manifest
        .get_mut("trigger")
        .and_then(toml::Value::as_table_mut)
    {
        for (_, list) in triggers.iter_mut() {
            if let Some(list) = list.as_array_mut() {
                list.retain(|trigger| {
                    trigger
                        .get("component")
                        .and_then(toml::Value::as_str)
                        .is_some_and(&keep)
                });
            }
        }
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("spin.toml");
    std::fs::write(
        &path,
        toml::to_string(&manifest).expect("a manifest serializes"),
    )
    .expect("the temporary directory is writable");
    Part { _dir: dir, path }
}

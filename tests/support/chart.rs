//! Rendering the Helm chart with the Helm binary that scripts/install-tools.sh installs.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

/// The Helm binary: `$HELM`, else `.tools/bin/helm`.
pub fn helm() -> PathBuf {
    if let Some(h) = std::env::var_os("HELM") {
        return h.into();
    }
    let local = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".tools/bin/helm");
    assert!(local.exists(), "Helm is not installed: run scripts/install-tools.sh (or set HELM)");
    local
}

/// The chart's directory.
pub fn chart_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("charts/modelcycle")
}

/// `helm template` with extra arguments; Err carries Helm's error output.
pub fn template(args: &[&str]) -> Result<String, String> {
    let out = Command::new(helm())
        .args(["template", "mc", chart_dir().to_str().unwrap(), "--namespace", "modelcycle-system"])
        .args(args)
        .output()
        .expect("helm runs");
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Every document of a rendered stream.
pub fn documents(rendered: &str) -> Vec<serde_yaml::Value> {
    use serde::Deserialize;
    serde_yaml::Deserializer::from_str(rendered)
        .map(|d| serde_yaml::Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

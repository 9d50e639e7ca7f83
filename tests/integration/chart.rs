//! The Helm chart: lint, render with defaults and with every option, validate the rendered
//! manifests for the oldest and newest Kubernetes supported, and check what it promises.

use crate::support;

use std::process::Command;

use serde_yaml::Value;
use support::chart::{chart_dir, documents, helm, template};

const ALL_OPTIONS: &str = "ci/all-options-values.yaml";

fn all_options() -> String {
    chart_dir().join(ALL_OPTIONS).to_string_lossy().into_owned()
}

fn kinds(rendered: &str) -> Vec<String> {
    documents(rendered).iter().map(|d| d["kind"].as_str().unwrap().to_string()).collect()
}

/// The controller container's arguments.
fn args(rendered: &str) -> Vec<String> {
    let pod = &controller(rendered)["spec"]["template"];
    pod["spec"]["containers"][0]["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

fn controller(rendered: &str) -> Value {
    documents(rendered).into_iter().find(|d| d["kind"] == "Deployment").expect("a Deployment")
}

#[test]
fn lint_passes_strictly_with_defaults_and_with_every_option() {
    for extra in [vec![], vec!["-f".to_string(), all_options()]] {
        let out = Command::new(helm()).args(["lint", "--strict"]).arg(chart_dir()).args(&extra).output().unwrap();
        assert!(out.status.success(), "helm lint {extra:?}: {}", String::from_utf8_lossy(&out.stdout));
    }
}

#[test]
fn rendered_manifests_are_valid_for_kubernetes_1_33_and_1_37() {
    let dir = tempdir();
    for (name, args) in [("defaults", vec!["--include-crds"]), ("all", vec!["--include-crds", "-f", &all_options()])] {
        let rendered = template(&args).unwrap();
        let file = dir.join(format!("{name}.yaml"));
        std::fs::write(&file, &rendered).unwrap();
        for version in ["1.33.0", "1.37.0"] {
            let out = Command::new("kubernetes-validate")
                .args(["--strict", "--quiet", "-k", version])
                .arg(&file)
                .output()
                .expect("kubernetes-validate is installed (scripts/install-tools.sh)");
            let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{name} for {version}: {text}");
            // ServiceMonitor and PrometheusRule are the Prometheus Operator's kinds; there is no
            // schema to check them against.
            let unexpected: Vec<_> = text
                .lines()
                .filter(|l| !l.trim().is_empty() && !l.contains("ServiceMonitor") && !l.contains("PrometheusRule"))
                .collect();
            assert!(unexpected.is_empty(), "{name} for {version}: {unexpected:?}");
        }
    }
}

#[test]
fn defaults_render_a_cluster_wide_controller() {
    let rendered = template(&[]).unwrap();
    let mut k = kinds(&rendered);
    k.sort();
    assert_eq!(
        k,
        [
            "ClusterRole",
            "ClusterRole",
            "ClusterRoleBinding",
            "ClusterRoleBinding",
            "Deployment",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount"
        ]
    );
}

#[test]
fn every_option_renders_its_objects() {
    let rendered = template(&["-f", &all_options()]).unwrap();
    let k = kinds(&rendered);
    for kind in ["ServiceMonitor", "PodDisruptionBudget", "PrometheusRule", "ConfigMap"] {
        assert!(k.contains(&kind.to_string()), "{kind} missing from {k:?}");
    }
    let roles: Vec<_> = documents(&rendered)
        .into_iter()
        .filter(|d| d["kind"] == "Role" && d["metadata"]["name"] == "mc-modelcycle")
        .map(|d| d["metadata"]["namespace"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(roles, ["ml", "fraud"], "a Role in each watched namespace");
    assert!(
        !documents(&rendered).iter().any(|d| d["kind"] == "ClusterRole" && d["metadata"]["name"] == "mc-modelcycle")
    );
    let pod = &controller(&rendered)["spec"]["template"];
    let args: Vec<_> =
        pod["spec"]["containers"][0]["args"].as_sequence().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    assert!(args.contains(&"--namespaces=ml,fraud"), "{args:?}");
    assert!(args.contains(&"--leader-election=true"), "more than one replica always elects a leader: {args:?}");
    assert!(args.contains(&"--log-format=json"));
    assert_eq!(pod["spec"]["nodeSelector"]["kubernetes.io/os"], "linux");
    assert_eq!(pod["metadata"]["annotations"]["prometheus.io/scrape"], "true");
    for doc in documents(&rendered) {
        assert_eq!(doc["metadata"]["labels"]["team"], "ml-platform", "{}", doc["kind"].as_str().unwrap());
    }
}

#[test]
fn the_controller_runs_locked_down_with_probes_and_limits() {
    let rendered = template(&[]).unwrap();
    let spec = &controller(&rendered)["spec"]["template"]["spec"];
    assert_eq!(spec["securityContext"]["runAsNonRoot"], true);
    assert_eq!(spec["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    let c = &spec["containers"][0];
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["securityContext"]["capabilities"]["drop"][0], "ALL");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert!(c["resources"]["requests"]["memory"].is_string() && c["resources"]["limits"]["memory"].is_string());
    assert_eq!(c["image"], "ghcr.io/modelcycle/modelcycle:0.1.0", "the tag defaults to appVersion");
}

#[test]
fn a_typo_or_wrong_type_in_values_is_refused_naming_the_key() {
    let typo = template(&["--set", "replica=2"]).unwrap_err();
    assert!(typo.contains("replica"), "{typo}");
    let nested = template(&["--set", "metrics.serviceMonitor.enabeld=true"]).unwrap_err();
    assert!(nested.contains("enabeld"), "{nested}");
    let wrong_type = template(&["--set-string", "replicas=two"]).unwrap_err();
    assert!(wrong_type.contains("/replicas"), "{wrong_type}");
    let bad_namespace = template(&["--set", "watchNamespaces={ml,Bad_NS}"]).unwrap_err();
    assert!(bad_namespace.contains("Bad_NS"), "{bad_namespace}");
    let bad_period = template(&["--set", "resyncPeriod=often"]).unwrap_err();
    assert!(bad_period.contains("resyncPeriod"), "{bad_period}");
}

#[test]
fn the_concurrency_reaches_the_controller_within_its_bounds() {
    assert!(args(&template(&[]).unwrap()).contains(&"--concurrency=16".to_string()));
    assert!(args(&template(&["--set", "concurrency=64"]).unwrap()).contains(&"--concurrency=64".to_string()));
    for out_of_bounds in ["concurrency=0", "concurrency=5000"] {
        let refused = template(&["--set", out_of_bounds]).unwrap_err();
        assert!(refused.contains("concurrency"), "{refused}");
    }
}

#[test]
fn the_resync_period_reaches_the_controller() {
    assert!(args(&template(&[]).unwrap()).contains(&"--resync-period=10m".to_string()));
    assert!(args(&template(&["--set", "resyncPeriod=90s"]).unwrap()).contains(&"--resync-period=90s".to_string()));
}

#[test]
fn prometheus_addresses_are_restricted_and_secrets_unread_unless_asked() {
    let secret_rules = |rendered: &str| {
        documents(rendered)
            .iter()
            .filter(|d| d["kind"] == "ClusterRole" || d["kind"] == "Role")
            .flat_map(|d| d["rules"].as_sequence().cloned().unwrap_or_default())
            .filter(|r| r["resources"].as_sequence().is_some_and(|rs| rs.iter().any(|x| x == "secrets")))
            .count()
    };
    let defaults = template(&[]).unwrap();
    assert_eq!(secret_rules(&defaults), 0, "no Secret rule unless bearerTokenSecrets is on");
    assert!(!args(&defaults).iter().any(|a| a.starts_with("--prometheus-allowed-addresses")));
    let on = template(&["--set", "prometheus.bearerTokenSecrets=true", "--set", "watchNamespaces={ml,fraud}"]).unwrap();
    assert_eq!(secret_rules(&on), 2, "one Secret rule in each namespace's Role");
    let allowed =
        template(&["--set", "prometheus.allowedAddresses={http://prometheus.monitoring:9090,https://thanos:9091}"])
            .unwrap();
    assert!(
        args(&allowed).contains(
            &"--prometheus-allowed-addresses=http://prometheus.monitoring:9090,https://thanos:9091".to_string()
        ),
        "{:?}",
        args(&allowed)
    );
    let bad = template(&["--set", "prometheus.allowedAddresses={prometheus:9090}"]).unwrap_err();
    assert!(bad.contains("allowedAddresses"), "{bad}");
    // MLflow: the same, for tokens and tracking URIs.
    let mlflow =
        template(&["--set", "mlflow.tokenSecrets=true", "--set", "mlflow.allowedUris={http://mlflow.mlops:5000}"])
            .unwrap();
    assert_eq!(secret_rules(&mlflow), 1, "mlflow.tokenSecrets grants reading Secrets");
    assert!(
        args(&mlflow).contains(&"--mlflow-allowed-uris=http://mlflow.mlops:5000".to_string()),
        "{:?}",
        args(&mlflow)
    );
    assert!(!args(&defaults).iter().any(|a| a.starts_with("--mlflow-allowed-uris")));
    let bad = template(&["--set", "mlflow.allowedUris={mlflow:5000}"]).unwrap_err();
    assert!(bad.contains("allowedUris"), "{bad}");
    // MLflow webhooks: the signing secret comes from a Secret, through the environment only.
    let env = |rendered: &str| controller(rendered)["spec"]["template"]["spec"]["containers"][0]["env"].clone();
    let hooked = template(&["--set", "mlflow.webhook.secretName=mlflow-webhook"]).unwrap();
    let secret = env(&hooked)
        .as_sequence()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "MODELCYCLE_MLFLOW_WEBHOOK_SECRET")
        .cloned()
        .expect("the webhook secret is in the environment");
    assert_eq!(secret["valueFrom"]["secretKeyRef"]["name"], "mlflow-webhook");
    assert_eq!(secret["valueFrom"]["secretKeyRef"]["key"], "secret");
    assert!(!args(&hooked).iter().any(|a| a.contains("webhook")), "never on the command line");
    assert!(!serde_yaml::to_string(&env(&defaults)).unwrap().contains("WEBHOOK"), "off by default");
}

#[test]
fn the_charts_crds_are_the_generated_ones() {
    let top = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    for entry in std::fs::read_dir(&top).unwrap() {
        let path = entry.unwrap().path();
        let in_chart = chart_dir().join("crds").join(path.file_name().unwrap());
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            std::fs::read_to_string(&in_chart).unwrap_or_default(),
            "{} differs from the chart's copy: cp crds/*.yaml charts/modelcycle/crds/",
            path.display()
        );
    }
    assert_eq!(std::fs::read_dir(chart_dir().join("crds")).unwrap().count(), std::fs::read_dir(&top).unwrap().count());
}

#[test]
fn every_value_is_documented_in_the_charts_readme() {
    let values: Value =
        serde_yaml::from_str(&std::fs::read_to_string(chart_dir().join("values.yaml")).unwrap()).unwrap();
    let readme = std::fs::read_to_string(chart_dir().join("README.md")).unwrap();
    let mut keys = vec![];
    collect_keys(&values, "", &mut keys);
    let missing: Vec<_> = keys.iter().filter(|k| !readme.contains(&format!("`{k}`"))).collect();
    assert!(missing.is_empty(), "values not documented in charts/modelcycle/README.md: {missing:?}");
}

fn collect_keys(value: &Value, prefix: &str, out: &mut Vec<String>) {
    match value.as_mapping() {
        Some(map) if !map.is_empty() && !prefix.ends_with("resources") => {
            for (k, v) in map {
                let key = format!("{prefix}{}{}", if prefix.is_empty() { "" } else { "." }, k.as_str().unwrap());
                collect_keys(v, &key, out);
            }
        }
        _ => out.push(prefix.to_string()),
    }
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("modelcycle-chart-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn the_alerts_and_the_dashboard_are_the_files_promtool_and_prometheus_check() {
    let rendered = template(&["-f", &all_options()]).unwrap();
    let docs = documents(&rendered);
    let rule = docs.iter().find(|d| d["kind"] == "PrometheusRule").expect("a PrometheusRule");
    let file: Value =
        serde_yaml::from_str(&std::fs::read_to_string(chart_dir().join("files/alerts.yaml")).unwrap()).unwrap();
    assert_eq!(rule["spec"]["groups"], file["groups"], "the PrometheusRule carries files/alerts.yaml as it is");
    assert_eq!(rule["metadata"]["labels"]["release"], "prom");
    let map = docs.iter().find(|d| d["kind"] == "ConfigMap").expect("the dashboard's ConfigMap");
    assert_eq!(map["metadata"]["labels"]["grafana_dashboard"], "1", "the label Grafana's sidecar looks for");
    let shipped: serde_json::Value = serde_json::from_str(map["data"]["modelcycle.json"].as_str().unwrap()).unwrap();
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(chart_dir().join("files/dashboard.json")).unwrap()).unwrap();
    assert_eq!(shipped, file);
    let defaults = kinds(&template(&[]).unwrap());
    assert!(!defaults.contains(&"PrometheusRule".to_string()) && !defaults.contains(&"ConfigMap".to_string()));
}

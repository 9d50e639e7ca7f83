//! `kubectl modelcycle`'s views and actions on the objects the lifecycle really produces: the
//! progressive example (a blue-green promoted by annotation, then a version rolled back in its
//! guard window) run in the simulator and read at its moments.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use modelcycle::api::{Model, ModelVersion, VersionPhase};
use modelcycle::plugin::view::{self, Style};
use modelcycle::plugin::{act, view::DiffRow};
use modelcycle::sim::Simulation;
use modelcycle::sim::scenario::Scenario;

fn simulation() -> (Simulation, Timestamp) {
    let scenario = Scenario::load(&["examples/progressive"]).expect("the example loads");
    let sim = Simulation::new(scenario);
    let start = sim.cluster.now;
    (sim, start)
}

fn at(sim: &mut Simulation, start: Timestamp, hours: i64) {
    sim.run_until(start + SignedDuration::from_hours(hours));
}

fn objects(sim: &Simulation) -> (Model, Vec<ModelVersion>) {
    let model = sim.cluster.models.values().next().map(|m| Model::clone(m)).expect("one Model");
    let versions = sim.cluster.versions.values().map(|v| ModelVersion::clone(v)).collect();
    (model, versions)
}

fn plain() -> Style {
    Style { colour: false }
}

#[test]
fn the_tree_shows_a_version_waiting_for_promotion_and_promote_names_it() {
    let (mut sim, start) = simulation();
    // Day 1, 1 h: v2 trained on the new data and waits in preview for the annotation.
    at(&mut sim, start, 25);
    let (model, versions) = objects(&sim);
    let tree = view::tree(&model, &versions, sim.cluster.now, plain());
    let lines: Vec<&str> = tree.lines().collect();
    assert!(lines[0].starts_with("Model ml/fraud  RollingOut  serving v1  candidate v2"), "{tree}");
    assert!(tree.contains("strategy  BlueGreen, promotion Manual, analysed on live metrics"), "{tree}");
    let v2 = lines.iter().position(|l| l.starts_with("├── v2  ")).expect("v2 first, newest first");
    let v1 = lines.iter().position(|l| l.starts_with("└── v1 ★  Serving  trigger Initial")).expect("v1 last");
    assert!(v2 < v1, "{tree}");
    let v2_block = lines[v2..v1].join("\n");
    assert!(v2_block.contains("metrics   auc=0.9"), "{v2_block}");
    assert!(v2_block.contains("gate      auc min 0.8: Pass (0.9)"), "{v2_block}");
    assert!(v2_block.contains("blue-green: preview ready, not switched"), "{v2_block}");
    assert!(tree.contains("RollingOut=True WaitingForPromotion"), "{tree}");
    assert!(!tree.contains('\x1b'), "no colour asked for:\n{tree}");

    // Promote without a version names the candidate; another version is refused with why.
    let edit = act::promote(&model, &versions, None).expect("v2 waits");
    assert_eq!(edit.patch, serde_json::json!({"metadata": {"annotations": {"modelcycle.io/promote": "2"}}}));
    let refused = act::promote(&model, &versions, Some(1)).expect_err("v1 serves");
    assert!(refused.contains("v1 of fraud is Serving; only the version on its way (v2)"), "{refused}");
    // Abort without a version aborts the waiting one, not the serving one.
    let abort = act::abort(&model, &versions, None).expect("v2 can be aborted");
    assert_eq!(abort.patch["metadata"]["annotations"]["modelcycle.io/abort"], "2");

    // The edit, applied as the API server would merge it, is what the controller acts on.
    let promoted = merged(&model, &edit.patch);
    let mut sim = sim;
    sim.cluster.models.insert("ml/fraud".into(), Arc::new(promoted));
    at(&mut sim, start, 26);
    let (_, versions) = objects(&sim);
    let phase = |n: u32| versions.iter().find(|v| v.spec.version == n).and_then(|v| v.status.as_ref()?.phase);
    assert_eq!(phase(2), Some(VersionPhase::Serving), "promote's annotation promoted v2");
}

fn merged(model: &Model, patch: &serde_json::Value) -> Model {
    let mut value = serde_json::to_value(model).expect("a Model serialises");
    json_merge(&mut value, patch);
    serde_json::from_value(value).expect("the merged Model decodes")
}

/// RFC 7386 merge, as the API server applies `--type merge`.
fn json_merge(target: &mut serde_json::Value, patch: &serde_json::Value) {
    if let (Some(t), Some(p)) = (target.as_object_mut(), patch.as_object()) {
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                json_merge(t.entry(k.clone()).or_insert(serde_json::Value::Null), v);
            }
        }
    } else {
        *target = patch.clone();
    }
}

#[test]
fn history_and_diff_tell_what_served_when_and_what_differs() {
    let (mut sim, _) = simulation();
    sim.run();
    let (model, versions) = objects(&sim);
    let entries = view::history(&versions);
    assert!(entries.windows(2).all(|w| w[0].time <= w[1].time), "oldest first");
    let serve: Vec<u32> = entries.iter().filter(|e| e.action == "Serve").map(|e| e.version).collect();
    assert_eq!(serve, vec![1, 2, 3], "each served once, in order");
    let rollback = entries.iter().find(|e| e.action == "RollBack").expect("v3 was rolled back");
    assert_eq!((rollback.version, rollback.reason.as_str()), (3, "GuardFailed"));
    let restore = entries.iter().position(|e| e.action == "Restore").expect("v2 restored");
    assert_eq!(entries[restore].version, 2);
    let table = view::history_table(&entries, plain());
    assert!(table.starts_with("TIME"), "{table}");
    assert!(table.lines().any(|l| l.contains(" v3 ") && l.contains("RollBack") && l.contains("GuardFailed")));
    assert_eq!(table.lines().count(), entries.len() + 1);

    let find = |n: u32| versions.iter().find(|v| v.spec.version == n).expect("version kept");
    let rows = view::diff(find(2), find(3));
    let get = |field: &str| -> &DiffRow { rows.iter().find(|r| r.field == field).expect(field) };
    assert_eq!((get("phase").a.as_str(), get("phase").b.as_str()), ("Serving", "RolledBack"));
    assert!(get("dataset version").differs);
    assert_eq!(get("dataset version").a, "2026-11-03");
    assert_eq!(get("dataset version").b, "2026-11-04");
    assert!(!get("dataset uri").differs);
    assert!(!get("metric auc").differs);
    assert_eq!(get("analysis").b, "Fail");
    assert_eq!(get("last decision").b, "RollBack GuardFailed");
    let table = view::diff_table(&rows, 2, 3, plain());
    assert!(table.lines().next().is_some_and(|h| h.contains("FIELD") && h.contains("v2") && h.contains("v3")));
    assert!(table.lines().any(|l| l.starts_with('*') && l.contains("dataset version")), "{table}");
    assert!(table.lines().any(|l| l.starts_with(' ') && l.contains("dataset uri")), "{table}");

    // After the rollback nothing is on its way: promote says so; abort names the serving v2.
    let refused = act::promote(&model, &versions, None).expect_err("nothing waits");
    assert!(refused.starts_with("nothing to promote"), "{refused}");
    let abort = act::abort(&model, &versions, None).expect("v2 serves");
    assert_eq!(abort.patch["metadata"]["annotations"]["modelcycle.io/abort"], "2");
    assert!(abort.done.contains("the version it replaced serves again"), "{}", abort.done);
    let refused = act::abort(&model, &versions, Some(3)).expect_err("v3 is already rolled back");
    assert!(refused.contains("v3 of fraud is RolledBack"), "{refused}");
}

#[test]
fn get_models_lays_out_columns_and_colour_takes_no_room() {
    let (mut sim, start) = simulation();
    at(&mut sim, start, 25);
    let (model, versions) = objects(&sim);
    let rows = view::model_rows(std::slice::from_ref(&model), sim.cluster.now);
    assert_eq!(rows[0].serving, Some(1));
    assert_eq!(rows[0].candidate, Some(2));
    assert_eq!(rows[0].rollout, "WaitingForPromotion");
    let table = view::models_table(&rows, true);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(lines[0].starts_with("NAMESPACE   NAME    SERVING   CANDIDATE   PHASE"), "{table}");
    let column = |line: &str, word: &str| line.find(word).expect(word);
    assert_eq!(column(lines[0], "ROLLOUT"), column(lines[1], "WaitingForPromotion"), "{table}");

    // With colour the tree carries ANSI codes, and its text without them is the plain tree.
    let coloured = view::tree(&model, &versions, sim.cluster.now, Style { colour: true });
    assert!(coloured.contains("\x1b[32mServing\x1b[0m"), "{coloured}");
    let stripped = strip_ansi(&coloured);
    assert_eq!(stripped, view::tree(&model, &versions, sim.cluster.now, plain()));
    let history = view::history_table(&view::history(&versions), Style { colour: true });
    let plain_history = view::history_table(&view::history(&versions), plain());
    assert_eq!(strip_ansi(&history), plain_history, "colour does not move the columns");
}

fn strip_ansi(text: &str) -> String {
    let mut out = String::new();
    let mut code = false;
    for c in text.chars() {
        match (code, c) {
            (false, '\x1b') => code = true,
            (true, 'm') => code = false,
            (true, _) => {}
            (false, c) => out.push(c),
        }
    }
    out
}

#[test]
fn retrain_asks_once_per_call_and_pin_checks_the_version() {
    let (mut sim, start) = simulation();
    at(&mut sim, start, 25);
    let (model, versions) = objects(&sim);
    let t = Timestamp::from_second(1_800_000_000).expect("a time");
    let first = act::retrain(&model, Some("labels fixed"), t).unwrap();
    let second = act::retrain(&model, Some("labels fixed"), t + SignedDuration::from_secs(1)).unwrap();
    let value = |e: &act::Edit| e.patch["metadata"]["annotations"]["modelcycle.io/retrain-request"].clone();
    assert_eq!(value(&first), "2027-01-15T08:00:00Z labels fixed");
    assert_ne!(value(&first), value(&second), "asking twice trains twice");
    assert_eq!(value(&act::retrain(&model, Some("  "), t).unwrap()), "2027-01-15T08:00:00Z");
    let mut sourced = model.clone();
    sourced.spec.training = None;
    sourced.spec.source = Some(modelcycle::api::SourceSpec {
        mlflow: serde_json::from_value(
            serde_json::json!({"trackingUri": "http://mlflow:5000", "name": "fraud-detector", "alias": "staging"}),
        )
        .unwrap(),
    });
    let refused = act::retrain(&sourced, None, t).expect_err("nothing trains");
    assert!(refused.contains("register a new version there and point alias staging at it"), "{refused}");

    assert_eq!(
        act::pin(&model, &versions, 1).expect("v1 served").patch,
        serde_json::json!({"spec": {"pinnedVersion": 1}})
    );
    assert!(act::pin(&model, &versions, 9).expect_err("no v9").contains("does not exist"));
    assert!(act::unpin(&model).expect_err("not pinned").contains("is not pinned"));
    let warning = act::spec_warning(&model);
    assert!(warning.contains("kubectl modelcycle abort fraud"), "{warning}");
    assert_eq!(act::gitops_owner(&model), None);

    // A Model Argo CD applied names Argo CD.
    let mut managed = model.clone();
    managed.metadata.managed_fields = Some(vec![k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry {
        manager: Some("argocd-controller".into()),
        operation: Some("Apply".into()),
        ..Default::default()
    }]);
    assert_eq!(act::gitops_owner(&managed).as_deref(), Some("Argo CD (field manager argocd-controller)"));
    assert!(act::spec_warning(&managed).contains("fraud is managed by Argo CD"));
}

/// The krew manifest template, filled in as krew-release-bot fills it, is a krew Plugin whose
/// every platform runs this crate's `kubectl-modelcycle` binary from a release archive.
#[test]
fn the_krew_manifest_names_the_plugin_binary_on_every_platform() {
    let template = std::fs::read_to_string(".krew.yaml").expect(".krew.yaml");
    let filled: String = template
        .lines()
        .map(|line| match line.find("{{ addURIAndSha \"") {
            Some(at) => {
                let uri = line[at + 17..].split('"').next().expect("a quoted URI").replace("{{ .TagName }}", "v0.1.0");
                format!("{}uri: {uri}\n{}sha256: {}", &line[..at], &line[..at], "0".repeat(64))
            }
            None => line.replace("{{ .TagName }}", "v0.1.0"),
        })
        .collect::<Vec<_>>()
        .join("\n");
    let manifest: serde_json::Value = serde_yaml::from_str(&filled).expect("the filled manifest is YAML");
    assert_eq!(manifest["apiVersion"], "krew.googlecontainertools.github.com/v1alpha2");
    assert_eq!(
        (manifest["kind"].as_str(), manifest["metadata"]["name"].as_str()),
        (Some("Plugin"), Some("modelcycle"))
    );
    assert_eq!(manifest["spec"]["version"], "v0.1.0");
    let platforms = manifest["spec"]["platforms"].as_array().expect("platforms");
    assert_eq!(platforms.len(), 3);
    for p in platforms {
        assert_eq!(p["bin"], env!("CARGO_BIN_EXE_kubectl-modelcycle").rsplit('/').next().expect("a file name"));
        let uri = p["uri"].as_str().expect("uri");
        let os = p["selector"]["matchLabels"]["os"].as_str().expect("os");
        assert!(uri.starts_with("https://") && uri.ends_with(".tar.gz") && uri.contains(os), "{uri}");
        assert_eq!(p["sha256"].as_str().map(str::len), Some(64));
    }
    assert!(manifest["spec"]["shortDescription"].as_str().is_some_and(|d| d.len() <= 80));
}

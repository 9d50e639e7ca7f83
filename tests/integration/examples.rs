//! The example trainer and model server, run for real: the trainer's termination message must
//! parse with the controller's own parser, and the server's metrics must be valid Prometheus text.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use modelcycle::lifecycle::report::{TERMINATION_MESSAGE_MAX, parse_termination_message};

fn example(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/sklearn").join(file)
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("modelcycle-examples-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs the trainer as modelcycle would (the env of the training Job) and returns the message.
fn train(dir: &std::path::Path, version: u32, dataset_version: &str) -> String {
    train_with(dir, version, dataset_version, "false")
}

fn train_with(dir: &std::path::Path, version: u32, dataset_version: &str, broken: &str) -> String {
    let message = dir.join(format!("termination-{version}"));
    let out = Command::new("python3")
        .arg(example("trainer.py"))
        .env("MODELCYCLE_MODEL", "cancer")
        .env("MODELCYCLE_VERSION", version.to_string())
        .env("MODELCYCLE_DATASET_URI", "sklearn://breast_cancer")
        .env("MODELCYCLE_DATASET_VERSION", dataset_version)
        .env("MODELCYCLE_ARTIFACT_URI", dir.join(format!("cancer/{version}")))
        .env("MODELCYCLE_PARAM_N_ESTIMATORS", "50")
        .env("MODELCYCLE_PARAM_BROKEN", broken)
        .env("MODELCYCLE_TERMINATION_MESSAGE_PATH", &message)
        .output()
        .expect("python3 runs (scripts/install-tools.sh installs scikit-learn)");
    assert!(out.status.success(), "trainer failed: {}", String::from_utf8_lossy(&out.stderr));
    std::fs::read_to_string(message).unwrap()
}

#[test]
fn the_trainers_report_parses_with_the_controllers_parser() {
    let dir = scratch("train");
    let message = train(&dir, 1, "2026-11-01");
    assert!(message.len() <= TERMINATION_MESSAGE_MAX, "{} bytes", message.len());
    let report = parse_termination_message(Some(&message)).expect("the controller reads it");
    assert!(report.metrics["auc"] > 0.9, "{:?}", report.metrics);
    assert!(report.metrics.contains_key("log_loss") && report.metrics.contains_key("accuracy"));
    let json: serde_json::Value = serde_json::from_str(&message).unwrap();
    let counts = json["reference"]["predictions"]["counts"].as_array().unwrap();
    assert_eq!(counts.len(), json["reference"]["predictions"]["bounds"].as_array().unwrap().len());
    assert!(dir.join("cancer/1/model.pkl").exists(), "the model is saved under the artifact URI");
}

#[test]
fn another_dataset_version_trains_a_different_model() {
    let dir = scratch("versions");
    let a = parse_termination_message(Some(&train(&dir, 1, "2026-11-01"))).unwrap();
    let b = parse_termination_message(Some(&train(&dir, 2, "2026-12-01"))).unwrap();
    assert_ne!(a.metrics, b.metrics);
    let again = parse_termination_message(Some(&train(&dir, 3, "2026-11-01"))).unwrap();
    let (a, b, again) = (a.dataset.unwrap(), b.dataset.unwrap(), again.dataset.unwrap());
    assert!(a.digest.starts_with("sha256:") && a.rows.is_some_and(|r| r > 300), "{a:?}");
    assert_eq!(a, again, "the same dataset version reads the same data");
    assert_ne!(a.digest, b.digest, "another dataset version reads other data");
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn http(port: u16, request: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let code = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Some((code, body))
}

#[test]
fn the_server_predicts_and_exports_valid_prometheus_metrics_by_version() {
    let dir = scratch("serve");
    train(&dir, 3, "2026-11-01");
    let port = free_port();
    let child = Command::new("python3")
        .arg(example("server.py"))
        .env("MODELCYCLE_MODEL", "cancer")
        .env("MODELCYCLE_VERSION", "3")
        .env("MODELCYCLE_MODEL_URI", format!("file://{}", dir.join("cancer/3").display()))
        .env("PORT", port.to_string())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let _server = Server(child);
    let started = Instant::now();
    while http(port, "GET /healthz HTTP/1.0\r\n\r\n").is_none() {
        assert!(started.elapsed() < Duration::from_secs(30), "the server did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let row = vec!["14.0"; 30].join(",");
    let body = format!("{{\"instances\": [[{row}], [{row}]]}}");
    let request = format!(
        "POST /predict HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let (code, answer) = http(port, &request).unwrap();
    assert_eq!(code, 200, "{answer}");
    let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["predictions"].as_array().unwrap().len(), 2);
    assert_eq!(answer["version"], "3");
    let (code, _) = http(port, "POST /predict HTTP/1.0\r\nContent-Length: 2\r\n\r\n{}").unwrap();
    assert_eq!(code, 400, "a bad request is an error, not a crash");

    let (_, metrics) = http(port, "GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    assert!(metrics.contains(r#"modelcycle_model_requests_total{model="cancer",version="3"} 2.0"#), "{metrics}");
    assert!(metrics.contains(r#"modelcycle_model_request_errors_total{model="cancer",version="3"} 1.0"#));
    assert!(metrics.contains(r#"modelcycle_model_prediction_bucket{le="0.5",model="cancer",version="3"}"#));
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed (Debian package prometheus)");
    promtool.stdin.take().unwrap().write_all(metrics.as_bytes()).unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_example_manifests_are_valid_objects() {
    let text = std::fs::read_to_string(example("model.yaml")).unwrap();
    let model = text.split("\n---\n").find(|d| d.contains("kind: Model")).unwrap();
    let model: modelcycle::api::Model = serde_yaml::from_str(model).unwrap();
    assert!(modelcycle::lifecycle::validate::model_problems(&model).is_empty());
    let policy: modelcycle::api::RetrainPolicy =
        serde_yaml::from_str(&std::fs::read_to_string(example("policy.yaml")).unwrap()).unwrap();
    assert_eq!(policy.spec.model_ref.name, model.metadata.name.clone().unwrap());
}

#[test]
fn the_server_refuses_an_artifact_marked_broken() {
    let dir = scratch("broken");
    train_with(&dir, 4, "2026-11-01", "true");
    let out = Command::new("python3")
        .arg(example("server.py"))
        .env("MODELCYCLE_MODEL_URI", dir.join("cancer/4"))
        .env("PORT", free_port().to_string())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("marked broken"));
}

//! A real MLflow tracking server for tests: `mlflow server` with a SQLite backend in a folder of
//! its own, on a free loopback port; stopped (and its folder removed) on drop. It can be stopped
//! and started again on the same port and database, to test an outage.

#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running (or stopped) MLflow server.
pub struct TestMlflow {
    child: Option<Child>,
    /// `http://127.0.0.1:<port>`.
    pub uri: String,
    port: u16,
    dir: std::path::PathBuf,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl TestMlflow {
    /// Starts a server with an empty registry and waits until it answers.
    pub fn start() -> TestMlflow {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("modelcycle-mlflow-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut server = TestMlflow { child: None, uri: format!("http://127.0.0.1:{port}"), port, dir };
        server.resume();
        server
    }

    /// Stops the server (the registry stays on disk).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // `mlflow server` runs its workers as children: stop the whole process group.
            let _ = Command::new("kill").args(["-s", "KILL", "--", &format!("-{}", child.id())]).status();
            let _ = child.kill();
            let _ = child.wait();
            let deadline = Instant::now() + Duration::from_secs(10);
            while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    /// Starts the server again on the same port and database, and waits until it answers.
    pub fn resume(&mut self) {
        let log = std::fs::File::create(self.dir.join("server.log")).unwrap();
        use std::os::unix::process::CommandExt;
        let child = Command::new("mlflow")
            .args(["server", "--host", "127.0.0.1", "--port", &self.port.to_string(), "--workers", "1"])
            .arg("--backend-store-uri")
            .arg(format!("sqlite:///{}", self.dir.join("mlflow.db").display()))
            .arg("--default-artifact-root")
            .arg(self.dir.join("artifacts"))
            // Webhooks to the controller under test, which listens on plain HTTP on loopback.
            .env("MLFLOW_WEBHOOK_ALLOWED_SCHEMES", "http,https")
            .env("MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS", "true")
            // A webhook registered by a test is delivered to from the next event on.
            .env("MLFLOW_WEBHOOK_CACHE_TTL", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("mlflow is installed (pip install mlflow; scripts/install-tools.sh does)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let answered = std::net::TcpStream::connect(("127.0.0.1", self.port))
                .ok()
                .and_then(|mut s| {
                    use std::io::{Read, Write};
                    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
                    s.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").ok()?;
                    let mut text = String::new();
                    s.read_to_string(&mut text).ok()?;
                    Some(text.starts_with("HTTP/1.1 200"))
                })
                .unwrap_or(false);
            if answered {
                return;
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
                panic!("mlflow server exited ({status}):\n{log}");
            }
            assert!(Instant::now() < deadline, "mlflow server did not answer in 120s");
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for TestMlflow {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Writes to a test MLflow over its REST API, as a notebook or a data platform would.
pub mod client {
    use serde_json::{Value, json};

    fn http() -> reqwest::Client {
        modelcycle::sources::prometheus::http_client(std::time::Duration::from_secs(30), false).expect("a client")
    }

    /// POSTs `body` to `/api/2.0/mlflow/<path>` and returns the answer (panics on an error).
    pub async fn post(uri: &str, path: &str, body: Value) -> Value {
        let http = http();
        let answer =
            http.post(format!("{uri}/api/2.0/mlflow/{path}")).json(&body).send().await.expect("MLflow answers");
        let status = answer.status();
        let value: Value = answer.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "POST {path}: {status} {value}");
        value
    }

    /// Logs a run with `params` and `metrics` in the default experiment; its id.
    pub async fn run(uri: &str, params: &[(&str, &str)], metrics: &[(&str, f64)]) -> String {
        let run = post(uri, "runs/create", json!({"experiment_id": "0"})).await;
        let id = run["run"]["info"]["run_id"].as_str().expect("a run id").to_string();
        let params: Vec<Value> = params.iter().map(|(k, v)| json!({"key": k, "value": v})).collect();
        let metrics: Vec<Value> =
            metrics.iter().map(|(k, v)| json!({"key": k, "value": v, "timestamp": 0, "step": 0})).collect();
        post(uri, "runs/log-batch", json!({"run_id": id, "params": params, "metrics": metrics})).await;
        id
    }

    /// Registers a version of `name` (created if missing) from `run_id`; its number.
    pub async fn register(uri: &str, name: &str, run_id: &str) -> String {
        let _ = http()
            .post(format!("{uri}/api/2.0/mlflow/registered-models/create"))
            .json(&json!({"name": name}))
            .send()
            .await;
        let body = json!({"name": name, "source": format!("runs:/{run_id}/model"), "run_id": run_id});
        let created = post(uri, "model-versions/create", body).await;
        created["model_version"]["version"].as_str().expect("a version").to_string()
    }

    /// Points `alias` of `name` at `version`.
    pub async fn set_alias(uri: &str, name: &str, alias: &str, version: &str) {
        post(uri, "registered-models/alias", json!({"name": name, "alias": alias, "version": version})).await;
    }

    /// Registers a webhook for new versions and set aliases, signed with `secret`.
    pub async fn webhook(uri: &str, url: &str, secret: &str) {
        let events = json!([
            {"entity": "MODEL_VERSION", "action": "CREATED"},
            {"entity": "MODEL_VERSION_ALIAS", "action": "CREATED"}
        ]);
        post(uri, "webhooks", json!({"name": "modelcycle", "url": url, "events": events, "secret": secret})).await;
    }

    /// Posts a delivery of a new version of `name` to `url`, signed with `secret` as MLflow
    /// would sign it; the status and body of the answer.
    pub async fn deliver(url: &str, secret: &str, name: &str) -> (u16, String) {
        let body = format!(
            r#"{{"entity": "model_version", "action": "created", "data": {{"name": "{name}", "version": "99"}}}}"#
        );
        let now = jiff::Timestamp::now().as_second().to_string();
        let signature = modelcycle::sources::mlflow_webhook::sign(secret, "d-1", &now, body.as_bytes());
        let answer = http()
            .post(url)
            .header("X-MLflow-Delivery-Id", "d-1")
            .header("X-MLflow-Timestamp", &now)
            .header("X-MLflow-Signature", signature)
            .body(body)
            .send()
            .await
            .expect("the controller answers");
        let status = answer.status().as_u16();
        (status, answer.text().await.unwrap_or_default())
    }
}

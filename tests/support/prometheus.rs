//! A real Prometheus for tests: started on a free loopback port with its own config, scraping
//! an exporter the test runs on loopback and whose text the test changes; stopped on drop.

#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the exporter serves; change it to change what Prometheus scrapes next.
#[derive(Clone, Default)]
pub struct Exposition(Arc<Mutex<String>>);

impl Exposition {
    /// Serve `text` from the next scrape on.
    pub fn set(&self, text: impl Into<String>) {
        *self.0.lock().unwrap() = text.into();
    }
}

/// A running Prometheus and its exporter.
pub struct TestPrometheus {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub address: String,
    /// The exporter's content.
    pub exposition: Exposition,
    dir: std::path::PathBuf,
}

impl Drop for TestPrometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Serves the exposition on a free loopback port; returns the port.
async fn exporter(exposition: Exposition) -> u16 {
    serve_text("text/plain; version=0.0.4", move || exposition.0.lock().unwrap().clone()).await
}

/// Answers every HTTP request on a free loopback port with `200`, `content_type` and the text
/// `body()` gives at that moment; returns the port.
pub async fn serve_text(content_type: &'static str, body: impl Fn() -> String + Send + 'static) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        loop {
            let Ok((mut socket, _)) = listener.accept().await else { return };
            let text = body();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                    text.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    port
}

impl TestPrometheus {
    /// Starts the exporter and a Prometheus scraping it every second.
    pub async fn start(initial: &str) -> TestPrometheus {
        let exposition = Exposition::default();
        exposition.set(initial);
        let exporter_port = exporter(exposition.clone()).await;
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("modelcycle-prometheus-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nscrape_configs:\n  - job_name: model\n    static_configs: [{{targets: ['127.0.0.1:{exporter_port}']}}]\n"
        );
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus is installed (scripts/install-tools.sh installs Debian's package)");
        let prometheus = TestPrometheus { child, address: format!("http://127.0.0.1:{port}"), exposition, dir };
        prometheus.wait_until_scraped("up{job=\"model\"} == 1").await;
        prometheus
    }

    /// A Prometheus holding the samples of `openmetrics` (OpenMetrics text with timestamps, ending
    /// in `# EOF`) as history: written into blocks with `promtool tsdb create-blocks-from
    /// openmetrics` before it starts, kept for ten years, scraping nothing. The blocks may span 32
    /// days: at promtool's default of two hours, four weeks of history were 340 blocks, written in
    /// over a minute on a busy machine and then compacted by Prometheus while the test queried it.
    pub async fn backfilled(openmetrics: &str) -> TestPrometheus {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("modelcycle-prometheus-{}-{port}", std::process::id()));
        std::fs::create_dir_all(dir.join("data")).unwrap();
        std::fs::write(dir.join("history.om"), openmetrics).unwrap();
        let made = Command::new("promtool")
            .args(["tsdb", "create-blocks-from", "openmetrics", "--quiet", "--max-block-duration=768h"])
            .arg(dir.join("history.om"))
            .arg(dir.join("data"))
            .output()
            .expect("promtool is installed (scripts/install-tools.sh installs Debian's package)");
        assert!(made.status.success(), "promtool refused the history: {}", String::from_utf8_lossy(&made.stderr));
        std::fs::write(dir.join("prometheus.yml"), "global: {scrape_interval: 1m}\n").unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg("--storage.tsdb.retention.time=3650d")
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus is installed");
        let prometheus = TestPrometheus {
            child,
            address: format!("http://127.0.0.1:{port}"),
            exposition: Exposition::default(),
            dir,
        };
        prometheus.wait_until_scraped("vector(1)").await;
        prometheus
    }

    /// Stops the server (its address then refuses connections).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits (up to 30 s) until `promql` returns at least one series.
    /// Runs `promql` now: its result (possibly empty), or Prometheus' error.
    pub async fn query(&self, promql: &str) -> Result<Vec<serde_json::Value>, String> {
        let client = modelcycle::sources::prometheus::http_client(Duration::from_secs(5), false).unwrap();
        let url = format!("{}/api/v1/query", self.address);
        let answer = client.get(&url).query(&[("query", promql)]).send().await.map_err(|e| e.to_string())?;
        let v: serde_json::Value = answer.json().await.map_err(|e| e.to_string())?;
        match v["status"].as_str() {
            Some("success") => Ok(v["data"]["result"].as_array().cloned().unwrap_or_default()),
            _ => Err(format!("{}: {}", v["errorType"], v["error"])),
        }
    }

    pub async fn wait_until_scraped(&self, promql: &str) {
        let client = modelcycle::sources::prometheus::http_client(Duration::from_secs(5), false).unwrap();
        let started = Instant::now();
        loop {
            let url = format!("{}/api/v1/query", self.address);
            if let Ok(r) = client.get(&url).query(&[("query", promql)]).send().await
                && let Ok(v) = r.json::<serde_json::Value>().await
                && v["data"]["result"].as_array().is_some_and(|a| !a.is_empty())
            {
                return;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "Prometheus never returned {promql}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// Exposition text of a prediction histogram with these per-bucket counts over bounds 0.1..1.0.
pub fn prediction_histogram(model: &str, counts: &[u64]) -> String {
    let mut text = String::from("# TYPE model_prediction histogram\n");
    let mut cumulative = 0;
    for (i, c) in counts.iter().enumerate() {
        cumulative += c;
        let le = format!("{:.1}", (i + 1) as f64 / 10.0);
        text += &format!("model_prediction_bucket{{model=\"{model}\",le=\"{le}\"}} {cumulative}\n");
    }
    text += &format!("model_prediction_bucket{{model=\"{model}\",le=\"+Inf\"}} {cumulative}\n");
    text += &format!(
        "model_prediction_count{{model=\"{model}\"}} {cumulative}\nmodel_prediction_sum{{model=\"{model}\"}} 0\n"
    );
    text
}

/// Exposition text of one histogram family `model_score` with a series set per version, each
/// with these per-bucket counts over bounds 0.25, 0.5, 0.75, 1.0.
pub fn scores_by_version(versions: &[(u32, &[u64])]) -> String {
    let mut text = String::from("# TYPE model_score histogram\n");
    for (version, counts) in versions {
        let mut cumulative = 0;
        for (i, c) in counts.iter().enumerate() {
            cumulative += c;
            let le = format!("{}", (i + 1) as f64 / 4.0);
            text += &format!("model_score_bucket{{version=\"{version}\",le=\"{le}\"}} {cumulative}\n");
        }
        text += &format!("model_score_bucket{{version=\"{version}\",le=\"+Inf\"}} {cumulative}\n");
        text += &format!(
            "model_score_count{{version=\"{version}\"}} {cumulative}\nmodel_score_sum{{version=\"{version}\"}} 0\n"
        );
    }
    text
}

/// One series of a backfill: its labels as written between braces, and `(unix seconds, value)` samples.
pub type Samples = (String, Vec<(i64, f64)>);

/// OpenMetrics text of series sampled at the given times: one family per `(name, type)`, each
/// with its series; ends in `# EOF`.
pub fn openmetrics(families: &[(&str, &str, Vec<Samples>)]) -> String {
    let mut text = String::new();
    for (family, kind, series) in families {
        text += &format!("# TYPE {family} {kind}\n");
        let sample = if *kind == "counter" { format!("{family}_total") } else { family.to_string() };
        for (labels, samples) in series {
            for (t, v) in samples {
                text += &format!("{sample}{{{labels}}} {v} {t}\n");
            }
        }
    }
    text + "# EOF\n"
}

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

//! One PASS or FAIL line per checked step; on failure, what a person needs to see why.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Instant;

use crate::cluster::{Check, Cluster};

/// Where a failure happened: the namespace to show and the controller whose log to tail.
pub struct Scene<'a> {
    /// The control plane.
    pub cluster: &'a Cluster,
    /// The namespace whose objects and Events to print.
    pub namespace: String,
    /// The controller's log.
    pub log: Option<PathBuf>,
}

/// The suite's results so far.
pub struct Report {
    results: Mutex<Vec<(bool, String)>>,
    started: Instant,
}

impl Default for Report {
    fn default() -> Self {
        Self { results: Mutex::default(), started: Instant::now() }
    }
}

impl Report {
    /// Records and prints a passed step.
    pub fn pass(&self, what: &str) {
        let elapsed = self.started.elapsed().as_secs();
        println!("PASS  [{elapsed:>4}s] {what}");
        self.push(true, what);
    }

    /// Records and prints a failed step, with the scene's objects, Events and controller log.
    pub fn fail(&self, what: &str, why: &str, scene: Option<&Scene>) {
        let mut text = format!("FAIL  [{:>4}s] {what}\n      why: {why}\n", self.started.elapsed().as_secs());
        if let Some(scene) = scene {
            text.push_str(&dump(scene));
        }
        let mut results = self.results.lock().unwrap_or_else(|e| e.into_inner());
        println!("{text}");
        results.push((false, what.to_string()));
    }

    /// Records `result` as the outcome of `what`; true when it passed.
    pub fn check(&self, what: &str, result: Check, scene: Option<&Scene>) -> bool {
        match result {
            Ok(()) => {
                self.pass(what);
                true
            }
            Err(why) => {
                self.fail(what, &why, scene);
                false
            }
        }
    }

    fn push(&self, passed: bool, what: &str) {
        self.results.lock().unwrap_or_else(|e| e.into_inner()).push((passed, what.to_string()));
    }

    /// Prints the totals; failure when any step failed or none ran.
    pub fn summary(&self) -> ExitCode {
        let results = self.results.lock().unwrap_or_else(|e| e.into_inner());
        let failed: Vec<_> = results.iter().filter(|(ok, _)| !ok).map(|(_, what)| what.as_str()).collect();
        println!(
            "\ne2e: {} steps passed, {} failed, in {}s",
            results.len() - failed.len(),
            failed.len(),
            self.started.elapsed().as_secs()
        );
        for what in &failed {
            println!("  failed: {what}");
        }
        if failed.is_empty() && !results.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
    }
}

/// The objects of the scene's namespace, their Events and the controller's last log lines.
fn dump(scene: &Scene) -> String {
    let ns = scene.namespace.as_str();
    let mut out = String::new();
    let mut section = |title: &str, args: &[&str]| {
        out.push_str(&format!("      --- {title}\n"));
        let text = scene.cluster.kubectl(args).unwrap_or_else(|e| format!("(kubectl failed: {e})"));
        for line in text.lines() {
            out.push_str(&format!("      {line}\n"));
        }
    };
    section(&format!("objects in {ns}"), &["-n", ns, "get", "modelcycle,jobs,deploy,rs,svc,pods", "-o", "wide"]);
    section(
        "ModelVersion messages",
        &[
            "-n",
            ns,
            "get",
            "mv",
            "-o",
            "custom-columns=NAME:.metadata.name,PHASE:.status.phase,MESSAGE:.status.message",
        ],
    );
    section(
        "Model conditions",
        &[
            "-n",
            ns,
            "get",
            "mdl",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name}{': '}{.status.conditions}{'\\n'}{end}",
        ],
    );
    section("Events", &["-n", ns, "get", "events", "--sort-by=.metadata.creationTimestamp"]);
    if let Some(log) = &scene.log {
        out.push_str(&format!("      --- the controller's log ({})\n", log.display()));
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<_> = text.lines().collect();
        for line in &lines[lines.len().saturating_sub(40)..] {
            out.push_str(&format!("      {line}\n"));
        }
    }
    out
}

//! `kubectl modelcycle` on the real control plane: kubectl finds the plugin on the PATH, and a
//! Model is operated with it alone: retrained, promoted at its manual gate, aborted while it
//! serves, compared, pinned and unpinned; `get model --watch` runs in a real terminal (tmux)
//! and its screen is read back as it changes.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use kube::Api;
use kube::api::{Patch, PatchParams};
use modelcycle::api::Model;
use serde_json::{Value, json};

use super::{Behaviour, Steps, apply, kwok_model, model, wait_phase, wait_quiet};
use crate::cluster::{Check, Cluster, eventually};
use crate::ensure;

/// What `kubectl modelcycle ARGS` printed, and whether it succeeded.
pub struct Ran {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// The folder holding the built plugin, put first on the PATH.
fn plugin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_kubectl-modelcycle")).parent().map(Path::to_path_buf).unwrap_or_default()
}

fn path_with_plugin() -> String {
    format!("{}:{}", plugin_dir().display(), std::env::var("PATH").unwrap_or_default())
}

/// Runs `kubectl modelcycle -n NS ARGS` through the control plane's kubectl, as a user would.
pub fn plugin(cluster: &Cluster, ns: &str, args: &[&str]) -> Check<Ran> {
    let out = Command::new(cluster.env.bin.join("kubectl"))
        .arg("modelcycle")
        .args(["-n", ns])
        .args(args)
        .env("KUBECONFIG", &cluster.env.kubeconfig)
        .env("PATH", path_with_plugin())
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run kubectl modelcycle: {e}"))?;
    Ok(Ran {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// Like [`plugin`], for a command that must succeed: its output.
fn ok(cluster: &Cluster, ns: &str, args: &[&str]) -> Check<String> {
    let ran = plugin(cluster, ns, args)?;
    ensure!(ran.ok, "kubectl modelcycle {args:?} failed: {}{}", ran.stderr, ran.stdout);
    ensure!(!ran.stdout.contains('\x1b'), "colour on a pipe: {:?}", ran.stdout);
    Ok(ran.stdout)
}

/// A tmux server of its own running `get model --watch` in an 160×50 terminal; gone when dropped.
struct Terminal {
    socket: String,
}

impl Terminal {
    fn start(cluster: &Cluster, ns: &str, name: &str) -> Check<Terminal> {
        let socket = format!("modelcycle-e2e-{}", std::process::id());
        let kubectl = cluster.env.bin.join("kubectl");
        // The pane outlives the command, so that a failure stays on the screen to be read. The
        // PATH is set in the command: the shell tmux starts may reset it.
        let command = format!(
            "env PATH='{}' {} modelcycle -n {ns} get model {name} --watch; echo \"[kubectl modelcycle exited $?]\"; sleep 3600",
            path_with_plugin(),
            kubectl.display()
        );
        let status = Command::new("tmux")
            .args(["-L", &socket, "new-session", "-d", "-x", "160", "-y", "50", "-s", "watch"])
            .args(["-e", &format!("KUBECONFIG={}", cluster.env.kubeconfig.display())])
            .args(["-e", "TERM=xterm-256color"])
            .arg(command)
            .env_remove("TMUX")
            .status()
            .map_err(|e| format!("cannot run tmux: {e}"))?;
        ensure!(status.success(), "tmux new-session failed: {status}");
        Ok(Terminal { socket })
    }

    /// The screen as shown, with (`escapes`) or without its colour codes.
    fn screen(&self, escapes: bool) -> Check<String> {
        let mut args = vec!["-L", &self.socket, "capture-pane", "-p", "-t", "watch"];
        if escapes {
            args.push("-e");
        }
        let out = Command::new("tmux").args(&args).output().map_err(|e| e.to_string())?;
        ensure!(out.status.success(), "tmux capture-pane: {}", String::from_utf8_lossy(&out.stderr));
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Waits until the screen shows every one of `texts`.
    async fn shows(&self, texts: &[&str], seconds: u64) -> Check<String> {
        eventually(&format!("the watching terminal to show {texts:?}"), Duration::from_secs(seconds), || async {
            let screen = self.screen(false)?;
            for text in texts {
                ensure!(screen.contains(text), "{text:?} not on the screen:\n{screen}");
            }
            Ok(screen)
        })
        .await
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = Command::new("tmux").args(["-L", &self.socket, "kill-server"]).status();
    }
}

/// The annotations of the Model.
async fn annotation(cluster: &Cluster, ns: &str, name: &str, key: &str) -> Check<Option<String>> {
    Ok(model(cluster, ns, name).await?.metadata.annotations.and_then(|a| a.get(key).cloned()))
}

/// The Model operated through `kubectl modelcycle` only.
pub async fn plugin_story(cluster: &Cluster, steps: &mut Steps<'_>) {
    let ns = steps.ns().to_string();
    let ns = ns.as_str();
    let name = "pricing";
    let mut model_json = kwok_model(name, &Behaviour::default());
    model_json["spec"]["serving"]["promotion"] = json!("Manual");
    let mut terminal: Option<Terminal> = None;

    steps
        .step("kubectl finds the plugin on the PATH: get models lists the Model serving v1, -o json a List", async {
            apply(cluster, ns, &model_json).await?;
            wait_phase(cluster, ns, name, 1, "Serving", 90).await?;
            let table = eventually("get models to show v1 serving", Duration::from_secs(20), || async {
                let table = ok(cluster, ns, &["get", "models"])?;
                let row = table.lines().find(|l| l.starts_with(name)).ok_or(format!("no row:\n{table}"))?;
                ensure!(row.split_whitespace().nth(1) == Some("1"), "SERVING is not 1:\n{table}");
                Ok(table)
            })
            .await?;
            ensure!(table.starts_with("NAME"), "{table}");
            let listed: Value =
                serde_json::from_str(&ok(cluster, ns, &["get", "models", "-o", "json"])?).map_err(|e| e.to_string())?;
            ensure!(listed["kind"] == "List", "{listed}");
            ensure!(listed["items"][0]["metadata"]["name"] == name, "{listed}");
            let everywhere = ok(cluster, ns, &["get", "models", "-A"])?;
            ensure!(everywhere.starts_with("NAMESPACE") && everywhere.contains(ns), "{everywhere}");
            let missing = plugin(cluster, ns, &["get", "model", "nosuch"])?;
            ensure!(!missing.ok && missing.stderr.contains("not found"), "{}", missing.stderr);
            Ok(())
        })
        .await;
    steps
        .step("get model --watch in a terminal shows the tree, in colour", async {
            let t = Terminal::start(cluster, ns, name)?;
            let screen =
                t.shows(&[&format!("Model {ns}/{name}"), "v1 ★  Serving", "gate      auc min 0.8: Pass"], 30).await?;
            ensure!(screen.contains("promotion Manual"), "{screen}");
            let coloured = t.screen(true)?;
            ensure!(coloured.contains('\x1b'), "no colour on a terminal:\n{coloured}");
            terminal = Some(t);
            Ok(())
        })
        .await;
    steps
        .step(
            "retrain --reason trains v2 (trigger Manual, the reason in its evidence); the terminal shows it waiting",
            async {
                let said = ok(cluster, ns, &["retrain", name, "--reason", "labels fixed"])?;
                ensure!(said.contains("annotated modelcycle.io/retrain-request="), "{said}");
                let request = annotation(cluster, ns, name, "modelcycle.io/retrain-request").await?.unwrap_or_default();
                ensure!(request.ends_with(" labels fixed"), "the annotation is {request:?}");
                let v2 = wait_phase(cluster, ns, name, 2, "Ready", 90).await?;
                ensure!(v2.spec.trigger.reason == "Manual", "v2's trigger is {}", v2.spec.trigger.reason);
                let t = terminal.as_ref().ok_or("no terminal")?;
                t.shows(&["candidate v2", "v2  Ready  trigger Manual", "rollout   WaitingForPromotion"], 30).await?;
                Ok(())
            },
        )
        .await;
    steps
        .step("promote without a version names the waiting v2, which serves; the terminal follows", async {
            let refused = plugin(cluster, ns, &["promote", name, "1"])?;
            ensure!(!refused.ok && refused.stderr.contains("only the version on its way (v2)"), "{}", refused.stderr);
            let said = ok(cluster, ns, &["promote", name])?;
            ensure!(said.contains("modelcycle.io/promote=2"), "{said}");
            wait_phase(cluster, ns, name, 2, "Serving", 60).await?;
            let t = terminal.as_ref().ok_or("no terminal")?;
            t.shows(&["v2 ★  Serving", "v1  Retired"], 30).await?;
            Ok(())
        })
        .await;
    steps
        .step("abort without a version rolls the serving v2 back at once: v1 serves again", async {
            let said = ok(cluster, ns, &["abort", name])?;
            ensure!(said.contains("modelcycle.io/abort=2"), "{said}");
            wait_phase(cluster, ns, name, 1, "Serving", 60).await?;
            wait_phase(cluster, ns, name, 2, "RolledBack", 30).await?;
            let t = terminal.as_ref().ok_or("no terminal")?;
            t.shows(&["v1 ★  Serving", "v2  RolledBack"], 30).await?;
            Ok(())
        })
        .await;
    // The terminal has shown what it had to; end it before the steady-state window.
    drop(terminal.take());
    steps
        .step("history tells what served when; -o json carries the same entries", async {
            wait_quiet(cluster, ns, name, 60).await?;
            let table = ok(cluster, ns, &["history", name])?;
            let row = |version: &str, action: &str, reason: &str| {
                table.lines().any(|l| {
                    let cells: Vec<&str> = l.split_whitespace().collect();
                    cells.get(2) == Some(&version) && cells.get(3) == Some(&action) && cells.get(4) == Some(&reason)
                })
            };
            for (version, action, reason) in [
                ("v1", "Serve", "RolloutComplete"),
                ("v2", "Trigger", "Manual"),
                ("v2", "RollBack", "Aborted"),
                ("v1", "Restore", "EmergencyRollBack"),
            ] {
                ensure!(row(version, action, reason), "no {version} {action} {reason}:\n{table}");
            }
            let entries: Vec<Value> =
                serde_json::from_str(&ok(cluster, ns, &["history", name, "-o", "json"])?).map_err(|e| e.to_string())?;
            ensure!(entries.len() + 1 == table.lines().count(), "{} entries, table:\n{table}", entries.len());
            let yaml = ok(cluster, ns, &["history", name, "-o", "yaml"])?;
            ensure!(yaml.contains("action: RollBack"), "{yaml}");
            Ok(())
        })
        .await;
    steps
        .step("diff 1 v2 marks what differs: the trigger and its evidence, the verdicts", async {
            let table = ok(cluster, ns, &["diff", name, "1", "v2"])?;
            let line = |field: &str| table.lines().find(|l| l[1..].trim_start().starts_with(field)).unwrap_or("");
            ensure!(line("trigger ").starts_with('*') && line("trigger ").contains("Manual"), "{table}");
            ensure!(line("trigger evidence").contains("labels fixed"), "{table}");
            ensure!(line("dataset uri").starts_with(' '), "{table}");
            ensure!(line("last decision").contains("RollBack Aborted"), "{table}");
            let missing = plugin(cluster, ns, &["diff", name, "1", "9"])?;
            ensure!(!missing.ok && missing.stderr.contains("has no v9 (it has v1, v2)"), "{}", missing.stderr);
            Ok(())
        })
        .await;
    steps
        .step("pin warns that the spec is GitOps', sets spec.pinnedVersion; unpin removes it", async {
            let ran = plugin(cluster, ns, &["pin", name, "1"])?;
            ensure!(ran.ok, "{}", ran.stderr);
            ensure!(ran.stderr.contains("warning: this edits spec.pinnedVersion"), "{}", ran.stderr);
            ensure!(ran.stderr.contains(&format!("kubectl modelcycle abort {name}")), "{}", ran.stderr);
            let pinned = model(cluster, ns, name).await?.spec.pinned_version;
            ensure!(pinned == Some(1), "pinnedVersion is {pinned:?}");
            ok(cluster, ns, &["unpin", name])?;
            let pinned = model(cluster, ns, name).await?.spec.pinned_version;
            ensure!(pinned.is_none(), "pinnedVersion is {pinned:?}");
            Ok(())
        })
        .await;
    steps
        .step("a Model Argo CD applies is not edited without --force, and the refusal names Argo CD", async {
            let label = json!({"apiVersion": "modelcycle.io/v1alpha1", "kind": "Model",
                "metadata": {"name": name, "labels": {"e2e.modelcycle.io/synced": "true"}}});
            Api::<Model>::namespaced(cluster.client.clone(), ns)
                .patch(name, &PatchParams::apply("argocd-controller"), &Patch::Apply(&label))
                .await
                .map_err(|e| e.to_string())?;
            let ran = plugin(cluster, ns, &["pin", name, "1"])?;
            ensure!(!ran.ok, "pinned a Model Argo CD manages");
            ensure!(ran.stderr.contains("managed by Argo CD (field manager argocd-controller)"), "{}", ran.stderr);
            ensure!(model(cluster, ns, name).await?.spec.pinned_version.is_none(), "the spec changed");
            Ok(())
        })
        .await;
    steps
        .step("--context picks the kubeconfig context; an unknown one is refused with the reason", async {
            let context = cluster.kubectl(&["config", "current-context"])?;
            let table = ok(cluster, ns, &["--context", context.trim(), "get", "models"])?;
            ensure!(table.contains(name), "{table}");
            let ran = plugin(cluster, ns, &["--context", "nosuch", "get", "models"])?;
            ensure!(!ran.ok && ran.stderr.contains("kubeconfig") && ran.stderr.contains("nosuch"), "{}", ran.stderr);
            Ok(())
        })
        .await;
}

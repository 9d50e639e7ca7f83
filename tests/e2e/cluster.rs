//! The control plane the suite runs against: its client, kubectl and Helm, and waiting helpers.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;

/// What `e2e/cluster.sh up` exported.
#[derive(Clone, Debug)]
pub struct Env {
    /// The cluster's folder: PIDs, logs, certificates, the audit log.
    pub dir: PathBuf,
    /// The folder of the control plane's binaries (kubectl among them).
    pub bin: PathBuf,
    /// The admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// The apiserver's audit log.
    pub audit_log: PathBuf,
    /// `https://127.0.0.1:<port>`.
    pub server: String,
}

impl Env {
    /// The environment of a running control plane, or `None` when there is none.
    pub fn from_process() -> Option<Env> {
        let dir = PathBuf::from(std::env::var_os("E2E_CLUSTER_DIR")?);
        let var = |name: &str| std::env::var(name).ok();
        Some(Env {
            bin: var("E2E_BIN").map(PathBuf::from)?,
            kubeconfig: var("KUBECONFIG").map(PathBuf::from).unwrap_or_else(|| dir.join("admin.kubeconfig")),
            audit_log: var("E2E_AUDIT_LOG").map(PathBuf::from).unwrap_or_else(|| dir.join("audit.log")),
            server: format!("https://127.0.0.1:{}", var("E2E_API_PORT")?),
            dir,
        })
    }
}

/// The control plane: an admin client and the command-line tools.
pub struct Cluster {
    /// Where things are.
    pub env: Env,
    /// A client with the admin's certificate.
    pub client: Client,
    /// The repository's root.
    pub root: PathBuf,
    /// When the suite had the API server stopped, from the stop until it answered again: its
    /// authorizer refuses requests for a moment after a start, before its caches are warm.
    pub outages: std::sync::Mutex<Vec<(jiff::Timestamp, jiff::Timestamp)>>,
}

/// The result of a check: `Err` says what was wrong.
pub type Check<T = ()> = Result<T, String>;

/// Fails a check with a formatted message unless `cond` holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

impl Cluster {
    /// Connects with the admin kubeconfig.
    pub async fn connect(env: Env) -> Check<Cluster> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let kubeconfig = kube::config::Kubeconfig::read_from(&env.kubeconfig).map_err(|e| e.to_string())?;
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.map_err(|e| e.to_string())?;
        let client = Client::try_from(config).map_err(|e| e.to_string())?;
        Ok(Cluster { env, client, root: PathBuf::from(env!("CARGO_MANIFEST_DIR")), outages: Default::default() })
    }

    /// Runs the control plane's kubectl with the admin kubeconfig; its stdout, or its stderr as
    /// the error.
    pub fn kubectl(&self, args: &[&str]) -> Check<String> {
        self.kubectl_stdin(args, None)
    }

    /// kubectl, on a blocking thread (see [`run_beside`]).
    pub async fn kubectl_beside(&self, args: &[&str]) -> Check<String> {
        run_beside(self.kubectl_command(args), None).await
    }

    /// Runs kubectl with `stdin` as its input.
    pub fn kubectl_stdin(&self, args: &[&str], stdin: Option<&str>) -> Check<String> {
        run(self.kubectl_command(args), stdin)
    }

    fn kubectl_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(self.env.bin.join("kubectl"));
        command.arg("--kubeconfig").arg(&self.env.kubeconfig).args(args).current_dir(&self.root);
        command
    }

    /// Runs Helm (from `.tools/bin`, as scripts/install-tools.sh puts it) with the admin kubeconfig.
    pub fn helm(&self, args: &[&str]) -> Check<String> {
        let local = self.root.join(".tools/bin/helm");
        let mut command = Command::new(if local.exists() { local } else { PathBuf::from("helm") });
        command.env("KUBECONFIG", &self.env.kubeconfig).args(args).current_dir(&self.root);
        run(command, None)
    }

    /// Creates `name` (labelled as the suite's), or keeps it if it exists.
    pub async fn namespace(&self, name: &str) -> Check {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let ns = json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": {"e2e.modelcycle.io/suite": "true"}}});
        api.patch(name, &PatchParams::apply("e2e").force(), &Patch::Apply(&ns)).await.map_err(|e| e.to_string())?;
        Ok(())
    }

    /// A path of the repository.
    pub fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    /// The cluster's folder for files the suite writes (logs, kubeconfigs).
    pub fn state(&self, name: &str) -> PathBuf {
        self.env.dir.join(name)
    }
}

/// [`run`] on a blocking thread, so that the stories running beside it go on meanwhile.
pub async fn run_beside(command: Command, stdin: Option<String>) -> Check<String> {
    tokio::task::spawn_blocking(move || run(command, stdin.as_deref())).await.map_err(|e| e.to_string())?
}

pub fn run(mut command: Command, stdin: Option<&str>) -> Check<String> {
    use std::io::Write;
    use std::process::Stdio;
    let shown = format!("{command:?}");
    command.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().map_err(|e| format!("cannot run {shown}: {e}"))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes()).map_err(|e| e.to_string())?;
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!("{}{}", String::from_utf8_lossy(&out.stderr).trim(), String::from_utf8_lossy(&out.stdout).trim()))
    }
}

/// Polls `probe` every 250 ms until it gives `Ok`, for at most `timeout`; the last reason why
/// not otherwise, saying how long it waited for `what`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> Check<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Check<T>>,
{
    let start = Instant::now();
    loop {
        match probe().await {
            Ok(value) => return Ok(value),
            Err(why) if start.elapsed() >= timeout => {
                return Err(format!("{what}: not after {}s: {why}", timeout.as_secs()));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// Reads a file, or says why not.
pub fn read(path: &Path) -> Check<String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

//! The integration tests, as one test binary: the simulator's stories, the kube shell against
//! scripted API servers, the chart, the CRDs' admission, and the clients against real
//! Prometheus and MLflow servers.
//!
//! One binary, not one per file: each test binary links the whole controller with kube, tokio
//! and reqwest, so nineteen of them cost nineteen links and 2.8 GB of disk (about 150 MB each;
//! this one is about 200 MB), which filled CI's disk. Add a file here as a module. (The e2e suite on a real control plane is its own binary,
//! `tests/e2e/`.)

#[path = "../support/mlflow.rs"]
mod mlflow_support;
#[path = "../support/sampling.rs"]
mod sampling;
#[path = "../support/sim.rs"]
mod sim_support;
#[path = "../support/mod.rs"]
mod support;

mod admission;
mod advise;
mod argocd_health;
mod backtest;
mod chart;
mod examples;
mod kserve;
mod kube_shell;
mod lineage;
mod mlflow;
mod monitor;
mod plugin;
mod progressive;
mod prometheus;
mod rbac;
mod registry;
mod retrain;
mod scenarios;
mod source;

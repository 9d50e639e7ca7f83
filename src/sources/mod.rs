//! Where numbers come from and where versions go: Prometheus (live metrics) and MLflow (the
//! model registry), behind small types the core reads and writes.

pub mod history;
pub mod mlflow;
pub mod mlflow_webhook;
pub mod prometheus;

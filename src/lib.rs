//! modelcycle: a Kubernetes operator that keeps machine-learning models good in production.

pub mod api;
pub mod cli;
pub mod error;
pub mod kube;
pub mod lifecycle;
pub mod objects;
pub mod sim;
pub mod sources;
pub mod stats;

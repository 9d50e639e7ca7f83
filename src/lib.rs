//! modelcycle: a Kubernetes operator that keeps machine-learning models good in production.

pub mod advise;
pub mod api;
pub mod backtest;
pub mod cli;
pub mod commands;
pub mod error;
#[cfg(feature = "heap-profile")]
pub mod heap_profile;
pub mod kube;
pub mod lifecycle;
pub mod objects;
pub mod plugin;
pub mod sim;
pub mod sources;
pub mod stats;

//! The real-cluster shell: watches, server-side apply, status writes, Events, leader election.

pub mod apply;
pub mod children;
pub mod context;
pub mod decoded;
pub mod events;
pub mod http;
pub mod index;
pub mod invalid;
pub mod lanes;
pub mod metrics;
pub mod model_controller;
pub mod model_metrics;
pub mod packed;
pub mod policy_controller;
pub mod reading_clients;
pub mod readings;
pub mod registry;
pub mod run;
pub mod source;
pub mod startup;
pub mod trim;
pub mod watch_health;
pub mod watches;

/// Label selector of every object modelcycle creates.
pub const MANAGED_BY_SELECTOR: &str = "app.kubernetes.io/managed-by=modelcycle";

/// Label selector of the trainer pods, whose termination messages carry the metrics.
pub const TRAINER_POD_SELECTOR: &str = "app.kubernetes.io/managed-by=modelcycle,app.kubernetes.io/component=training";

//! Pure builders: decisions turned into Kubernetes objects with deterministic names, labels and owners.

pub mod deployment;
pub mod desired;
pub mod engines;
pub mod inference_service;
pub mod job;
pub mod meta;
pub mod names;
pub mod route;
pub mod service;

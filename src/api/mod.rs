//! The custom resources of `modelcycle.io/v1alpha1`: Model, ModelVersion and RetrainPolicy.

pub mod common;
pub mod crd;
pub mod duration;
pub mod engines;
pub mod gateway;
pub mod kserve;
pub mod model;
pub mod policy;
pub mod registry;
pub mod source;
pub mod version;

pub use common::*;
pub use duration::Duration;
pub use model::*;
pub use policy::*;
pub use registry::*;
pub use source::*;
pub use version::*;

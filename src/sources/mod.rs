//! Where numbers come from: Prometheus (live metrics), behind small types the core reads.

pub mod history;
pub mod prometheus;

//! The pure core: decisions from observed state and `now`, with no I/O and no clock.

pub mod conditions;
pub mod model;
pub mod plan;
pub mod policy;
pub mod validate;

#[cfg(test)]
pub mod testing;

//! The pure core: decisions from observed state and `now`, with no I/O and no clock.

pub mod analysis;
pub mod blue_green;
pub mod canary;
pub mod conditions;
pub mod evaluate;
pub mod history;
pub mod inputs;
pub mod ledger;
pub mod model;
pub mod plan;
pub mod policy;
pub mod reading;
pub mod report;
pub mod rollout;
pub mod serving;
pub mod training;
pub mod transitions;
pub mod triggers;
pub mod validate;

#[cfg(test)]
pub mod testing;

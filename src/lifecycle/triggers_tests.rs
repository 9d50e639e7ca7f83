//! The hygiene rules and helpers of the triggers, from plain values. (Schedules across
//! daylight-saving changes are tested through the simulator in `tests/integration/retrain.rs`, so that they
//! run the controller's own schedule code.)

use super::*;

#[test]
fn durations_render_as_promql() {
    assert_eq!(prom_duration(SignedDuration::from_hours(6)), "6h");
    assert_eq!(prom_duration(SignedDuration::from_mins(90)), "90m");
    assert_eq!(prom_duration(SignedDuration::from_secs(45)), "45s");
}

//! Any text as a scenario file: it parses or is refused with a message; a scenario that parses
//! runs to its end without a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

const MODEL: &str = include_str!("../../examples/quickstart/model.yaml");

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let texts = [("model.yaml".to_string(), MODEL.to_string()), ("scenario.yaml".to_string(), text.to_string())];
    if let Ok(scenario) = modelcycle::sim::scenario::Scenario::parse(&texts) {
        let mut sim = modelcycle::sim::Simulation::new(scenario);
        sim.run();
    }
});

//! Any text as a trainer's termination message: metrics and a reference, or a reason why not.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = modelcycle::lifecycle::report::parse_termination_message(Some(&text));
});

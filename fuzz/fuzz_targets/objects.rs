//! Any JSON as a watched Model, RetrainPolicy or ModelVersion: it decodes, or decoding names the
//! field at fault; never a panic (one object must not take the controller down).
#![no_main]

use libfuzzer_sys::fuzz_target;
use modelcycle::api::{Model, ModelVersion, RetrainPolicy};
use modelcycle::kube::decoded::Decoded;

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<Decoded<Model>>(data);
    let _ = serde_json::from_slice::<Decoded<RetrainPolicy>>(data);
    let _ = serde_json::from_slice::<Decoded<ModelVersion>>(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = text.parse::<modelcycle::api::Duration>();
    }
});

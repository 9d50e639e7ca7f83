//! Any JSON as a watched Model, RetrainPolicy or ModelVersion, decoded as the caches decode them
//! (Models and versions packed): it decodes, or decoding names the field at fault, and a packed
//! object reads back; never a panic (one object must not take the controller down).
#![no_main]

use libfuzzer_sys::fuzz_target;
use modelcycle::api::{Model, ModelVersion, RetrainPolicy};
use modelcycle::kube::decoded::Decoded;
use modelcycle::kube::packed::Packed;

fuzz_target!(|data: &[u8]| {
    if let Ok(Decoded(Ok(model))) = serde_json::from_slice::<Decoded<Packed<Model>>>(data) {
        assert!(model.unpack().is_ok(), "a packed Model reads back");
    }
    let _ = serde_json::from_slice::<Decoded<RetrainPolicy>>(data);
    if let Ok(Decoded(Ok(version))) = serde_json::from_slice::<Decoded<Packed<ModelVersion>>>(data) {
        assert!(version.unpack().is_ok(), "a packed version reads back");
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = text.parse::<modelcycle::api::Duration>();
    }
});

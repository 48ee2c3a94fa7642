//! `discus deid`'s per-file step on arbitrary bytes (`Deidentifier::deidentify_bytes`: read,
//! de-identify, encode), then the verifier's byte walker (`element_spans`) on the input and on
//! the output. The input length's parity picks the options: basic profile, or every option but Retain UIDs (so UIDs are mapped in both).
#![no_main]

use discus_deid::verify::element_spans;
use discus_deid::{Deidentifier, Key, Options};
use discus_fuzz::guard;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let options = if data.len() % 2 == 0 {
        Options::default()
    } else {
        Options {
            retain_longitudinal_modified_dates: true,
            retain_patient_characteristics: true,
            retain_device_identity: true,
            retain_uids: false,
            clean_descriptors: true,
            keep_safe_private: true,
        }
    };
    let deid = Deidentifier::new(Key::from_bytes([7; 32]), options);
    guard("element_spans(input)", || element_spans(data));
    if let Ok((_, out)) = guard("deidentify_bytes", || {
        deid.deidentify_bytes(data, Path::new("fuzz/deid.dcm"))
    }) {
        guard("element_spans(output)", || element_spans(&out));
    }
});

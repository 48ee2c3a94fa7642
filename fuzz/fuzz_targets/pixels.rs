//! Whole files through pixel decoding (`decode_pixels_bytes`): the length check, the parser and
//! every codec path the transfer syntax leads to; the `.npy` writer on what decodes.
#![no_main]

use discus_data::dicom::{decode_pixels_bytes, npy_bytes};
use discus_fuzz::guard;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz/pixels.dcm");
    if let Ok(px) = guard("decode_pixels_bytes", || decode_pixels_bytes(data, path)) {
        assert_eq!(px.values.len(), px.shape().iter().product::<usize>());
        guard("npy_bytes", || npy_bytes(&px));
    }
});

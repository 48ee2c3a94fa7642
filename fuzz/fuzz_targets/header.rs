//! The header path: the fast scanner with the dicom-object fallback (`read_header_bytes`), and the
//! dicom-object parse alone (`read_header_full_bytes`).
#![no_main]

use discus_data::dicom::{read_header_bytes, read_header_full_bytes};
use discus_fuzz::guard;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz/header.dcm");
    let fast = guard("read_header_bytes", || read_header_bytes(data, path));
    let full = guard("read_header_full_bytes", || {
        read_header_full_bytes(data, path)
    });
    // With DISCUS_FUZZ_DIFFERENTIAL=1: where both readers accept a file they must agree (the
    // conformance tests check this on the shared files; here on arbitrary ones).
    if std::env::var_os("DISCUS_FUZZ_DIFFERENTIAL").is_some() {
        if let (Ok(a), Ok(b)) = (&fast, &full) {
            if format!("{a:?}") != format!("{b:?}") {
                eprintln!("fast scanner: {a:#?}\nfull parse:   {b:#?}");
                std::process::abort();
            }
        }
    }
});

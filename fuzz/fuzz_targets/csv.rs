//! The LumbarDISC CSV readers on the same bytes: train.csv, the label coordinates, the series
//! descriptions and a submission. What a reader accepts must survive writing and reading back.
#![no_main]

use discus_core::formats::{
    coordinates_to_bytes, parse_coordinates, parse_series_descriptions, parse_submission,
    parse_train, series_descriptions_to_bytes, submission_to_bytes, train_to_bytes, LineEnding,
};
use discus_fuzz::guard;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

/// Parses, writes what parsed, and checks that the written file reads back to the same bytes.
macro_rules! round_trip {
    ($name:literal, $parse:ident, $write:ident, $data:expr) => {{
        let path = Path::new($name);
        if let Ok(file) = guard(stringify!($parse), || $parse($data, path)) {
            let le = file.line_ending;
            let first = guard(stringify!($write), || $write(&file.rows, le));
            let again = guard(stringify!($parse), || $parse(&first, path));
            match again {
                Ok(back) => {
                    assert!(
                        back.errors.is_empty(),
                        "{}: written rows do not read back: {:?}",
                        $name,
                        back.errors
                    );
                    assert_eq!(
                        back.rows.len(),
                        file.rows.len(),
                        "{}: row count changed",
                        $name
                    );
                    let second = $write(&back.rows, le);
                    assert!(
                        first == second,
                        "{}: write-read-write changed the file",
                        $name
                    );
                }
                // Nothing parsed and nothing written: the header alone may not be written back.
                Err(e) => assert!(
                    file.rows.is_empty(),
                    "{}: written file does not read back: {e}",
                    $name
                ),
            }
        }
    }};
}

fuzz_target!(|data: &[u8]| {
    round_trip!("train.csv", parse_train, train_to_bytes, data);
    round_trip!(
        "train_label_coordinates.csv",
        parse_coordinates,
        coordinates_to_bytes,
        data
    );
    round_trip!(
        "train_series_descriptions.csv",
        parse_series_descriptions,
        series_descriptions_to_bytes,
        data
    );
    round_trip!(
        "submission.csv",
        parse_submission,
        submission_to_bytes,
        data
    );
    let _ = LineEnding::detect(data);
});

//! Regression tests for what fuzzing `discus deid`'s per-file step found (`fuzz/`, target `deid`):
//! each feeds the reproducer's bytes to `Deidentifier::deidentify_bytes` and asserts a typed error
//! or a clean output, never a panic or a gigabyte allocation.

mod common;

use common::shared_dir;
use discus_deid::deid::DeidError;
use discus_deid::{Deidentifier, Key, Options};
use std::path::Path;

/// One explicit VR little endian element (2-byte length unless the VR takes 4).
fn el(group: u16, element: u16, vr: &[u8; 2], value: &[u8]) -> Vec<u8> {
    let mut v = value.to_vec();
    if v.len() % 2 == 1 {
        v.push(if vr == b"UI" { 0 } else { b' ' });
    }
    let mut out = Vec::new();
    out.extend_from_slice(&group.to_le_bytes());
    out.extend_from_slice(&element.to_le_bytes());
    out.extend_from_slice(vr);
    if matches!(vr, b"OB" | b"OW" | b"SQ" | b"UN" | b"UT") {
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    } else {
        out.extend_from_slice(&(v.len() as u16).to_le_bytes());
    }
    out.extend(v);
    out
}

/// A whole file: preamble, meta group, and a data set (explicit VR little endian) holding the
/// Specific Character Set `charset`, SOP class and instance, `more`, and the patient name `name`.
fn file(charset: &[u8], more: &[u8], name: &[u8]) -> Vec<u8> {
    let mut meta = Vec::new();
    meta.extend(el(0x0002, 0x0001, b"OB", &[0, 1]));
    meta.extend(el(0x0002, 0x0002, b"UI", b"1.2.840.10008.5.1.4.1.1.4"));
    meta.extend(el(0x0002, 0x0003, b"UI", b"1.2.3.4.5"));
    meta.extend(el(0x0002, 0x0010, b"UI", b"1.2.840.10008.1.2.1"));
    let mut out = vec![0u8; 128];
    out.extend_from_slice(b"DICM");
    out.extend(el(
        0x0002,
        0x0000,
        b"UL",
        &(meta.len() as u32).to_le_bytes(),
    ));
    out.extend(meta);
    out.extend(el(0x0008, 0x0005, b"CS", charset));
    out.extend(el(0x0008, 0x0016, b"UI", b"1.2.840.10008.5.1.4.1.1.4"));
    out.extend(el(0x0008, 0x0018, b"UI", b"1.2.3.4.5"));
    out.extend_from_slice(more);
    out.extend(el(0x0010, 0x0010, b"PN", name));
    out
}

fn deid(options: Options) -> Deidentifier {
    Deidentifier::new(Key::from_bytes([7; 32]), options)
}

/// pydicom's UN_sequence.dcm: dicom-rs misreads its UN sequence and took 3758161918 bytes
/// (0xE000FFFE, an item tag read as a length) before failing: the fuzzer's first out-of-memory.
#[test]
fn un_sequence_is_a_read_error_without_the_huge_allocation() {
    let path = shared_dir().join("data/dicom/pydicom/UN_sequence.dcm");
    let bytes = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{} (set DISCUS_SHARED_DIR): {e}", path.display()));
    match deid(Options::default()).deidentify_bytes(&bytes, &path) {
        Err(DeidError::Read(m)) => assert!(m.contains("claims 3758161918 bytes"), "{m}"),
        Err(e) => panic!("expected a read error, got {e}"),
        Ok(_) => panic!("expected a read error, got an output"),
    }
}

/// A Study Date whose 6 ISO 8859-1 bytes `202\xE9\xE90` decode to the 8-byte UTF-8 text
/// "202éé0": the date-format variants were cut at byte 4, inside "é" (panic: byte index 4 is not
/// a char boundary). Now it is not taken for a date; the value is still removed (basic profile: Z).
#[test]
fn non_ascii_study_date_does_not_panic() {
    let bytes = file(
        b"ISO_IR 100",
        &el(0x0008, 0x0020, b"DA", b"202\xE9\xE90"),
        b"SMITH^JOHN",
    );
    let (_, out) = deid(Options::default())
        .deidentify_bytes(&bytes, Path::new("da.dcm"))
        .unwrap();
    assert!(!out.windows(6).any(|w| w == b"202\xE9\xE90"));
}

/// An Acquisition DateTime "2024010é1200" (ISO 8859-1): shifting cut the date part at byte 8,
/// inside "é". Now an unparseable date-time is not shifted (and so not kept).
#[test]
fn non_ascii_datetime_does_not_panic_when_dates_are_shifted() {
    let bytes = file(
        b"ISO_IR 100",
        &el(0x0008, 0x002A, b"DT", b"2024010\xE91200"),
        b"SMITH^JOHN",
    );
    let options = Options {
        retain_longitudinal_modified_dates: true,
        ..Options::default()
    };
    let (_, out) = deid(options)
        .deidentify_bytes(&bytes, Path::new("dt.dcm"))
        .unwrap();
    assert!(!out.windows(8).any(|w| w == b"2024010\xE9"));
}

/// A Series Description "ıMüllerǰ" (UTF-8) holding the patient's family name, under Clean
/// Descriptors. The name has a non-ASCII letter, so only full upper-casing finds it, and upper-casing
/// "ı" (2 bytes) gives "I" (1 byte) while "ǰ" (2 bytes) gives "J̌" (3 bytes): the upper-cased copy has
/// the same length but the name 1 byte earlier, and cutting there split "ı" (panic: byte index 1 is
/// not a char boundary). Now the name is found and cut at the right place.
#[test]
fn clean_descriptors_cuts_names_after_length_changing_case_mapping() {
    let bytes = file(
        b"ISO_IR 192",
        &el(0x0008, 0x103E, b"LO", "ıMüllerǰ".as_bytes()),
        "MÜLLER^HANS".as_bytes(),
    );
    let options = Options {
        clean_descriptors: true,
        ..Options::default()
    };
    let (outcome, out) = deid(options)
        .deidentify_bytes(&bytes, Path::new("desc.dcm"))
        .unwrap();
    let name = "Müller".as_bytes();
    assert!(
        !out.windows(name.len()).any(|w| w == name),
        "the name survived"
    );
    let kept = outcome
        .object
        .element(dicom_core::Tag(0x0008, 0x103E))
        .unwrap()
        .to_str()
        .unwrap()
        .trim_end()
        .to_string();
    assert_eq!(kept, "ı ǰ");
}

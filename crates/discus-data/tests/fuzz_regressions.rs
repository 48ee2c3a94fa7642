//! Regression tests for what fuzzing (`fuzz/`, targets `header`, `pixels`, `deid`) found: each feeds
//! the reproducer's bytes and asserts a clean, typed error (or the right result), not a panic or a
//! gigabyte allocation.

use discus_data::dicom::{
    decode_pixels_bytes, open_dicom_bytes, read_header_bytes, read_header_full_bytes, DicomError,
};
use std::path::{Path, PathBuf};

fn shared_file(rel: &str) -> Vec<u8> {
    let dir = std::env::var_os("DISCUS_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    let path = dir.join("data/dicom").join(rel);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "the shared DICOM test data is missing at {} (set DISCUS_SHARED_DIR): {e}",
            path.display()
        )
    })
}

/// One explicit VR little endian element (2-byte length unless the VR takes 4).
fn el(group: u16, element: u16, vr: &[u8; 2], value: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&group.to_le_bytes());
    out.extend_from_slice(&element.to_le_bytes());
    out.extend_from_slice(vr);
    if matches!(vr, b"OB" | b"OW" | b"SQ" | b"UN" | b"UT") {
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    } else {
        out.extend_from_slice(&(value.len() as u16).to_le_bytes());
    }
    out.extend_from_slice(value);
    out
}

/// Preamble, `DICM` and a file meta group (explicit VR little endian data set) with `extra` meta
/// bytes appended inside the group.
fn file_with_meta(extra: &[u8], dataset: &[u8]) -> Vec<u8> {
    let mut meta = Vec::new();
    meta.extend(el(0x0002, 0x0001, b"OB", &[0, 1]));
    meta.extend(el(0x0002, 0x0002, b"UI", b"1.2.840.10008.5.1.4.1.1.4\0"));
    meta.extend(el(0x0002, 0x0003, b"UI", b"1.2.3.4\0"));
    meta.extend(el(0x0002, 0x0010, b"UI", b"1.2.840.10008.1.2.1\0"));
    meta.extend_from_slice(extra);
    let mut out = vec![0u8; 128];
    out.extend_from_slice(b"DICM");
    out.extend(el(0x0002, 0x0000, b"UL", &(meta.len() as u32).to_le_bytes()));
    out.extend(meta);
    out.extend_from_slice(dataset);
    out
}

fn parse_reason(r: Result<impl std::fmt::Debug, DicomError>) -> String {
    match r {
        Err(DicomError::Parse { reason, .. }) => reason,
        other => panic!("expected a parse error, got {other:?}"),
    }
}

/// pydicom's UN_sequence.dcm: (0008,1115) as UN of undefined length holding implicit VR items.
/// dicom-rs reads the items' contents with the wrong VR encoding and takes the item tag bytes
/// `FE FF 00 E0` as a value length, 0xE000FFFE = 3758161918 bytes, which it allocated and zeroed
/// before reading (fuzz target `deid`, first run, out-of-memory on the seed). The preflight
/// (`check_lengths`) now refuses it before dicom-rs allocates.
#[test]
fn un_sequence_misread_length_is_refused_before_allocating() {
    let bytes = shared_file("pydicom/UN_sequence.dcm");
    let path = Path::new("UN_sequence.dcm");
    for reason in [
        parse_reason(decode_pixels_bytes(&bytes, path)),
        parse_reason(read_header_full_bytes(&bytes, path)),
        parse_reason(open_dicom_bytes(&bytes, path)),
    ] {
        assert!(reason.contains("claims 3758161918 bytes"), "{reason}");
    }
    // the fast scanner, which reads the sequence as implicit VR (as pydicom does), still reads it
    let h = read_header_bytes(&bytes, path).unwrap();
    assert_eq!(h.transfer_syntax, "1.2.840.10008.1.2.4.70");
}

/// pydicom's SC_rgb_jpeg.dcm declares explicit VR but its data set is implicit: dicom-rs's first
/// try read a 1230128452-byte length (fuzz target `pixels`, out-of-memory on the seed). Now the
/// preflight stops that try and the lenient reader decodes the file as before.
#[test]
fn implicit_data_set_under_explicit_meta_decodes_without_the_huge_first_try() {
    let bytes = shared_file("pydicom/SC_rgb_jpeg.dcm");
    let px = decode_pixels_bytes(&bytes, Path::new("SC_rgb_jpeg.dcm")).unwrap();
    // pydicom 3.0.2: ds.pixel_array.shape == (256, 256, 3)
    assert_eq!(px.shape(), vec![1, 256, 256, 3]);
}

/// A value length of 0xFFFFFFF0 inside a sequence item, in a 300-byte file: refused by name,
/// whichever reader meets it first.
#[test]
fn huge_length_inside_a_sequence_item_is_a_typed_error() {
    let mut item = el(0x0008, 0x1150, b"UI", b"1.2.3\0");
    item.extend_from_slice(&[0x42, 0x00, 0x11, 0x00, b'O', b'B', 0, 0]);
    item.extend_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    item.extend_from_slice(&[1, 2, 3, 4]);
    let mut ds = el(0x0008, 0x0016, b"UI", b"1.2.840.10008.5.1.4.1.1.4\0");
    ds.extend([0x08, 0x00, 0x15, 0x11, b'S', b'Q', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF]);
    ds.extend([0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF]);
    ds.extend(item);
    let bytes = file_with_meta(&[], &ds);
    let path = Path::new("nested.dcm");
    let reason = parse_reason(read_header_full_bytes(&bytes, path));
    assert!(reason.contains("(0042,0011) claims 4294967280 bytes"), "{reason}");
    let reason = parse_reason(open_dicom_bytes(&bytes, path));
    assert!(reason.contains("(0042,0011) claims 4294967280 bytes"), "{reason}");
    // decoding checks top-level lengths first: the same file is truncated for it
    assert!(decode_pixels_bytes(&bytes, path).is_err());
}

/// A file meta element (an unknown (0002,0102) OB) claiming 0xFFFFFF00 bytes: dicom-object's meta
/// reader would allocate that much.
#[test]
fn huge_file_meta_length_is_a_typed_error() {
    let mut extra = vec![0x02, 0x00, 0x02, 0x01, b'O', b'B', 0, 0];
    extra.extend_from_slice(&0xFFFF_FF00u32.to_le_bytes());
    extra.extend_from_slice(b"abcd");
    let bytes = file_with_meta(&extra, &el(0x0008, 0x0060, b"CS", b"MR"));
    let reason = parse_reason(read_header_full_bytes(&bytes, Path::new("meta.dcm")));
    assert!(
        reason.contains("file meta element (0002,0102) claims 4294967040 bytes"),
        "{reason}"
    );
}

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
    file_with_ts(b"1.2.840.10008.1.2.1\0", extra, dataset)
}

/// [`file_with_meta`] with the transfer syntax `ts` (even length).
fn file_with_ts(ts: &[u8], extra: &[u8], dataset: &[u8]) -> Vec<u8> {
    let mut meta = Vec::new();
    meta.extend(el(0x0002, 0x0001, b"OB", &[0, 1]));
    meta.extend(el(0x0002, 0x0002, b"UI", b"1.2.840.10008.5.1.4.1.1.4\0"));
    meta.extend(el(0x0002, 0x0003, b"UI", b"1.2.3.4\0"));
    meta.extend(el(0x0002, 0x0010, b"UI", ts));
    meta.extend_from_slice(extra);
    let mut out = vec![0u8; 128];
    out.extend_from_slice(b"DICM");
    out.extend(el(
        0x0002,
        0x0000,
        b"UL",
        &(meta.len() as u32).to_le_bytes(),
    ));
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
    ds.extend([
        0x08, 0x00, 0x15, 0x11, b'S', b'Q', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF,
    ]);
    ds.extend([0xFE, 0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0xFF]);
    ds.extend(item);
    let bytes = file_with_meta(&[], &ds);
    let path = Path::new("nested.dcm");
    let reason = parse_reason(read_header_full_bytes(&bytes, path));
    assert!(
        reason.contains("(0042,0011) claims 4294967280 bytes"),
        "{reason}"
    );
    let reason = parse_reason(open_dicom_bytes(&bytes, path));
    assert!(
        reason.contains("(0042,0011) claims 4294967280 bytes"),
        "{reason}"
    );
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

/// The image attributes of a data set: (0028,0002) to (0028,0103), with Number of Frames.
fn image(
    samples: u16,
    photometric: &[u8],
    frames: &[u8],
    rows: u16,
    cols: u16,
    bits: u16,
) -> Vec<u8> {
    let mut ds = el(0x0008, 0x0016, b"UI", b"1.2.840.10008.5.1.4.1.1.4\0");
    ds.extend(el(0x0028, 0x0002, b"US", &samples.to_le_bytes()));
    ds.extend(el(0x0028, 0x0004, b"CS", photometric));
    ds.extend(el(0x0028, 0x0008, b"IS", frames));
    ds.extend(el(0x0028, 0x0010, b"US", &rows.to_le_bytes()));
    ds.extend(el(0x0028, 0x0011, b"US", &cols.to_le_bytes()));
    ds.extend(el(0x0028, 0x0100, b"US", &bits.to_le_bytes()));
    ds.extend(el(0x0028, 0x0101, b"US", &bits.to_le_bytes()));
    ds.extend(el(0x0028, 0x0102, b"US", &(bits - 1).to_le_bytes()));
    ds.extend(el(0x0028, 0x0103, b"US", &0u16.to_le_bytes()));
    ds
}

/// 4294967295 frames of 65535 x 65535 x 4 samples of 32 bits: frames x rows x columns x samples
/// overflowed usize (a panic in debug builds, a wrong size in release). Now a typed error.
#[test]
fn frame_count_overflowing_usize_is_a_typed_error() {
    let mut ds = image(4, b"CMYK", b"4294967295 ", 65535, 65535, 32);
    ds.extend(el(0x7FE0, 0x0010, b"OB", &[0, 0, 0, 0]));
    let bytes = file_with_meta(&[], &ds);
    match decode_pixels_bytes(&bytes, Path::new("frames.dcm")) {
        Err(DicomError::InvalidAttribute {
            attribute, reason, ..
        }) => {
            assert_eq!(attribute, "NumberOfFrames");
            assert!(
                reason.contains("4294967295 frame(s) of 65535x65535x4"),
                "{reason}"
            );
        }
        other => panic!("expected an invalid NumberOfFrames, got {other:?}"),
    }
}

/// An RLE file of 318 bytes declaring 4096 x 4096 8-bit pixels: the output (16 MiB here, up to
/// 64 GiB with other attributes) was allocated before the one 2-byte segment was decoded. PackBits
/// expands at most 64 times, so the data cannot hold the image: refused before allocating.
#[test]
fn rle_image_larger_than_its_data_can_hold_is_refused() {
    let mut ds = image(1, b"MONOCHROME2", b"1 ", 4096, 4096, 8);
    ds.extend([
        0xE0, 0x7F, 0x10, 0x00, b'O', b'B', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF,
    ]);
    ds.extend([0xFE, 0xFF, 0x00, 0xE0, 0, 0, 0, 0]); // empty Basic Offset Table
    let mut frame = vec![0u8; 64]; // RLE header: 1 segment at offset 64
    frame[0] = 1;
    frame[4] = 64;
    frame.extend([0x81, 0x00]); // PackBits: 128 zeros
    ds.extend([0xFE, 0xFF, 0x00, 0xE0]);
    ds.extend((frame.len() as u32).to_le_bytes());
    ds.extend(frame);
    ds.extend([0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
    let bytes = file_with_ts(b"1.2.840.10008.1.2.5\0", &[], &ds);
    match decode_pixels_bytes(&bytes, Path::new("rle.dcm")) {
        Err(DicomError::Decode { reason, .. }) => {
            assert!(
                reason.contains("66 bytes of RLE data cannot hold 16777216 bytes"),
                "{reason}"
            )
        }
        other => panic!("expected a decode error, got {other:?}"),
    }
}

/// Fuzz target `header`, out-of-memory and timeouts: 24 to 33-byte bare data sets (no meta
/// group; group 0x00FE passes for a data set start) whose elements past (7FE0,0010) claim 0.7 to
/// 2.9 GB. The length check stopped at Pixel Data for header reads, but a bare data set is read
/// whole: it now checks all of it. (Lengths from the reproducer bytes; libFuzzer reported the same
/// allocation sizes.)
#[test]
fn bare_data_set_with_huge_length_after_pixel_data_tag_is_refused() {
    let reproducers: [(&[u8], &str); 4] = [
        // these two were timeouts: zeroing 805306368 / 721420288 bytes (0x30000000, 0x2B000000),
        // just under the fuzzer's allocation limit, took seconds
        (
            &[
                0xfe, 0x00, 0xfc, 0xff, 0x00, 0x00, 0x00, 0x00, 0xd8, 0xff, 0x59, 0xff, 0x00, 0x00,
                0x00, 0x30, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2b,
            ],
            "claims 805306368 bytes",
        ),
        (
            &[
                0xfe, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xd8, 0xff, 0x50, 0xff, 0x00, 0x00,
                0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2b,
            ],
            "claims 721420288 bytes",
        ),
        (
            &[
                0xfe, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00,
                0x00, 0xaf, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                0x00, 0x00, 0x60, 0x00, 0x00,
            ],
            "claims 2936012800 bytes",
        ),
        (
            &[
                0xfe, 0x00, 0xfc, 0xff, 0x00, 0x00, 0x00, 0x00, 0xd8, 0xff, 0x59, 0xff, 0x00, 0x00,
                0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x30, 0x4c, 0x54, 0x00, 0x00, 0x2b,
            ],
            "claims 1414279168 bytes",
        ),
    ];
    for (bytes, want) in reproducers {
        let path = Path::new("bare.dcm");
        let reason = parse_reason(read_header_full_bytes(bytes, path));
        assert!(reason.contains(want), "{reason}");
        // decoding's top-level walk meets the same length first: truncated
        parse_reason(decode_pixels_bytes(bytes, path));
        // the fast scanner stops before those elements (they come after (0028,1053))
        assert_eq!(read_header_bytes(bytes, path).unwrap().rows, 0);
    }
}

//! Conformance of `discus_data::dicom` against the third-party DICOM files in the shared data folder
//! (NEMA WG04 and pydicom's test files; see shared/data/README.md).
//!
//! Expected values come from outside discus: the WG04 uncompressed references, the README's
//! statements about which files hold the same pixels, and header values printed by DCMTK's dcmdump.

use discus_data::dicom::{
    decode_pixels, read_header, read_header_full, DicomError, PixelValues, StoredPixels,
};
use std::path::{Path, PathBuf};

/// The shared data folder: `$DISCUS_SHARED_DIR`, else `shared/` beside the repository
/// (`/work/shared` for the repository at `/work/main`).
fn shared_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("DISCUS_SHARED_DIR") {
        return PathBuf::from(dir);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared")
}

fn dicom_dir() -> PathBuf {
    let dir = shared_dir().join("data/dicom");
    assert!(
        dir.is_dir(),
        "the shared DICOM test data is missing at {} (set DISCUS_SHARED_DIR)",
        dir.display()
    );
    dir
}

fn file(rel: &str) -> PathBuf {
    dicom_dir().join(rel)
}

fn decode(rel: &str) -> StoredPixels {
    decode_pixels(&file(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn all_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            all_files(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// What reading a file is expected to give.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// Header and pixels read.
    Pixels,
    /// Header reads; the instance has no Pixel Data (reports, plans, DICOMDIRs, ...).
    NoPixels,
    /// Header reads; decoding the pixels fails with an error.
    DecodeError,
    /// Not readable as DICOM at all: the header read fails with an error.
    HeaderError,
}

/// The exceptions to "header and pixels read", each with the reason.
fn expectation(rel: &str) -> Expect {
    use Expect::*;
    let name = rel.rsplit('/').next().unwrap();
    if rel.starts_with("pydicom/dicomdirtests/") {
        return match name {
            "README" | "README.txt" => HeaderError,
            // Directory records without their offsets: the data set ends early for dicom-rs. The
            // header scanner stops at group 0028 and reads it; the full parse fails.
            "DICOMDIR-nooffset" => DecodeError,
            // Media directories, and TINY_ALPHA's images which are headers only.
            _ if name.starts_with("DICOMDIR") || rel.contains("/TINY_ALPHA/") => NoPixels,
            _ => Pixels,
        };
    }
    match name {
        // Not DICOM: licence and readme text, JSON models, dcmdump text, an ICC profile, a gzip.
        "README.txt" | "LICENSE-pydicom" | "test1.json" | "test_PN.json" | "rtplan.dump"
        | "rtstruct.dump" | "crayons.icc" | "zipMR.gz" => HeaderError,
        // Not a valid data set: it starts one byte early (0x20 before the (0008,0005) element), so
        // even pydicom's force=True reads it as a single junk element (0820,0500).
        "no_meta.dcm" => HeaderError,
        // The file meta group lacks (0002,0010) Transfer Syntax UID, so the data set cannot be read.
        "meta_missing_tsyntax.dcm" => HeaderError,
        // Truncated inside a sequence after group 0028 (pydicom reads it lazily and misses it; so
        // does the header scanner, which stops at (0028,1053)); the full parse for pixels fails.
        "rtplan_truncated.dcm" => DecodeError,
        // (0008,1115) encoded as UN with undefined length holding an implicit VR sequence: pydicom
        // and the header scanner skip it, dicom-rs cannot parse it.
        "UN_sequence.dcm" => DecodeError,
        // Pixel Data is 62 bytes short of Rows x Columns x 2 (pydicom: "8130 vs 8192 bytes").
        "MR_truncated.dcm" => DecodeError,
        // 4 bytes of the JPEG 2000 codestream replaced by a sequence delimiter: not valid J2K
        // (pydicom/openjpeg: "failed to read the header").
        "JPEG2000-embedded-sequence-delimiter.dcm" => DecodeError,
        // Private sequence data only: no image attributes (pydicom: "Missing required element:
        // (0028,0100) 'Bits Allocated'").
        "nested_priv_SQ.dcm" => DecodeError,
        // Number of Frames is '1A' (pydicom: "invalid literal for int() with base 10: '1A'").
        "badVR.dcm" => DecodeError,
        // 12-bit JPEG extended (process 4) decodes with discus's own DCT decoder: the JPLY files and
        // JPEG-lossy.dcm have bad SOS parameters (Se = 0; pylibjpeg and GDCM fail on them), which
        // are ignored as libjpeg/DCMTK do; JPGExtended.dcm is the repaired copy (tests/codecs.rs).
        // Instances without Pixel Data.
        "empty_charset_LEI.dcm"
        | "no_meta_group_length.dcm"
        | "priv_SQ.dcm"
        | "reportsi.dcm"
        | "reportsi_with_empty_number_tags.dcm"
        | "rtplan.dcm"
        | "rtstruct.dcm"
        | "test-SR.dcm"
        | "waveform_ecg.dcm"
        | "ExplVR_BigEndNoMeta.dcm"
        | "ExplVR_LitEndNoMeta.dcm" => NoPixels,
        _ => Pixels,
    }
}

fn outcome(path: &Path) -> (Expect, Option<DicomError>) {
    match read_header(path) {
        Err(e) => (Expect::HeaderError, Some(e)),
        Ok(_) => match decode_pixels(path) {
            Ok(_) => (Expect::Pixels, None),
            Err(e @ DicomError::MissingAttribute { attribute, .. })
                if attribute.starts_with("PixelData") =>
            {
                (Expect::NoPixels, Some(e))
            }
            Err(e) => (Expect::DecodeError, Some(e)),
        },
    }
}

#[test]
fn every_file_reads_or_fails_clearly() {
    let root = dicom_dir();
    let mut files = Vec::new();
    all_files(&root, &mut files);
    assert!(
        files.len() > 200,
        "only {} files under {}",
        files.len(),
        root.display()
    );
    let mut wrong = Vec::new();
    for path in &files {
        let rel = path
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let (got, err) = outcome(path);
        if let Some(e) = &err {
            // Every error names its file and says something.
            let msg = e.to_string();
            assert!(
                msg.contains(&*path.to_string_lossy()),
                "{rel}: error without path: {msg}"
            );
            assert!(
                msg.len() > path.to_string_lossy().len() + 10,
                "{rel}: terse error: {msg}"
            );
            assert_eq!(e.path(), path.as_path());
        }
        let want = expectation(&rel);
        if got != want {
            wrong.push(format!("{rel}: expected {want:?}, got {got:?} {err:?}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} files behaved unexpectedly:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[test]
fn not_dicom_and_truncated_files_give_errors() {
    let readme = file("pydicom/README.txt");
    let e = read_header(&readme).unwrap_err();
    assert!(matches!(e, DicomError::NotDicom { .. }), "{e}");
    assert!(e.to_string().contains("README.txt"), "{e}");
    assert!(decode_pixels(&readme).is_err());

    let e = decode_pixels(&file("pydicom/MR_truncated.dcm")).unwrap_err();
    assert!(e.to_string().contains("MR_truncated.dcm"), "{e}");

    // An empty file and a short file in a temporary folder.
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.dcm");
    std::fs::write(&empty, b"").unwrap();
    assert!(matches!(
        read_header(&empty),
        Err(DicomError::NotDicom { .. })
    ));
    let missing = dir.path().join("missing.dcm");
    assert!(matches!(read_header(&missing), Err(DicomError::Io { .. })));

    let bytes = std::fs::read(file("pydicom/MR_small.dcm")).unwrap();
    // Damaged copies of a valid file (bytes overwritten at pseudo-random places, fixed seed) may
    // read or fail, but never panic, and errors name the file.
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for trial in 0..200 {
        let mut damaged = bytes.clone();
        for _ in 0..1 + trial % 4 {
            let at = (next() % 1200) as usize; // the header region of MR_small.dcm
            damaged[at] = next() as u8;
        }
        let p = dir.path().join(format!("damaged{trial}.dcm"));
        std::fs::write(&p, &damaged).unwrap();
        let a = read_header(&p).err();
        let b = decode_pixels(&p).err();
        for r in [a, b].into_iter().flatten() {
            assert!(
                r.to_string().contains(&format!("damaged{trial}.dcm")),
                "{r}"
            );
        }
    }

    // A valid file cut at several points never panics and never decodes.
    for cut in [
        10,
        131,
        132,
        200,
        400,
        1000,
        3000,
        bytes.len() - 100,
        bytes.len() - 1,
    ] {
        let p = dir.path().join(format!("cut{cut}.dcm"));
        std::fs::write(&p, &bytes[..cut]).unwrap();
        let _ = read_header(&p); // may read: the cut can fall after the header
        let r = decode_pixels(&p);
        assert!(r.is_err(), "cut at {cut} decoded");
        assert!(r
            .unwrap_err()
            .to_string()
            .contains(&format!("cut{cut}.dcm")));
    }
}

fn max_abs_diff(a: &PixelValues, b: &PixelValues) -> i64 {
    assert_eq!(a.len(), b.len());
    (0..a.len())
        .map(|i| (a.get_i64(i).unwrap() - b.get_i64(i).unwrap()).abs())
        .max()
        .unwrap_or(0)
}

#[test]
fn wg04_lossless_codecs_match_the_uncompressed_reference() {
    for image in ["CT1", "CT2", "MR1", "MR2", "MR3", "MR4"] {
        let reference = decode(&format!("wg04/REF/{image}_UNC"));
        for codec in ["JPLL", "JLSL", "J2KR", "RLE"] {
            let rel = format!("wg04/{codec}/{image}_{codec}");
            // MR1_JLSL has a stray 0x00 before its EOI marker, which the JPEG-LS decoder ignores
            // (CharLS rejects it; pydicom decodes it).
            let got = decode(&rel);
            assert_eq!(got.shape(), reference.shape(), "{rel}");
            assert_eq!(got.dtype(), reference.dtype(), "{rel}");
            assert!(
                got.values == reference.values,
                "{rel}: pixels differ from REF, max |diff| {}",
                max_abs_diff(&got.values, &reference.values)
            );
        }
        // JPEG-LS near-lossless with NEAR=4.
        let rel = format!("wg04/JLSN/{image}_JLSN");
        let got = decode(&rel);
        assert_eq!(got.dtype(), reference.dtype(), "{rel}");
        let d = max_abs_diff(&got.values, &reference.values);
        assert!(d <= 4, "{rel}: max |diff| {d} > 4");
        assert!(d > 0, "{rel}: near-lossless identical to REF");
        // JPEG 2000 lossy: same shape, close on average.
        let rel = format!("wg04/J2KI/{image}_J2KI");
        let got = decode(&rel);
        assert_eq!(got.shape(), reference.shape(), "{rel}");
    }
}

#[test]
fn wg04_reference_dtypes_follow_pixel_representation() {
    // From dcmdump: CT1, CT2, MR1, MR3 are signed 16/16; MR2 and MR4 unsigned 16-bit with 12 stored.
    for (image, dtype, shape) in [
        ("CT1", "<i2", [1, 512, 512]),
        ("CT2", "<i2", [1, 512, 512]),
        ("MR1", "<i2", [1, 512, 512]),
        ("MR2", "<u2", [1, 1024, 1024]),
        ("MR3", "<i2", [1, 512, 512]),
        ("MR4", "<u2", [1, 512, 512]),
    ] {
        let px = decode(&format!("wg04/REF/{image}_UNC"));
        assert_eq!(px.dtype(), dtype, "{image}");
        assert_eq!(px.shape(), shape.to_vec(), "{image}");
    }
}

#[test]
fn pydicom_mr_small_variants_are_identical() {
    let reference = decode("pydicom/MR_small.dcm");
    assert_eq!(reference.shape(), vec![1, 64, 64]);
    assert_eq!(reference.dtype(), "<i2");
    for v in [
        "MR_small_implicit.dcm",
        "MR_small_bigendian.dcm",
        "MR_small_expb.dcm",
        "MR_small_RLE.dcm",
        "MR_small_jpeg_ls_lossless.dcm",
        "MR_small_jp2klossless.dcm",
        "MR_small_padded.dcm",
    ] {
        let got = decode(&format!("pydicom/{v}"));
        assert_eq!(got.shape(), reference.shape(), "{v}");
        assert_eq!(got.dtype(), reference.dtype(), "{v}");
        assert!(
            got.values == reference.values,
            "{v}: max |diff| {}",
            max_abs_diff(&got.values, &reference.values)
        );
    }
    // pydicom reports min 127 and max 2145 for these pixels.
    let v = reference.values.to_i64_vec();
    assert_eq!(v.iter().min(), Some(&127));
    assert_eq!(v.iter().max(), Some(&2145));
}

#[test]
fn pydicom_files_documented_as_the_same_pixels_are_identical() {
    // README.txt: the *_expb files are
    // big endian conversions; the *_rle files RLE re-encodings; SC_rgb_small_odd_big_endian the big
    // endian version of SC_rgb_small_odd.
    for group in [
        &["liver_1frame.dcm", "liver_expb_1frame.dcm"][..],
        &["rtdose.dcm", "rtdose_expb.dcm", "rtdose_rle.dcm"],
        &[
            "rtdose_1frame.dcm",
            "rtdose_expb_1frame.dcm",
            "rtdose_rle_1frame.dcm",
        ],
        &["SC_rgb_small_odd.dcm", "SC_rgb_small_odd_big_endian.dcm"],
    ] {
        let first = decode(&format!("pydicom/{}", group[0]));
        for other in &group[1..] {
            let got = decode(&format!("pydicom/{other}"));
            assert_eq!(got.shape(), first.shape(), "{other}");
            assert!(
                got.values == first.values,
                "{other} differs from {}",
                group[0]
            );
        }
    }
}

#[test]
fn signed_12_bit_and_colour_layouts() {
    // J2K_pixelrep_mismatch.dcm: signed, 13 bits stored; pydicom gives int16 with min -2000, max 1896.
    let px = decode("pydicom/J2K_pixelrep_mismatch.dcm");
    assert_eq!(px.dtype(), "<i2");
    let v = px.values.to_i64_vec();
    assert_eq!(
        (v.iter().min(), v.iter().max()),
        (Some(&-2000), Some(&1896))
    );

    // liver_1frame.dcm: 1 bit allocated; pydicom gives uint8 0/1.
    let px = decode("pydicom/liver_1frame.dcm");
    assert_eq!(px.dtype(), "|u1");
    assert_eq!(px.shape(), vec![1, 512, 512]);
    assert!(px.values.to_i64_vec().iter().all(|&x| x == 0 || x == 1));

    // ExplVR_BigEnd.dcm: RGB, planar configuration 1, 60x80, comes back interleaved.
    let px = decode("pydicom/ExplVR_BigEnd.dcm");
    assert_eq!(px.shape(), vec![1, 60, 80, 3]);
    // SC_rgb_rle_32bit_2frame.dcm: 2 frames of 100x100 RGB uint32.
    let px = decode("pydicom/SC_rgb_rle_32bit_2frame.dcm");
    assert_eq!(px.shape(), vec![2, 100, 100, 3]);
    assert_eq!(px.dtype(), "<u4");
    assert_eq!(px.values.get_i64(0), Some(4294967295));
}

#[test]
fn header_fields_match_dcmdump() {
    // Values printed by `dcmdump -M +P <tag> <file>` (DCMTK 3.6) for these files.
    let h = read_header(&file("wg04/REF/MR2_UNC")).unwrap();
    assert_eq!(h.transfer_syntax, "1.2.840.10008.1.2.1");
    assert_eq!(h.sop_class_uid, "1.2.840.10008.5.1.4.1.1.4");
    assert_eq!(
        h.sop_instance_uid,
        "1.3.6.1.4.1.5962.1.1.5.1.1.20040826185059.5457"
    );
    assert_eq!(
        h.study_instance_uid,
        "1.3.6.1.4.1.5962.1.2.5.20040826185059.5457"
    );
    assert_eq!(
        h.series_instance_uid,
        "1.3.6.1.4.1.5962.1.3.5.1.20040826185059.5457"
    );
    assert_eq!(
        h.frame_of_reference_uid.as_deref(),
        Some("1.3.6.1.4.1.5962.1.4.5.1.20040826185059.5457")
    );
    assert_eq!(h.modality.as_deref(), Some("MR"));
    assert_eq!((h.series_number, h.instance_number), (Some(1), Some(1)));
    assert_eq!(
        h.image_position_patient,
        Some([-180.058222, -97.147766, 112.827990])
    );
    assert_eq!(
        h.image_orientation_patient,
        Some([0.569486, 0.822001, 0.0, -0.0, 0.0, -1.0])
    );
    assert_eq!(h.pixel_spacing, Some([0.195313, 0.195313]));
    assert_eq!(h.slice_thickness, Some(6.0));
    assert_eq!(h.spacing_between_slices, Some(6.6));
    assert_eq!(
        (h.rows, h.columns, h.number_of_frames, h.samples_per_pixel),
        (1024, 1024, 1, 1)
    );
    assert_eq!(h.photometric_interpretation.as_deref(), Some("MONOCHROME2"));
    assert_eq!(
        (h.bits_allocated, h.bits_stored, h.high_bit),
        (16, 12, Some(11))
    );
    assert_eq!(h.pixel_representation, 0);
    assert_eq!(h.rescale_slope, Some(3.774114));
    assert_eq!(h.rescale_intercept, Some(0.000061));
    assert_eq!(
        (h.window_center, h.window_width),
        (Some(1000.0), Some(2000.0))
    );
    assert_eq!(h.manufacturer.as_deref(), Some("Philips"));
    assert_eq!(h.manufacturer_model_name.as_deref(), Some("T5"));
    assert_eq!(h.magnetic_field_strength, Some(1.5));
    assert_eq!(h.institution_name.as_deref(), Some("MM07R R4.3"));
    assert_eq!(h.repetition_time, Some(350.0));
    assert_eq!(h.echo_time, Some(27.0));
    assert_eq!(h.inversion_time, None);
    assert_eq!(h.scanning_sequence.as_deref(), Some("SE"));

    // The MR_small family: the same header whatever the encoding (big endian, implicit VR, RLE, ...).
    for name in [
        "MR_small.dcm",
        "MR_small_bigendian.dcm",
        "MR_small_implicit.dcm",
        "MR_small_RLE.dcm",
        "MR_small_jpeg_ls_lossless.dcm",
        "MR_small_jp2klossless.dcm",
    ] {
        let h = read_header(&file(&format!("pydicom/{name}"))).unwrap();
        assert_eq!(
            h.sop_instance_uid, "1.3.6.1.4.1.5962.1.1.4.1.1.20040826185059.5457",
            "{name}"
        );
        assert_eq!(
            h.image_position_patient,
            Some([-83.9063, -91.2, 6.6406]),
            "{name}"
        );
        assert_eq!(
            h.image_orientation_patient,
            Some([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]),
            "{name}"
        );
        assert_eq!(h.pixel_spacing, Some([0.3125, 0.3125]), "{name}");
        assert_eq!(h.slice_thickness, Some(0.8), "{name}");
        assert_eq!(
            (h.rows, h.columns, h.bits_stored, h.pixel_representation),
            (64, 64, 16, 1),
            "{name}"
        );
        assert_eq!(
            (h.window_center, h.window_width),
            (Some(600.0), Some(1600.0)),
            "{name}"
        );
        assert_eq!(h.manufacturer.as_deref(), Some("TOSHIBA_MEC"), "{name}");
        assert_eq!(
            (h.repetition_time, h.echo_time),
            (Some(4000.0), Some(240.0)),
            "{name}"
        );
    }
    let be = read_header(&file("pydicom/MR_small_bigendian.dcm")).unwrap();
    assert_eq!(be.transfer_syntax, "1.2.840.10008.1.2.2");
    let imp = read_header(&file("pydicom/MR_small_implicit.dcm")).unwrap();
    assert_eq!(imp.transfer_syntax, "1.2.840.10008.1.2");

    // CT_small.dcm.
    {
        let name = "CT_small.dcm";
        let h = read_header(&file(&format!("pydicom/{name}"))).unwrap();
        assert_eq!(
            h.sop_instance_uid, "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322",
            "{name}"
        );
        assert_eq!(h.modality.as_deref(), Some("CT"));
        assert_eq!(
            h.image_position_patient,
            Some([-158.135803, -179.035797, -75.699997]),
            "{name}"
        );
        assert_eq!(h.pixel_spacing, Some([0.661468, 0.661468]), "{name}");
        assert_eq!(
            (h.rescale_slope, h.rescale_intercept),
            (Some(1.0), Some(-1024.0)),
            "{name}"
        );
        assert_eq!(
            h.manufacturer.as_deref(),
            Some("GE MEDICAL SYSTEMS"),
            "{name}"
        );
    }

    // Odd encodings, values printed by pydicom 3.0.2 (dcmread(force=True)), which reads them all:
    // SC_rgb_jpeg.dcm declares JPEG baseline (explicit VR) but its data set is implicit VR;
    // rtstruct.dcm and ExplVR_BigEndNoMeta.dcm have no file meta group at all.
    let h = read_header(&file("pydicom/SC_rgb_jpeg.dcm")).unwrap();
    assert_eq!(h.transfer_syntax, "1.2.840.10008.1.2.4.50");
    assert_eq!(
        h.sop_instance_uid,
        "1.2.826.0.1.3680043.8.498.13002811185086637637347356263722492924"
    );
    assert_eq!(
        (h.rows, h.columns, h.modality.as_deref()),
        (256, 256, Some("OT"))
    );
    let px = decode("pydicom/SC_rgb_jpeg.dcm");
    assert_eq!(px.shape(), vec![1, 256, 256, 3]);
    let h = read_header(&file("pydicom/rtstruct.dcm")).unwrap();
    assert_eq!(h.transfer_syntax, "1.2.840.10008.1.2");
    assert_eq!(h.sop_class_uid, "1.2.840.10008.5.1.4.1.1.481.3");
    assert_eq!(
        h.sop_instance_uid,
        "1.2.826.0.1.3680043.8.498.2010020400001"
    );
    assert_eq!(h.modality.as_deref(), Some("RTSTRUCT"));
    let h = read_header(&file("pydicom/ExplVR_BigEndNoMeta.dcm")).unwrap();
    assert_eq!(h.transfer_syntax, "1.2.840.10008.1.2.2");
    assert_eq!(h.sop_instance_uid, "1.2.333.4444.5.6.7.8");
    assert_eq!(h.study_instance_uid, "1.2.333.4444.5.6.7.8.9");
    assert_eq!(h.modality.as_deref(), Some("RTPLAN"));

    // Deflated: image_dfl.dcm, empty Series/Instance Number and Manufacturer.
    let h = read_header(&file("pydicom/image_dfl.dcm")).unwrap();
    assert_eq!(h.transfer_syntax, "1.2.840.10008.1.2.1.99");
    assert_eq!(
        h.sop_instance_uid,
        "1.3.6.1.4.1.5962.1.1.0.0.0.977067309.6001.0"
    );
    assert_eq!(
        (h.series_number, h.instance_number, h.manufacturer),
        (None, None, None)
    );
    assert_eq!((h.rows, h.columns, h.bits_allocated), (512, 512, 8));
}

#[test]
fn fast_header_scan_equals_the_full_parse() {
    // read_header's scanner skips everything but the fields it needs; dicom-object parses the whole
    // header. Wherever dicom-object reads a file, the two must agree exactly.
    let root = dicom_dir();
    let mut files = Vec::new();
    all_files(&root, &mut files);
    let mut compared = 0;
    let mut only_fast = Vec::new();
    for path in &files {
        let rel = path
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        match (read_header(path), read_header_full(path)) {
            (Ok(fast), Ok(full)) => {
                assert_eq!(fast, full, "{rel}");
                compared += 1;
            }
            (Err(_), Err(_)) => {}
            (Ok(_), Err(_)) => only_fast.push(rel),
            (Err(e), Ok(_)) => panic!("{rel}: only the full parse reads it; scanner error {e}"),
        }
    }
    assert!(compared > 150, "only {compared} files compared");
    // The scanner stops at (0028,1053), so damage after it goes unseen (as with pydicom's lazy
    // reading); it also skips an undefined-length UN sequence that dicom-rs cannot parse.
    only_fast.sort();
    assert_eq!(
        only_fast,
        [
            "pydicom/UN_sequence.dcm",
            "pydicom/dicomdirtests/DICOMDIR-nooffset",
            "pydicom/rtplan_truncated.dcm"
        ],
        "files only the scanner reads"
    );
}

#[test]
fn native_frames_equal_the_decoder() {
    // `native_frame` reads native grey-scale pixels in place (the crop and volume fast path);
    // wherever it accepts a file, its first frame must equal `decode_pixels`' (checked against
    // DCMTK and pydicom above), value for value, and its rescale must be `load_stack`'s.
    use discus_data::dicom::native_frame;
    let root = dicom_dir();
    let mut files = Vec::new();
    all_files(&root, &mut files);
    let (mut seen, mut odd, mut refused_native) = (0, 0, 0);
    for path in &files {
        let bytes = std::fs::read(path).unwrap();
        let Some(f) = native_frame(&bytes, path) else {
            // Refusals are fine (the decoder reads those), but count 16-bit native ones.
            if read_header(path)
                .is_ok_and(|h| h.transfer_syntax == "1.2.840.10008.1.2.1" && h.bits_allocated == 16)
            {
                refused_native += 1;
            }
            continue;
        };
        seen += 1;
        let px = decode_pixels(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            (px.samples_per_pixel, px.rows, px.columns),
            (1, f.header.rows as u32, f.header.columns as u32)
        );
        let want: Vec<i64> = px.values.to_i64_vec()[..f.len()].to_vec();
        let mut got = Vec::with_capacity(f.len());
        f.for_each(|v| got.push(v as i64));
        assert_eq!(got, want, "{}", path.display());
        let mut mapped = vec![0f32; f.len()];
        f.map_into(&mut mapped, 2.5, -3.0, |x| x);
        for (m, w) in mapped.iter().zip(&want) {
            assert_eq!(*m, (*w as f64 * 2.5 - 3.0) as f32, "{}", path.display());
        }
        if f.header.bits_stored < f.header.bits_allocated || f.header.pixel_representation == 1 {
            odd += 1;
        }
    }
    eprintln!("{seen} native frames ({odd} signed or with fewer bits stored); {refused_native} explicit-LE 16-bit files refused");
    assert!(
        seen >= 20 && odd >= 3,
        "only {seen} native frames, {odd} odd ones"
    );
}

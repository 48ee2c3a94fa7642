//! The pure-Rust codecs of `discus_data::dicom` (JPEG-LS, 12-bit JPEG extended) against DCMTK,
//! run in the test: `dcmdjpls` (DCMTK's JPEG-LS decoder, built on CharLS) and `dcmdjpeg` (DCMTK's
//! 12-bit IJG libjpeg) write uncompressed copies of the shared conformance files, and discus must
//! decode each compressed file to the same stored values (JPEG-LS exactly; the lossy DCT within 1,
//! the rounding freedom of an inverse DCT).
//!
//! DCMTK is a test dependency (Debian `dcmtk`, installed by `.ci/run`); without it these tests fail
//! with that reason rather than pass untested.

use discus_data::dicom::{decode_pixels, read_header, DicomError, PixelValues, StoredPixels};
use std::path::{Path, PathBuf};
use std::process::Command;

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

/// The shared files whose transfer syntax is one of `uids`, with their decoded pixels.
fn files_in(uids: &[&str]) -> Vec<PathBuf> {
    let mut files = Vec::new();
    all_files(&dicom_dir(), &mut files);
    files
        .into_iter()
        .filter(|p| {
            read_header(p)
                .map(|h| uids.contains(&h.transfer_syntax.as_str()))
                .unwrap_or(false)
        })
        .collect()
}

/// Runs a DCMTK decompressor (`tool in out`) and returns the uncompressed copy.
fn dcmtk(tool: &str, input: &Path, dir: &Path) -> PathBuf {
    let out = dir.join(format!(
        "{}.dcm",
        input.file_name().unwrap().to_string_lossy()
    ));
    let status = Command::new(tool)
        .arg(input)
        .arg(&out)
        .output()
        .unwrap_or_else(|e| {
            panic!("{tool} (Debian package dcmtk) is needed for this cross-check: {e}")
        });
    assert!(
        status.status.success(),
        "{tool} {}: {}",
        input.display(),
        String::from_utf8_lossy(&status.stderr)
    );
    out
}

fn max_abs_diff(a: &PixelValues, b: &PixelValues) -> i64 {
    assert_eq!(a.len(), b.len());
    (0..a.len())
        .map(|i| (a.get_i64(i).unwrap() - b.get_i64(i).unwrap()).abs())
        .max()
        .unwrap_or(0)
}

fn decode(p: &Path) -> StoredPixels {
    decode_pixels(p).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn jpeg_ls_equals_dcmtk_exactly() {
    let files = files_in(&["1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"]);
    // WG04 JLSL and JLSN (6 each) and pydicom's lossless, near-lossless 8/16-bit, and colour files
    // in line- and sample-interleaved mode.
    assert!(files.len() >= 17, "only {} JPEG-LS files", files.len());
    let tmp = tempfile::tempdir().unwrap();
    let mut colour = 0;
    for f in &files {
        let reference = decode(&dcmtk("dcmdjpls", f, tmp.path()));
        let got = decode(f);
        assert_eq!(got.shape(), reference.shape(), "{}", f.display());
        assert_eq!(got.dtype(), reference.dtype(), "{}", f.display());
        assert!(
            got.values == reference.values,
            "{}: max |diff| {} from dcmdjpls",
            f.display(),
            max_abs_diff(&got.values, &reference.values)
        );
        colour += usize::from(got.samples_per_pixel == 3);
    }
    assert!(colour >= 2, "{colour} colour JPEG-LS files");
}

#[test]
fn jpeg_12_bit_extended_is_within_one_of_dcmtk() {
    let files = files_in(&["1.2.840.10008.1.2.4.51"]);
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for want in ["JPGExtended.dcm", "JPEG-lossy.dcm", "MR1_JPLY", "MR4_JPLY"] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} not among {names:?}"
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    for f in &files {
        let h = read_header(f).unwrap();
        if h.bits_stored != 12 {
            continue;
        }
        let reference = decode(&dcmtk("dcmdjpeg", f, tmp.path()));
        let got = decode(f);
        assert_eq!(got.shape(), reference.shape(), "{}", f.display());
        assert_eq!(got.dtype(), reference.dtype(), "{}", f.display());
        let d = max_abs_diff(&got.values, &reference.values);
        assert!(d <= 1, "{}: max |diff| {d} from dcmdjpeg", f.display());
        println!("{}: max |diff| {d} from dcmdjpeg", f.display());
        // Not a constant image.
        let v = got.values.to_i64_vec();
        let (lo, hi) = (v.iter().min().unwrap(), v.iter().max().unwrap());
        assert!(hi - lo > 200, "{}: values {lo}..{hi}", f.display());
    }
}

#[test]
fn damaged_code_streams_give_errors_not_panics() {
    // JPEG-LS (MR_small, lossless; a colour sample-interleaved file) and 12-bit JPEG: bytes of the
    // encapsulated pixel data overwritten at pseudo-random places (fixed seed), or the file cut.
    let dir = dicom_dir().join("pydicom");
    let tmp = tempfile::tempdir().unwrap();
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for name in [
        "MR_small_jpeg_ls_lossless.dcm",
        "SC_rgb_jls_lossy_sample.dcm",
        "JPGExtended.dcm",
    ] {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        let soi = bytes
            .windows(3)
            .position(|w| w == [0xFF, 0xD8, 0xFF])
            .unwrap();
        let mut errors = 0;
        for trial in 0..150 {
            let mut damaged = bytes.clone();
            for _ in 0..1 + trial % 5 {
                let at = soi + (next() as usize) % (bytes.len() - soi);
                damaged[at] = next() as u8;
            }
            let p = tmp.path().join(format!("{name}.{trial}"));
            std::fs::write(&p, &damaged).unwrap();
            if let Err(e) = decode_pixels(&p) {
                assert!(e.to_string().contains(&format!("{name}.{trial}")), "{e}");
                errors += 1;
            }
        }
        assert!(errors > 0, "{name}: no damaged copy failed");
        for cut in [soi + 2, soi + 40, soi + (bytes.len() - soi) / 2] {
            let p = tmp.path().join(format!("{name}.cut{cut}"));
            std::fs::write(&p, &bytes[..cut]).unwrap();
            assert!(decode_pixels(&p).is_err(), "{name} cut at {cut} decoded");
        }
    }
}

#[test]
fn jpeg_ls_errors_name_the_cause() {
    // A JPEG-LS file whose code stream is replaced by a JPEG baseline one of the same length.
    let dir = dicom_dir().join("pydicom");
    let mut bytes = std::fs::read(dir.join("MR_small_jpeg_ls_lossless.dcm")).unwrap();
    let sof = bytes.windows(2).position(|w| w == [0xFF, 0xF7]).unwrap();
    bytes[sof + 1] = 0xC0;
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("not_jls.dcm");
    std::fs::write(&p, &bytes).unwrap();
    let e = decode_pixels(&p).unwrap_err();
    assert!(matches!(e, DicomError::Decode { .. }), "{e}");
    assert!(e.to_string().contains("not JPEG-LS"), "{e}");
}

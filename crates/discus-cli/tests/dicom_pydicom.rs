//! Cross-check of `discus dicom decode` and `discus dicom info --json` against pydicom, an
//! independent reader, on the lossless files of the shared DICOM test data.
//!
//! pydicom and its decoder plugins are installed into a throwaway virtualenv by `scripts/pyvenv`;
//! the comparison itself is scripts/dicom_pydicom_check.py.

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::{discus, pyvenv, root, shared_dir};

/// Pinned so the reference does not move under the test: pydicom 3.0.2 is the version whose test
/// files are in shared/data; numpy 2.4.6 is the newest for Python 3.11 here; the plugins are the
/// current releases that pydicom 3.0 uses for RLE (pylibjpeg-rle), JPEG (pylibjpeg-libjpeg),
/// JPEG 2000 (pylibjpeg-openjpeg) and JPEG-LS (pyjpegls).
const REQUIREMENTS: &[&str] = &[
    "pydicom==3.0.2",
    "numpy==2.4.6",
    "pylibjpeg==2.1.0",
    "pylibjpeg-libjpeg==2.5.0",
    "pylibjpeg-openjpeg==2.6.0",
    "pylibjpeg-rle==2.2.0",
    "pyjpegls==1.5.1",
];

/// The files compared: everything lossless (or deterministic) that both readers decode, covering
/// each transfer syntax and pixel layout in the data, plus the lossy 12-bit JPEG extended file
/// (see [`tolerance`]).
fn files(dicom: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for image in ["CT1", "CT2", "MR1", "MR2", "MR3", "MR4"] {
        out.push(dicom.join(format!("wg04/REF/{image}_UNC")));
        for codec in ["JPLL", "JLSL", "JLSN", "J2KR", "RLE"] {
            out.push(dicom.join(format!("wg04/{codec}/{image}_{codec}")));
        }
    }
    for name in [
        "MR_small.dcm",
        "MR_small_implicit.dcm",
        "MR_small_bigendian.dcm",
        "MR_small_expb.dcm",
        "MR_small_RLE.dcm",
        "MR_small_jpeg_ls_lossless.dcm",
        "MR_small_jp2klossless.dcm",
        "MR_small_padded.dcm",
        "CT_small.dcm",
        "image_dfl.dcm",
        "liver_1frame.dcm",
        "liver_expb_1frame.dcm",
        "rtdose.dcm",
        "rtdose_expb.dcm",
        "rtdose_rle.dcm",
        "ExplVR_BigEnd.dcm",
        "SC_rgb_small_odd.dcm",
        "SC_rgb_small_odd_big_endian.dcm",
        "SC_rgb_rle.dcm",
        "SC_rgb_rle_2frame.dcm",
        "SC_rgb_rle_16bit.dcm",
        "SC_rgb_rle_32bit_2frame.dcm",
        "examples_overlay.dcm",
        "examples_palette.dcm",
        "examples_rgb_color.dcm",
        "J2K_pixelrep_mismatch.dcm",
        "JPEG2000.dcm",
        "JPEGLSNearLossless_08.dcm",
        "JPEGLSNearLossless_16.dcm",
        "SC_rgb_jls_lossy_line.dcm",
        "SC_rgb_jls_lossy_sample.dcm",
        // 12-bit JPEG extended (process 4), which pydicom decodes with pylibjpeg-libjpeg.
        "JPGExtended.dcm",
    ] {
        out.push(dicom.join("pydicom").join(name));
    }
    out
}

/// The largest |difference| allowed between discus's and pydicom's stored values: 0, except 1 for
/// lossy DCT JPEG, where two correct inverse DCTs may round differently.
fn tolerance(f: &Path) -> u32 {
    u32::from(f.ends_with("JPGExtended.dcm"))
}

#[test]
fn decode_and_info_agree_with_pydicom() {
    let dicom = shared_dir().join("data/dicom");
    assert!(
        dicom.is_dir(),
        "shared DICOM data missing at {} (set DISCUS_SHARED_DIR)",
        dicom.display()
    );
    let Some(python) = pyvenv("pydicom-check", REQUIREMENTS) else {
        return;
    };

    let dir = tempfile::tempdir().unwrap();
    let mut manifest = String::new();
    for (i, f) in files(&dicom).iter().enumerate() {
        assert!(f.is_file(), "missing test file {}", f.display());
        let npy = dir.path().join(format!("{i}.npy"));
        let json = dir.path().join(format!("{i}.json"));
        let decode = discus()
            .args(["dicom", "decode"])
            .arg(f)
            .arg("--npy")
            .arg(&npy)
            .output()
            .unwrap();
        assert!(
            decode.status.success(),
            "discus dicom decode {}: {}",
            f.display(),
            String::from_utf8_lossy(&decode.stderr)
        );
        let stdout = String::from_utf8_lossy(&decode.stdout);
        assert!(
            stdout.contains("shape (") && stdout.contains("dtype "),
            "{stdout}"
        );
        let info = discus()
            .args(["dicom", "info", "--json"])
            .arg(f)
            .output()
            .unwrap();
        assert!(
            info.status.success(),
            "discus dicom info {}: {}",
            f.display(),
            String::from_utf8_lossy(&info.stderr)
        );
        std::fs::write(&json, &info.stdout).unwrap();
        manifest.push_str(&format!(
            "{}\t{}\t{}\t{}\n",
            f.display(),
            npy.display(),
            json.display(),
            tolerance(f)
        ));
    }
    let manifest_path = dir.path().join("manifest.tsv");
    std::fs::write(&manifest_path, manifest).unwrap();
    let check = Command::new(&python)
        .arg(root().join("scripts/dicom_pydicom_check.py"))
        .arg(&manifest_path)
        .output()
        .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    println!("{report}");
    assert!(check.status.success(), "pydicom disagrees:\n{report}");
    assert!(report.contains("checked"), "{report}");
}

#[test]
fn errors_exit_1_and_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("not-dicom.dcm");
    std::fs::write(&bad, b"this is plain text, not a DICOM file").unwrap();
    for args in [
        vec!["dicom", "info"],
        vec!["dicom", "decode", "--npy", "/dev/null"],
    ] {
        let o = discus().args(&args).arg(&bad).output().unwrap();
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("not-dicom.dcm") && err.contains("not a DICOM file"),
            "{err}"
        );
    }
    let o = discus()
        .args(["dicom", "decode"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "missing --npy is a usage error");
}

//! Cross-checks with independent tools: pydicom reads every output and confirms that no element of
//! the input's identifying set survives (and that the method codes are CID 7050's), and dcmtk's
//! dcmdump parses every output without error.

mod common;

use discus_core::progress::Progress;
use discus_deid::run::{list_files, run, RunConfig};
use discus_deid::table::Options;
use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The pinned pydicom, or None (with the reason printed) when python3 is absent.
fn python() -> Option<PathBuf> {
    // pydicom 3.0.2: the version the shared test data was measured with (shared/data/README.md);
    // its concept dictionary is an independent source for the CID 7050 codes.
    let out = Command::new(workspace().join("scripts/pyvenv"))
        .args(["deid-check", "pydicom==3.0.2"])
        .output()
        .expect("scripts/pyvenv runs");
    match out.status.code() {
        Some(0) => Some(PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())),
        Some(3) => {
            discus_core::crosscheck::skip(String::from_utf8_lossy(&out.stderr).trim());
            None
        }
        _ => panic!(
            "scripts/pyvenv failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

const CHECK_PY: &str = r#"
import sys, pathlib
import pydicom
from pydicom.sr.codedict import codes

in_dir, out_dir, mode = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3]

# The identifying set, chosen here from the attribute names (independently of discus's table):
# every value of these keywords at any depth, of the file meta's instance UID and AE titles, and of
# every private element.
KEYWORDS = {
    "PatientName", "PatientID", "PatientBirthDate", "OtherPatientIDs", "AccessionNumber",
    "InstitutionName", "InstitutionAddress", "ReferringPhysicianName", "StudyID",
    "StudyDescription", "ImageComments", "StudyInstanceUID", "SeriesInstanceUID",
    "SOPInstanceUID", "FrameOfReferenceUID", "ReferencedSOPInstanceUID", "UID",
    "StudyDate", "SeriesDate", "AcquisitionDate", "StationName", "DeviceSerialNumber",
}
if mode == "options":
    # retained by Retain Device Identity; cleaned (not removed) by Clean Descriptors
    KEYWORDS -= {"StationName", "DeviceSerialNumber", "StudyDescription"}

def values(ds):
    for elem in ds.iterall():
        if elem.VR == "SQ":
            continue
        if elem.tag.is_private or elem.keyword in KEYWORDS:
            vals = elem.value if isinstance(elem.value, (list, pydicom.multival.MultiValue)) else [elem.value]
            for v in vals:
                if isinstance(v, bytes):
                    v = v.decode("latin-1", "replace")
                yield elem.keyword or str(elem.tag), str(v)

def identifying(path):
    ds = pydicom.dcmread(path)
    out = set()
    for kw, v in values(ds):
        v = v.strip()
        words = [v]
        if kw.endswith("Name"):
            words += [p for p in v.replace("=", "^").split("^")]
        out.update(w.strip().upper() for w in words if len(w.strip()) >= 4)
    fm = ds.file_meta
    for kw in ("MediaStorageSOPInstanceUID", "SourceApplicationEntityTitle", "SendingApplicationEntityTitle"):
        if kw in fm:
            out.add(str(fm[kw].value).strip().upper())
    return out

ident = set()
inputs = sorted(p for p in in_dir.rglob("*.dcm"))
for p in inputs:
    ident |= identifying(p)

want_codes = {codes.DCM.BasicApplicationConfidentialityProfile.value}
if mode == "options":
    want_codes |= {
        codes.DCM.RetainLongitudinalTemporalInformationModifiedDatesOption.value,
        codes.DCM.RetainPatientCharacteristicsOption.value,
        codes.DCM.RetainDeviceIdentityOption.value,
        codes.DCM.CleanDescriptorsOption.value,
    }

problems = []
outputs = sorted(out_dir.rglob("*.dcm"))
for p in outputs:
    ds = pydicom.dcmread(p)
    texts = []
    for elem in ds.iterall():
        if elem.tag.is_private:
            problems.append(f"{p.name}: private element {elem.tag} survives")
        if elem.VR in ("SQ", "OB", "OW", "UN", "OF", "OD", "OL", "OV"):
            continue
        texts.append((str(elem.tag), str(elem.value).upper()))
    for elem in ds.file_meta:
        texts.append((str(elem.tag), str(elem.value).upper()))
    for tag, t in texts:
        for w in ident:
            if w in t:
                problems.append(f"{p.name}: {tag} contains an identifying value of the input")
    if ds.get("PatientIdentityRemoved") != "YES":
        problems.append(f"{p.name}: PatientIdentityRemoved is not YES")
        continue
    got = {item.CodeValue for item in ds.DeidentificationMethodCodeSequence}
    if got != want_codes:
        problems.append(f"{p.name}: method codes {sorted(got)} != {sorted(want_codes)}")
    for item in ds.DeidentificationMethodCodeSequence:
        if item.CodingSchemeDesignator != "DCM":
            problems.append(f"{p.name}: coding scheme {item.CodingSchemeDesignator}")
    if ds.file_meta.MediaStorageSOPInstanceUID != ds.SOPInstanceUID:
        problems.append(f"{p.name}: file meta instance UID differs from SOP Instance UID")
    if mode == "options" and "StudyDate" in ds and ds.StudyDate and ds.StudyDate.startswith("2024"):
        problems.append(f"{p.name}: study date not shifted")

print(f"{len(inputs)} inputs ({len(ident)} identifying values), {len(outputs)} outputs")
for x in problems:
    print("PROBLEM", x)
sys.exit(1 if problems or not outputs else 0)
"#;

fn deid(options: Options) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    common::write_cohort(&input);
    let out = tmp.path().join("out");
    let config = RunConfig::with_defaults(input.clone(), out.clone(), options);
    let r = run(&config, &Progress::new()).unwrap();
    assert!(r.failed.is_empty(), "{:?}", r.failed);
    (tmp, input, out)
}

#[test]
fn pydicom_finds_no_identifying_value_in_any_output() {
    let Some(py) = python() else { return };
    for (mode, options) in [
        ("basic", Options::default()),
        (
            "options",
            Options {
                retain_longitudinal_modified_dates: true,
                retain_patient_characteristics: true,
                retain_device_identity: true,
                clean_descriptors: true,
                ..Options::default()
            },
        ),
    ] {
        let (tmp, input, out) = deid(options);
        let script = tmp.path().join("check.py");
        std::fs::write(&script, CHECK_PY).unwrap();
        let res = Command::new(&py)
            .arg(&script)
            .arg(&input)
            .arg(&out)
            .arg(mode)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&res.stdout);
        assert!(
            res.status.success(),
            "[{mode}] pydicom check failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&res.stderr)
        );
        assert!(stdout.contains("10 inputs"), "{stdout}");
    }
}

#[test]
fn pydicom_check_fails_on_a_planted_leak() {
    // the cross-check itself must be able to fail: copy an input (identifiers intact) into the output
    let Some(py) = python() else { return };
    let (tmp, input, out) = deid(Options::default());
    let first = list_files(&input).unwrap().remove(0);
    std::fs::copy(&first, out.join("leak.dcm")).unwrap();
    let script = tmp.path().join("check.py");
    std::fs::write(&script, CHECK_PY).unwrap();
    let res = Command::new(&py)
        .arg(&script)
        .arg(&input)
        .arg(&out)
        .arg("basic")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&res.stdout);
    assert!(!res.status.success());
    assert!(
        stdout.contains("PROBLEM leak.dcm"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&res.stderr)
    );
}

#[test]
fn dcmdump_parses_every_output() {
    if Command::new("dcmdump").arg("--version").output().is_err() {
        discus_core::crosscheck::skip("dcmdump (apt package dcmtk) not installed");
        return;
    }
    let (_tmp, _input, out) = deid(Options {
        retain_longitudinal_modified_dates: true,
        ..Options::default()
    });
    let files: Vec<PathBuf> = list_files(&out)
        .unwrap()
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "dcm"))
        .collect();
    assert_eq!(files.len(), 10);
    for f in files {
        let res = Command::new("dcmdump").arg("-q").arg(&f).output().unwrap();
        let err = String::from_utf8_lossy(&res.stderr);
        assert!(
            res.status.success() && !err.contains("E:"),
            "{}: {err}",
            f.display()
        );
    }
}

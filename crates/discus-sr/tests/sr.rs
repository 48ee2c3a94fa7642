//! TID 1500 reports of a synthetic study, checked by independent readers: dcmtk's `dsrdump`
//! (parses the SR and shows the TID 1500 tree), dicom3tools' `dciodvfy` (no IOD errors) and
//! highdicom (reads every finding's codes, probabilities and point back). Expected values come from
//! the findings given to the writer (the labelled points of the synthetic study and fixed
//! probabilities) and the code tables of PS3.16 (highdicom/pydicom's `codes` on the Python side).
//! discus's own checker must accept the report and reject it with a required item removed.

use dicom_core::header::Header;
use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, Length, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use discus_core::crosscheck;
use discus_core::{Condition, Level, Severity, StudyId};
use discus_data::dataset::Dataset;
use discus_sr::codes;
use discus_sr::source::{source_point, study_context};
use discus_sr::{check, Algorithm, SrDocument, SrFinding};
use discus_synth::cohort::{generate, SynthConfig};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

struct Fixture {
    _dir: tempfile::TempDir,
    cohort: PathBuf,
    study: StudyId,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let cohort = dir.path().join("cohort");
        let config = SynthConfig {
            studies: 1,
            sites: 1,
            seed: 7,
            readers: 1,
            quirk_rate: 0.0,
            matrix_scale: 0.15,
            ..Default::default()
        };
        generate(&cohort, &config, &|_| {}).unwrap();
        let ds = Dataset::open(&cohort).unwrap();
        let study = ds.studies().unwrap()[0].study;
        Fixture {
            _dir: dir,
            cohort,
            study,
        }
    })
}

fn algorithm() -> Algorithm {
    Algorithm {
        name: "discus localise-then-grade".into(),
        version: "0.1.0-test".into(),
        licence: "Weights: CC BY-NC 4.0 (trained on RSNA LumbarDISC-style data)".into(),
        manufacturer: "discus".into(),
    }
}

/// All 25 findings of the fixture study: most with their labelled point (shifted by a fraction so
/// that sub-pixel values are exercised), a few without (TID 1501 groups).
fn document() -> SrDocument {
    let f = fixture();
    let ds = Dataset::open(&f.cohort).unwrap();
    let points = ds.points(f.study).unwrap();
    let study = study_context(&ds, f.study).unwrap();
    let mut findings = Vec::new();
    for (ci, condition) in Condition::ALL.into_iter().enumerate() {
        for (li, level) in Level::ALL.into_iter().enumerate() {
            let k = (ci * 5 + li) as f64;
            let a = 0.05 + 0.9 * ((k * 0.37).sin().abs());
            let b = (1.0 - a) * 0.6180339887;
            let probabilities = [a, b, 1.0 - a - b];
            let g = (0..3)
                .max_by(|i, j| probabilities[*i].total_cmp(&probabilities[*j]))
                .unwrap();
            // Every seventh finding as a prior without a point (a TID 1501 group).
            let point = points
                .iter()
                .filter(|_| (ci * 5 + li) % 7 != 3)
                .find(|p| p.condition == condition && p.level == level)
                .map(|p| {
                    source_point(
                        &ds,
                        f.study,
                        p.series,
                        p.instance as i64,
                        [p.x + 0.123_456, p.y + 0.654_321],
                    )
                    .unwrap()
                });
            findings.push(SrFinding {
                condition,
                level,
                probabilities,
                grade: Severity::from_index(g).unwrap(),
                point,
                tracking_key: SrFinding::tracking_key(f.study, condition, level),
            });
        }
    }
    assert!(findings.iter().any(|f| f.point.is_some()));
    assert!(findings.iter().any(|f| f.point.is_none()));
    SrDocument {
        study,
        algorithm: algorithm(),
        findings,
        series_number: 990,
        instance_number: 1,
        sop_instance_uid: None,
        content_date_time: None,
    }
}

fn write_report(dir: &Path) -> (PathBuf, SrDocument, discus_sr::SrIds) {
    let doc = document();
    let path = dir.join("report.dcm");
    let ids = doc.write(&path).unwrap();
    (path, doc, ids)
}

#[test]
fn own_checker_reads_back_every_finding() {
    let dir = tempfile::tempdir().unwrap();
    let (path, doc, ids) = write_report(dir.path());
    let r = check::check_file(&path).unwrap();
    assert_eq!(r.sop_instance_uid, ids.sop_instance_uid);
    assert_eq!(r.study_instance_uid, doc.study.study_instance_uid);
    assert_eq!(r.groups.len(), 25);
    assert!(r
        .series_description
        .contains("not for diagnostic use unless cleared"));
    assert!(r.texts.iter().any(|t| t == &doc.algorithm.licence));
    for (g, f) in r.groups.iter().zip(&doc.findings) {
        assert_eq!(g.tracking_identifier, f.tracking_key);
        assert!(g.finding.is(codes::STENOSIS));
        assert!(g.finding_site.is(codes::disc(f.level)));
        assert!(g.severity.is(codes::severity(f.grade)));
        for k in 0..3 {
            assert!((g.probabilities[k] - f.probabilities[k]).abs() < 1e-12);
        }
        match (&g.point, &f.point) {
            (Some(a), Some(b)) => {
                assert_eq!(g.template, "1410");
                assert_eq!(a.sop_instance_uid, b.sop_instance_uid);
                assert!((a.graphic_xy[0] as f64 - (b.pixel_xy[0] + 0.5)).abs() < 1e-3);
                assert!((a.graphic_xy[1] as f64 - (b.pixel_xy[1] + 0.5)).abs() < 1e-3);
            }
            (None, None) => assert_eq!(g.template, "1501"),
            _ => panic!("point mismatch for {}", f.tracking_key),
        }
    }
}

#[test]
fn revisions_get_new_instance_uids_and_keep_tracking_uids() {
    let doc = document();
    let (_, a) = doc.to_bytes().unwrap();
    let (_, b) = doc.to_bytes().unwrap();
    assert_ne!(a.sop_instance_uid, b.sop_instance_uid);
    assert_eq!(a.series_instance_uid, b.series_instance_uid);
    assert_eq!(a.tracking_uids, b.tracking_uids);
    let unique: std::collections::BTreeSet<_> = a.tracking_uids.iter().collect();
    assert_eq!(unique.len(), 25);
    for u in a
        .tracking_uids
        .iter()
        .chain([&a.sop_instance_uid, &a.series_instance_uid])
    {
        assert!(discus_sr::write::is_valid_uid(u), "{u}");
    }
    // Another study: other tracking UIDs; another version: another series.
    let mut other = doc.clone();
    other.study.study_instance_uid = "1.2.3.4".into();
    other.algorithm.version = "0.2.0".into();
    let (_, c) = other.to_bytes().unwrap();
    assert!(c.tracking_uids.iter().all(|u| !a.tracking_uids.contains(u)));
    assert_ne!(c.series_instance_uid, a.series_instance_uid);
}

#[test]
fn bad_input_is_refused() {
    let mut doc = document();
    doc.findings[0].probabilities[1] = 1.5;
    assert!(matches!(
        doc.build(),
        Err(discus_sr::SrError::Invalid { .. })
    ));
    let mut doc = document();
    doc.study.study_instance_uid = "1.2.abc".into();
    assert!(matches!(
        doc.build(),
        Err(discus_sr::SrError::Invalid { .. })
    ));
    let mut doc = document();
    let dup = doc.findings[0].clone();
    doc.findings.push(dup);
    assert!(matches!(
        doc.build(),
        Err(discus_sr::SrError::Invalid { .. })
    ));
}

/// A copy of `obj` without the first content item (at any depth) for which `pred` holds.
fn without_first(
    obj: &InMemDicomObject,
    pred: &dyn Fn(&InMemDicomObject) -> bool,
    done: &Cell<bool>,
) -> InMemDicomObject {
    let mut out = InMemDicomObject::new_empty();
    for e in obj.iter() {
        match e.items() {
            Some(items) if e.vr() == VR::SQ => {
                let mut kept = Vec::new();
                for it in items {
                    if !done.get() && pred(it) {
                        done.set(true);
                        continue;
                    }
                    kept.push(without_first(it, pred, done));
                }
                out.put(DataElement::new(
                    e.tag(),
                    VR::SQ,
                    DataSetSequence::new(kept, Length::UNDEFINED),
                ));
            }
            _ => {
                out.put(e.clone());
            }
        }
    }
    out
}

fn named(code: codes::Code) -> impl Fn(&InMemDicomObject) -> bool {
    move |o: &InMemDicomObject| {
        o.get(tags::CONCEPT_NAME_CODE_SEQUENCE)
            .and_then(|e| e.items())
            .and_then(|i| i.first())
            .and_then(|c| c.get(tags::CODE_VALUE))
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() == code.value)
            && o.get(tags::RELATIONSHIP_TYPE).is_some()
    }
}

#[test]
fn checker_rejects_a_report_missing_a_required_item() {
    let (file, _) = document().build().unwrap();
    let obj: &InMemDicomObject = &file;
    check::check(obj, "ok").unwrap();
    for (code, expect) in [
        (codes::TRACKING_UID, "missing Tracking Unique Identifier"),
        (codes::FINDING_SITE, "missing Finding Site"),
        (codes::IMAGE_REGION, "missing Image Region"),
        (codes::PROBABILITY_SEVERE, "missing Probability of Severe"),
        (codes::LANGUAGE, "missing Language"),
        (codes::IMAGING_MEASUREMENTS, "missing Imaging Measurements"),
    ] {
        let done = Cell::new(false);
        let broken = without_first(obj, &named(code), &done);
        assert!(done.get(), "{} not found to remove", code.meaning);
        let err = check::check(&broken, "broken").unwrap_err();
        assert!(
            err.problems.iter().any(|p| p.contains(expect)),
            "removing {}: {:?}",
            code.meaning,
            err.problems
        );
    }
    // A private code without its scheme declared.
    let mut undeclared = obj.clone();
    undeclared.remove_element(tags::CODING_SCHEME_IDENTIFICATION_SEQUENCE);
    let err = check::check(&undeclared, "undeclared").unwrap_err();
    assert!(err
        .problems
        .iter()
        .any(|p| p.contains("99DISCUS is not declared")));
    // A wrong relationship type.
    let mut wrong = obj.clone();
    wrong.put(DataElement::new(
        tags::SOP_CLASS_UID,
        VR::UI,
        "1.2.840.10008.5.1.4.1.1.88.11",
    ));
    assert!(check::check(&wrong, "basic").is_err());
}

fn have(tool: &str) -> bool {
    Command::new(tool).arg("--version").output().is_ok() || Command::new(tool).output().is_ok()
}

#[test]
fn dsrdump_shows_the_tid_1500_tree() {
    if !have("dsrdump") {
        crosscheck::skip("dsrdump (dcmtk) is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (path, doc, ids) = write_report(dir.path());
    let out = Command::new("dsrdump")
        .args(["+Pt", "+Pu", "+Ps", "+Pl"])
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "dsrdump failed: {err}\n{text}");
    assert!(!err.contains("E:"), "dsrdump errors: {err}");
    assert!(text.contains("Comprehensive SR"), "{text}");
    assert!(text.contains("Imaging Measurement Report"), "{text}");
    assert!(text.contains("TID 1500"), "{text}");
    assert!(text.contains("TID 1410"), "{text}");
    assert_eq!(text.matches("Measurement Group").count(), 25, "{text}");
    for f in &doc.findings {
        assert!(text.contains(&f.tracking_key), "{}", f.tracking_key);
    }
    for u in &ids.tracking_uids {
        assert!(text.contains(u.as_str()), "{u}");
    }
}

fn dciodvfy(path: &Path) -> String {
    let out = Command::new("dciodvfy").arg(path).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("ComprehensiveSR"), "{text}");
    eprintln!("dciodvfy {}:\n{text}", path.display());
    text
}

#[test]
fn dciodvfy_reports_no_errors() {
    if !have("dciodvfy") {
        crosscheck::skip("dciodvfy (Debian dicom3tools) is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // With the study's and series' UIDs under a valid root (as a hospital's are): no error at all.
    let mut doc = document();
    let rooted = |u: &str| discus_sr::write::derived_uid("test", &[u]);
    doc.study.study_instance_uid = rooted(&doc.study.study_instance_uid);
    for f in &mut doc.findings {
        if let Some(p) = &mut f.point {
            p.series_instance_uid = rooted(&p.series_instance_uid);
        }
    }
    let path = dir.path().join("rooted.dcm");
    doc.write(&path).unwrap();
    let text = dciodvfy(&path);
    let errors: Vec<&str> = text.lines().filter(|l| l.starts_with("Error")).collect();
    assert!(errors.is_empty(), "dciodvfy errors:\n{text}");
    // With the synthetic LumbarDISC-style UIDs (the bare study and series ids): the only errors
    // are about those copied UIDs, never about what the writer made.
    let (path, doc, _) = write_report(dir.path());
    let text = dciodvfy(&path);
    let source_uids: Vec<String> = std::iter::once(doc.study.study_instance_uid.clone())
        .chain(
            doc.findings
                .iter()
                .filter_map(|f| f.point.as_ref().map(|p| p.series_instance_uid.clone())),
        )
        .collect();
    for l in text.lines().filter(|l| l.starts_with("Error")) {
        assert!(
            l.contains("Illegal root for UID")
                && source_uids.iter().any(|u| l.contains(&format!("\"{u}\""))),
            "dciodvfy error not about a copied source UID: {l}\n{text}"
        );
    }
}

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The shared highdicom reader (scripts/highdicom_sr_read.py), also used by the serve tests.
const HIGHDICOM_READ: &str = include_str!("../../../scripts/highdicom_sr_read.py");

#[test]
fn highdicom_reads_every_finding() {
    let out = Command::new(workspace().join("scripts/pyvenv"))
        .args(["highdicom", "highdicom==0.28.2"])
        .output()
        .expect("run scripts/pyvenv");
    let python = match out.status.code() {
        Some(0) => PathBuf::from(String::from_utf8(out.stdout).unwrap().trim()),
        Some(3) => {
            crosscheck::skip(String::from_utf8_lossy(&out.stderr).trim());
            return;
        }
        _ => panic!(
            "scripts/pyvenv failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    };
    let dir = tempfile::tempdir().unwrap();
    let (path, doc, ids) = write_report(dir.path());
    let out = Command::new(&python)
        .args(["-c", HIGHDICOM_READ])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "highdicom failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let pair = |c: &serde_json::Value| -> (String, String) {
        (
            c[0].as_str().unwrap().to_string(),
            c[1].as_str().unwrap().to_string(),
        )
    };
    let groups = v["groups"].as_array().unwrap();
    assert_eq!(groups.len(), doc.findings.len());
    let with_points = doc.findings.iter().filter(|f| f.point.is_some()).count();
    assert_eq!(
        groups.iter().filter(|g| !g["point"].is_null()).count(),
        with_points
    );
    for f in &doc.findings {
        let g = groups
            .iter()
            .find(|g| g["tracking_identifier"] == f.tracking_key.as_str())
            .unwrap_or_else(|| panic!("{} not found by highdicom", f.tracking_key));
        let i = doc.findings.iter().position(|x| x == f).unwrap();
        assert_eq!(g["tracking_uid"], ids.tracking_uids[i].as_str());
        assert_eq!(pair(&g["finding"]), pair(&v["stenosis"]));
        assert_eq!(pair(&g["site"]), pair(&v["discs"][f.level.index()]));
        match f.condition.side() {
            Some(discus_core::Side::Left) => assert_eq!(pair(&g["laterality"]), pair(&v["left"])),
            Some(discus_core::Side::Right) => assert_eq!(pair(&g["laterality"]), pair(&v["right"])),
            None => assert!(g["laterality"].is_null()),
        }
        let topo = pair(&g["topography"]);
        match f.condition.group() {
            discus_core::ConditionGroup::Spinal => assert_eq!(topo, pair(&v["central"])),
            discus_core::ConditionGroup::Foraminal => {
                assert_eq!(topo, ("NF".into(), "99DISCUS".into()))
            }
            discus_core::ConditionGroup::Subarticular => {
                assert_eq!(topo, ("SR".into(), "99DISCUS".into()))
            }
        }
        let ms = g["measurements"].as_array().unwrap();
        assert_eq!(ms.len(), 3);
        for (k, name) in ["P-NM", "P-MO", "P-SE"].iter().enumerate() {
            let m = ms.iter().find(|m| m[0] == *name).unwrap();
            assert_eq!(m[1], "99DISCUS");
            assert_eq!(m[3], "1");
            assert!((m[2].as_f64().unwrap() - f.probabilities[k]).abs() < 1e-9);
        }
        let ev = g["evaluations"].as_array().unwrap();
        assert_eq!(ev.len(), 1, "{ev:?}");
        assert_eq!(
            (ev[0][0].as_str().unwrap(), ev[0][1].as_str().unwrap()),
            ("246112005", "SCT")
        );
        let grade = (
            ev[0][2].as_str().unwrap().to_string(),
            ev[0][3].as_str().unwrap().to_string(),
        );
        match f.grade {
            Severity::NormalMild => assert_eq!(grade, ("NM".into(), "99DISCUS".into())),
            Severity::Moderate => assert_eq!(grade, pair(&v["moderate"])),
            Severity::Severe => assert_eq!(grade, pair(&v["severe"])),
        }
        match &f.point {
            None => assert!(g["point"].is_null()),
            Some(p) => {
                let q = &g["point"];
                assert!((q[0].as_f64().unwrap() - (p.pixel_xy[0] + 0.5)).abs() < 1e-3);
                assert!((q[1].as_f64().unwrap() - (p.pixel_xy[1] + 0.5)).abs() < 1e-3);
                assert_eq!(q[2], p.sop_instance_uid.as_str());
            }
        }
    }
}

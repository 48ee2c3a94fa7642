//! Evaluation and reader agreement from the dataset index alone: a synthetic cohort is indexed, its
//! DICOM files are deleted, and `discus evaluate` (per-site tables included) and `discus reads
//! agreement` (point distances in mm included) give the same numbers as before.

use std::path::Path;

mod common;
use common::{ok, s};

/// evaluate's report.json and the agreement JSON, with the run-specific fields dropped.
fn numbers(root: &Path, sub: &Path, out: &Path) -> (serde_json::Value, serde_json::Value) {
    ok(&[
        "evaluate",
        "--dataset",
        s(root),
        "--submission",
        s(sub),
        "--out",
        s(out),
        "--resamples",
        "50",
    ]);
    let mut report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    report.as_object_mut().unwrap().remove("provenance");
    let agreement: serde_json::Value = serde_json::from_str(&ok(&[
        "reads",
        "--dataset",
        s(root),
        "--json",
        "agreement",
        "--resamples",
        "50",
    ]))
    .unwrap();
    (report, agreement)
}

#[test]
fn evaluate_and_agreement_from_the_index_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("cohort");
    ok(&[
        "synth",
        "--out",
        s(&root),
        "--studies",
        "4",
        "--sites",
        "2",
        "--readers",
        "2",
        "--seed",
        "11",
        "--matrix-scale",
        "0.25",
    ]);
    ok(&["validate", s(&root), "--json"]);
    ok(&[
        "reads",
        "--dataset",
        s(&root),
        "import",
        "--readers-dir",
        s(&root.join("readers")),
    ]);
    let sub = tmp.path().join("prior.csv");
    ok(&[
        "baseline",
        "prior",
        "--labels",
        s(&root.join("train.csv")),
        "--studies",
        s(&root.join("train_series_descriptions.csv")),
        "--out",
        s(&sub),
    ]);
    let (report, agreement) = numbers(&root, &sub, &tmp.path().join("before"));
    // The numbers are real: two sites, and point distances measured in mm.
    let sites = report["by_facet"][0]["groups"].as_array().unwrap();
    assert_eq!(sites.len(), 2, "{sites:?}");
    assert!(sites.iter().all(|g| g["name"] != "unknown"));
    let pairs = agreement["pairs"].as_array().unwrap();
    assert!(!pairs.is_empty());
    for p in pairs {
        assert!(p["points"]["measured"].as_u64().unwrap() > 20, "{p}");
        assert!(p["points"]["median_mm"].as_f64().unwrap() > 0.0, "{p}");
    }

    std::fs::remove_dir_all(root.join("train_images")).unwrap();
    let (report2, agreement2) = numbers(&root, &sub, &tmp.path().join("after"));
    assert_eq!(report, report2);
    assert_eq!(agreement, agreement2);
}

//! The evaluation report end to end on a tiny dataset built here: DICOM headers with institution,
//! manufacturer and field strength (one study without images, one with a broken file), a labels file
//! and a noisy submission. Checks the per-site breakdown against the metric on each site's studies,
//! then opens index.html in headless Chromium and checks it renders, without console errors, with its
//! SVG plots.

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use discus_core::formats::{StudyLabels, SubmissionRow};
use discus_core::metric::{score, Semantics};
use discus_core::{LabelColumn, RowId, Severity, StudyId};
use discus_eval::report::{evaluate, write_report, EvalOptions};
use discus_eval::sites::{studies_meta, Facet, StudyMeta};
use std::path::Path;
use std::process::Command;

const SITES: [(&str, &str, &str); 3] = [
    ("Hospital A", "SIEMENS", "1.5"),
    ("Clinic <B> & Co", "GE MEDICAL SYSTEMS", "3"),
    ("Hospital C", "Philips", "15000"), // gauss: 1.5 T
];

fn write_dicom(path: &Path, site: (&str, &str, &str), uid: &str) {
    let mut obj = InMemDicomObject::new_empty();
    let put = |o: &mut InMemDicomObject, tag, vr, v: &str| {
        o.put(DataElement::new(tag, vr, PrimitiveValue::from(v)));
    };
    put(
        &mut obj,
        tags::SOP_CLASS_UID,
        VR::UI,
        "1.2.840.10008.5.1.4.1.1.4",
    );
    put(&mut obj, tags::SOP_INSTANCE_UID, VR::UI, uid);
    put(
        &mut obj,
        tags::STUDY_INSTANCE_UID,
        VR::UI,
        "1.2.826.0.1.3680043.9.1",
    );
    put(
        &mut obj,
        tags::SERIES_INSTANCE_UID,
        VR::UI,
        "1.2.826.0.1.3680043.9.2",
    );
    put(&mut obj, tags::MODALITY, VR::CS, "MR");
    put(&mut obj, tags::INSTITUTION_NAME, VR::LO, site.0);
    put(&mut obj, tags::MANUFACTURER, VR::LO, site.1);
    put(&mut obj, tags::MAGNETIC_FIELD_STRENGTH, VR::DS, site.2);
    obj.put(DataElement::new(
        tags::ROWS,
        VR::US,
        PrimitiveValue::from(2u16),
    ));
    obj.put(DataElement::new(
        tags::COLUMNS,
        VR::US,
        PrimitiveValue::from(2u16),
    ));
    let file = obj
        .with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax("1.2.840.10008.1.2.1")
                .media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.4")
                .media_storage_sop_instance_uid(uid),
        )
        .unwrap();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    file.write_to_file(path).unwrap();
}

/// 36 studies; study i is at site i % 3, except study 34 (no images) and 35 (a broken file).
fn dataset(root: &Path) -> (Vec<StudyLabels>, Vec<SubmissionRow>) {
    let mut labels = Vec::new();
    let mut rows = Vec::new();
    for i in 0..36u64 {
        let study = StudyId(3_000_000_000 + i);
        let series = root.join(format!("train_images/{study}/{}", 100 + i));
        if i < 34 {
            write_dicom(
                &series.join("1.dcm"),
                SITES[(i % 3) as usize],
                &format!("1.2.3.{i}"),
            );
            // a second file, later by name, with another site: must not be the one read
            write_dicom(
                &series.join("2.dcm"),
                ("Elsewhere", "X", "7"),
                &format!("1.2.4.{i}"),
            );
        } else if i == 35 {
            std::fs::create_dir_all(&series).unwrap();
            std::fs::write(series.join("1.dcm"), b"not a DICOM file").unwrap();
        }
        let mut l = StudyLabels::empty(study);
        for c in 0..25 {
            let k = (i as usize * 7 + c * 3) % 11;
            l.grades[c] = match k {
                0 => None,
                1..=6 => Some(Severity::NormalMild),
                7..=8 => Some(Severity::Moderate),
                _ => Some(Severity::Severe),
            };
        }
        for column in LabelColumn::all() {
            // A noisy model: leans to the truth, more so at site 0.
            let t = l.grades[column.index()].map(|g| g.index()).unwrap_or(0);
            let lean = if i % 3 == 0 { 0.7 } else { 0.45 };
            let mut p = [(1.0 - lean) / 2.0; 3];
            p[(t + (i as usize % 5 == 4) as usize) % 3] = lean;
            rows.push(SubmissionRow {
                row_id: RowId { study, column },
                probs: p,
            });
        }
        labels.push(l);
    }
    (labels, rows)
}

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| {
            Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
}

#[test]
fn report_by_site_and_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (labels, rows) = dataset(root);
    let studies: Vec<StudyId> = labels.iter().map(|l| l.study).collect();
    let ds = discus_data::dataset::Dataset::open(root).unwrap();
    let (meta, errors) = studies_meta(&ds, &studies, &|| {});
    assert_eq!(meta.len(), 34);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("3000000035") && errors[0].contains("1.dcm"),
        "{errors:?}"
    );
    assert_eq!(
        meta[&StudyId(3_000_000_002)],
        StudyMeta {
            institution: Some("Hospital C".into()),
            manufacturer: Some("Philips".into()),
            field_strength: Some(1.5),
        }
    );
    assert_eq!(
        Facet::FieldStrength.group(meta.get(&StudyId(3_000_000_001))),
        "3.0 T"
    );

    let options = EvalOptions {
        resamples: 300,
        seed: 5,
        ..Default::default()
    };
    let report = evaluate(&labels, &rows, None, &meta, errors, options).unwrap();
    let again = evaluate(&labels, &rows, None, &meta, vec![], options).unwrap();
    assert_eq!(report.overall, again.overall, "seeded bootstrap");
    let full = score(&labels, &rows, Semantics::Renormalize).unwrap();
    assert_eq!(report.overall.score, full);
    assert!(
        report.overall.interval.score[0] < full.score
            && full.score < report.overall.interval.score[1]
    );

    // Each site's score is the metric on that site's studies alone.
    let sites = &report.by_facet[0];
    assert_eq!(sites.facet, Facet::Site);
    let names: Vec<&str> = sites.groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(
        names,
        ["Clinic <B> & Co", "Hospital A", "Hospital C", "unknown"]
    );
    for g in &sites.groups {
        let idx: Vec<usize> = (0..36)
            .filter(|&i| Facet::Site.group(meta.get(&studies[i])) == g.name)
            .collect();
        assert_eq!(g.studies, idx.len());
        let sub_labels: Vec<StudyLabels> = idx.iter().map(|&i| labels[i].clone()).collect();
        let sub_rows: Vec<SubmissionRow> = idx
            .iter()
            .flat_map(|&i| rows[i * 25..(i + 1) * 25].iter().cloned())
            .collect();
        let s = score(&sub_labels, &sub_rows, Semantics::Renormalize).unwrap();
        assert!((g.scored.score.score - s.score).abs() < 1e-12, "{}", g.name);
    }
    // Site 0 (Hospital A) leans harder to the truth: the better score.
    let by = |n: &str| {
        sites
            .groups
            .iter()
            .find(|g| g.name == n)
            .unwrap()
            .scored
            .score
            .score
    };
    assert!(by("Hospital A") < by("Hospital C"));
    let fields: Vec<&str> = report.by_facet[2]
        .groups
        .iter()
        .map(|g| g.name.as_str())
        .collect();
    assert_eq!(fields, ["1.5 T", "3.0 T", "unknown"]);
    assert_eq!(report.by_condition.len(), 5);
    assert_eq!(report.by_level.len(), 5);
    assert_eq!(report.by_condition_level.len(), 25);

    let out = root.join("report");
    write_report(&out, &report).unwrap();
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["studies"], 36);
    assert_eq!(json["metadata_errors"].as_array().unwrap().len(), 1);
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(html.contains("Clinic &lt;B&gt; &amp; Co"));
    assert!(!html.contains("Clinic <B>"));
    // Self-contained: nothing loaded from elsewhere.
    for outside in ["src=", "<link", "<script", "url("] {
        assert!(!html.contains(outside), "{outside}");
    }
    // 1 histogram + 3 facets + 6 reliability plots
    assert_eq!(html.matches("<svg").count(), 10);

    let Some(chrome) = chromium() else {
        discus_core::crosscheck::skip("the browser check: chromium is not installed");
        return;
    };
    let profile = tempfile::tempdir().unwrap();
    let shot = root.join("shot.png");
    let url = format!("file://{}", out.join("index.html").display());
    let common = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--enable-logging=stderr",
        "--v=0",
    ];
    let user = format!("--user-data-dir={}", profile.path().display());
    let dom = Command::new(chrome)
        .args(common)
        .arg(&user)
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&dom.stderr);
    assert!(dom.status.success(), "chromium failed: {stderr}");
    for bad in [
        "Uncaught",
        "CONSOLE",
        "Failed to load",
        "ERR_FILE_NOT_FOUND",
    ] {
        assert!(!stderr.contains(bad), "{bad} in chromium's log:\n{stderr}");
    }
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(dom.contains("discus evaluation report"), "{dom}");
    assert_eq!(dom.matches("<svg").count(), 10);
    assert!(dom.contains("Hospital A"));
    let sc = Command::new(chrome)
        .args(common)
        .arg(&user)
        .arg(format!("--screenshot={}", shot.display()))
        .arg("--window-size=1200,5200")
        .arg(&url)
        .output()
        .unwrap();
    assert!(
        sc.status.success(),
        "{}",
        String::from_utf8_lossy(&sc.stderr)
    );
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
    if let Ok(keep) = std::env::var("DISCUS_KEEP_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }
}

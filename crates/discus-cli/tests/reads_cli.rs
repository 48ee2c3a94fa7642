//! `discus reads` end to end, through the binary: a small dataset with real DICOM headers built
//! here, truth grades and points, three simulated readers (truth plus seeded noise), then import,
//! agreement, disagreements, adjudication, consensus and export; plus bad input, two processes
//! writing at once, and a process killed in the middle of an import.

use dicom_core::value::PrimitiveValue;
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use discus_core::agreement::SplitMix64;
use discus_core::formats::{
    read_coordinates, read_train, write_coordinates, write_series_descriptions, write_train,
    LabelPoint, LineEnding, SeriesDescription, StudyLabels,
};
use discus_core::{LabelColumn, SeriesId, SeriesKind, Severity, StudyId};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

mod common;
use common::{discus, ok, run, s};

const ROWS: u16 = 64;
const COLS: u16 = 64;
const SLICES: usize = 5;

fn series_id(study: u64, kind: SeriesKind) -> u64 {
    study * 10 + kind as u64 + 1
}

/// Slice `k` of a series: sagittal slices 4 mm apart along x, axial 4 mm apart along z; 1 mm pixels.
fn slice_geometry(kind: SeriesKind, k: usize) -> ([f64; 3], [f64; 6]) {
    if kind.is_sagittal() {
        (
            [-8.0 - 4.0 * k as f64, -32.0, 32.0],
            [0.0, 1.0, 0.0, 0.0, 0.0, -1.0],
        )
    } else {
        (
            [-32.0, -32.0, 20.0 - 4.0 * k as f64],
            [1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
        )
    }
}

fn ds3(v: &[f64]) -> PrimitiveValue {
    PrimitiveValue::Strs(v.iter().map(|x| format!("{x}")).collect())
}

fn write_dicom(path: &Path, study: u64, series: u64, k: usize, kind: SeriesKind) {
    let (ipp, iop) = slice_geometry(kind, k);
    let mut obj = InMemDicomObject::new_empty();
    let sop = format!("1.2.826.0.1.3680043.8.498.5.{study}.{series}.{}", k + 1);
    let mut put = |tag, vr, v: PrimitiveValue| obj.put(DataElement::new(tag, vr, v));
    put(tags::SOP_CLASS_UID, VR::UI, uids::MR_IMAGE_STORAGE.into());
    put(tags::SOP_INSTANCE_UID, VR::UI, sop.clone().into());
    put(tags::MODALITY, VR::CS, "MR".into());
    put(
        tags::STUDY_INSTANCE_UID,
        VR::UI,
        format!("1.2.5.{study}").into(),
    );
    put(
        tags::SERIES_INSTANCE_UID,
        VR::UI,
        format!("1.2.5.{series}").into(),
    );
    put(
        tags::FRAME_OF_REFERENCE_UID,
        VR::UI,
        format!("1.2.5.9.{study}").into(),
    );
    put(tags::INSTANCE_NUMBER, VR::IS, (k + 1).to_string().into());
    put(tags::IMAGE_POSITION_PATIENT, VR::DS, ds3(&ipp));
    put(tags::IMAGE_ORIENTATION_PATIENT, VR::DS, ds3(&iop));
    put(tags::PIXEL_SPACING, VR::DS, ds3(&[1.0, 1.0]));
    put(tags::SAMPLES_PER_PIXEL, VR::US, PrimitiveValue::from(1u16));
    put(
        tags::PHOTOMETRIC_INTERPRETATION,
        VR::CS,
        "MONOCHROME2".into(),
    );
    put(tags::ROWS, VR::US, PrimitiveValue::from(ROWS));
    put(tags::COLUMNS, VR::US, PrimitiveValue::from(COLS));
    put(tags::BITS_ALLOCATED, VR::US, PrimitiveValue::from(16u16));
    put(tags::BITS_STORED, VR::US, PrimitiveValue::from(12u16));
    put(tags::HIGH_BIT, VR::US, PrimitiveValue::from(11u16));
    put(
        tags::PIXEL_REPRESENTATION,
        VR::US,
        PrimitiveValue::from(0u16),
    );
    let pixels: Vec<u16> = (0..usize::from(ROWS) * usize::from(COLS))
        .map(|i| (i % 4096) as u16)
        .collect();
    put(tags::PIXEL_DATA, VR::OW, PrimitiveValue::U16(pixels.into()));
    let file = obj
        .with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)
                .media_storage_sop_class_uid(uids::MR_IMAGE_STORAGE)
                .media_storage_sop_instance_uid(sop),
        )
        .unwrap();
    file.write_to_file(path).unwrap();
}

/// A finding's truth: grade and point.
#[derive(Clone)]
struct Truth {
    grades: Vec<StudyLabels>,
    points: Vec<LabelPoint>,
}

fn studies(n: usize) -> Vec<u64> {
    (0..n as u64).map(|i| 3_000_000_000 + 7919 * i).collect()
}

/// Writes the dataset (DICOM headers + series descriptions) and returns the truth.
fn write_dataset(root: &Path, ids: &[u64], seed: u64) -> Truth {
    let mut desc = Vec::new();
    for &study in ids {
        for kind in SeriesKind::ALL {
            let series = series_id(study, kind);
            let dir = root
                .join("train_images")
                .join(study.to_string())
                .join(series.to_string());
            std::fs::create_dir_all(&dir).unwrap();
            for k in 0..SLICES {
                write_dicom(&dir.join(format!("{}.dcm", k + 1)), study, series, k, kind);
            }
            desc.push(SeriesDescription {
                study: StudyId(study),
                series: SeriesId(series),
                kind,
            });
        }
    }
    write_series_descriptions(
        &root.join("train_series_descriptions.csv"),
        &desc,
        LineEnding::Lf,
    )
    .unwrap();
    let mut g = SplitMix64(seed);
    let mut grades = Vec::new();
    let mut points = Vec::new();
    for &study in ids {
        let mut l = StudyLabels::empty(StudyId(study));
        for col in LabelColumn::all() {
            let u = g.unit();
            // Roughly the real distribution: mostly Normal/Mild.
            let grade = if u < 0.6 {
                Severity::NormalMild
            } else if u < 0.85 {
                Severity::Moderate
            } else {
                Severity::Severe
            };
            l.grades[col.index()] = Some(grade);
            points.push(LabelPoint {
                study: StudyId(study),
                series: SeriesId(series_id(study, col.condition.series_kind())),
                instance: 2 + (col.level.index() % 3) as u32,
                condition: col.condition,
                level: col.level,
                x: 12.0 + 40.0 * g.unit(),
                y: 12.0 + 40.0 * g.unit(),
            });
        }
        grades.push(l);
    }
    Truth { grades, points }
}

/// A reader: each grade moves one step (up or down, within the scale) with probability `p`;
/// points move a few pixels, and with probability `slip` onto the neighbouring slice.
fn simulate_reader(truth: &Truth, p: f64, slip: f64, seed: u64) -> Truth {
    let mut g = SplitMix64(seed);
    let mut grades = truth.grades.clone();
    for l in &mut grades {
        for cell in l.grades.iter_mut() {
            let t = cell.unwrap().index();
            if g.unit() < p {
                let up = if t == 0 {
                    true
                } else if t == 2 {
                    false
                } else {
                    g.unit() < 0.5
                };
                *cell = Severity::from_index(if up { t + 1 } else { t - 1 });
            }
        }
    }
    let points = truth
        .points
        .iter()
        .map(|pt| {
            let mut q = pt.clone();
            q.x = (q.x + 4.0 * (g.unit() - 0.5)).clamp(0.0, 63.0);
            q.y = (q.y + 4.0 * (g.unit() - 0.5)).clamp(0.0, 63.0);
            if g.unit() < slip {
                q.instance += 1;
            }
            q
        })
        .collect();
    Truth { grades, points }
}

fn write_reader(dir: &Path, r: &Truth) {
    std::fs::create_dir_all(dir).unwrap();
    write_train(&dir.join("train.csv"), &r.grades, LineEnding::Lf).unwrap();
    write_coordinates(
        &dir.join("train_label_coordinates.csv"),
        &r.points,
        LineEnding::Lf,
    )
    .unwrap();
}

/// Patient position (mm) of pixel (x, y) on instance `instance` of a fixture series (the geometry of
/// `slice_geometry`, written independently: sagittal rows run along +y, columns along -z; axial
/// rows along +x, columns along +y).
fn patient_mm(kind: SeriesKind, instance: u32, x: f64, y: f64) -> [f64; 3] {
    let k = f64::from(instance - 1);
    if kind.is_sagittal() {
        [-8.0 - 4.0 * k, -32.0 + x, 32.0 - y]
    } else {
        [-32.0 + x, -32.0 + y, 20.0 - 4.0 * k]
    }
}

fn mean_distance_mm(points: &[LabelPoint], truth: &Truth) -> f64 {
    let mut sum = 0.0;
    for p in points {
        let t = truth
            .points
            .iter()
            .find(|t| t.study == p.study && t.condition == p.condition && t.level == p.level)
            .unwrap();
        let kind = p.condition.series_kind();
        let a = patient_mm(kind, p.instance, p.x, p.y);
        let b = patient_mm(kind, t.instance, t.x, t.y);
        sum += ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt();
    }
    sum / points.len() as f64
}

/// Cells that differ from the truth (a missing label counts as wrong).
fn errors(labels: &[StudyLabels], truth: &Truth) -> usize {
    let mut n = 0;
    for t in &truth.grades {
        let l = labels.iter().find(|l| l.study == t.study);
        for i in 0..25 {
            if l.and_then(|l| l.grades[i]) != t.grades[i] {
                n += 1;
            }
        }
    }
    n
}

#[test]
fn end_to_end_consensus_beats_every_reader() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data");
    let ids = studies(16);
    let truth = write_dataset(&root, &ids, 11);
    let names = ["ann", "bob", "cyd"];
    let mut reader_errors = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let r = simulate_reader(&truth, 0.22 + 0.04 * i as f64, 0.1, 100 + i as u64);
        reader_errors.push(errors(&r.grades, &truth));
        write_reader(&root.join("readers").join(name), &r);
    }
    let store = root.join(".discus/reads.sqlite");
    let data = s(&root);

    // Import, then import again: nothing new.
    let out = ok(&[
        "reads",
        "--dataset",
        data,
        "--json",
        "import",
        "--readers-dir",
        &format!("{data}/readers"),
        "--at",
        "1700000000",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 3);
    for r in v.as_array().unwrap() {
        assert_eq!(r["outcome"]["Imported"]["events"], 16 * 25, "{r}");
    }
    assert!(store.is_file(), "default store under the dataset");
    let again = ok(&[
        "reads",
        "--dataset",
        data,
        "--json",
        "import",
        "--readers-dir",
        &format!("{data}/readers"),
    ]);
    assert_eq!(again.matches("AlreadyImported").count(), 3, "{again}");

    // Agreement: JSON + HTML with the heat map; points measured in mm.
    let rep = tmp.path().join("rep");
    let out = ok(&[
        "reads",
        "--dataset",
        data,
        "--json",
        "agreement",
        "--out",
        s(&rep),
        "--resamples",
        "200",
        "--tolerance-mm",
        "4",
    ]);
    let a: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(a["readers"], serde_json::json!(["ann", "bob", "cyd"]));
    assert_eq!(a["findings"], 16 * 25);
    assert_eq!(a["studies"], 16);
    assert_eq!(a["pairs"].as_array().unwrap().len(), 3);
    assert_eq!(a["by_condition"].as_array().unwrap().len(), 5);
    assert_eq!(a["by_level"].as_array().unwrap().len(), 5);
    for p in a["pairs"].as_array().unwrap() {
        let pts = &p["points"];
        assert_eq!(pts["both_placed"], 16 * 25);
        assert_eq!(
            pts["measured"],
            16 * 25,
            "every point placed through its DICOM header"
        );
        // Jitter of at most 2 px (1 mm pixels) per reader per axis, plus slips of 4 mm: the median
        // is a few mm, the largest can exceed 4 mm.
        let med = pts["median_mm"].as_f64().unwrap();
        assert!(med > 0.3 && med < 4.0, "median {med}");
        let within = pts["within_tolerance"].as_u64().unwrap();
        assert!(within > 100 && within < 16 * 25, "{within}");
        let k = p["estimates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["statistic"] == "cohen_kappa_quadratic")
            .unwrap();
        let (v, lo, hi) = (
            k["value"].as_f64().unwrap(),
            k["ci_low"].as_f64().unwrap(),
            k["ci_high"].as_f64().unwrap(),
        );
        assert!(lo <= v && v <= hi && v > 0.2 && v < 0.95, "{lo} {v} {hi}");
    }
    let html = std::fs::read_to_string(rep.join("index.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("cohen_kappa_quadratic"));
    assert!(!html.contains("<script"), "self-contained, no scripts");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(rep.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["findings"], 16 * 25);

    // Disagreements: Severe first, then spinal canal first.
    let wl = tmp.path().join("worklist.csv");
    let out = ok(&[
        "reads",
        "--dataset",
        data,
        "--json",
        "disagreements",
        "--rule",
        "grades-differ",
        "--out",
        s(&wl),
    ]);
    let d: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    assert!(d.len() > 50, "{}", d.len());
    let rank = |x: &serde_json::Value| {
        let severe = x["severe_involved"].as_bool().unwrap();
        let spinal = x["key"]["condition"] == "spinal_canal_stenosis";
        (!severe as u8, !spinal as u8)
    };
    for w in d.windows(2) {
        assert!(
            rank(&w[0]) <= rank(&w[1]),
            "{} before {}",
            w[0]["row_id"],
            w[1]["row_id"]
        );
    }
    let two = ok(&[
        "reads",
        "--dataset",
        data,
        "--json",
        "disagreements",
        "--rule",
        "two-steps",
    ]);
    let two: Vec<serde_json::Value> = serde_json::from_str(&two).unwrap();
    assert!(two.len() < d.len());
    assert!(two.iter().all(|x| x["spread"] == 2));
    let apart = ok(&[
        "reads",
        "--dataset",
        data,
        "--json",
        "disagreements",
        "--rule",
        "points-apart",
        "--tolerance-mm",
        "3.5",
    ]);
    let apart: Vec<serde_json::Value> = serde_json::from_str(&apart).unwrap();
    assert!(!apart.is_empty());
    assert!(apart
        .iter()
        .all(|x| x["max_distance_mm"].as_f64().unwrap() > 3.5));

    // An adjudicator who knows the truth fills in the worklist.
    let text = std::fs::read_to_string(&wl).unwrap();
    let mut filled = String::from("row_id,grade,reason\n");
    for line in text.lines().skip(1) {
        let row_id = line.split(',').next().unwrap();
        let key = discus_reads::import::parse_row_id(row_id).unwrap();
        let t = truth.grades.iter().find(|l| l.study == key.study).unwrap();
        let g = t.get(key.condition(), key.level()).unwrap();
        filled += &format!("{row_id},{},checked\n", g.as_str());
    }
    let filled_path = tmp.path().join("decisions.csv");
    std::fs::write(&filled_path, filled).unwrap();
    ok(&[
        "reads",
        "--dataset",
        data,
        "adjudicate",
        "--adjudicator",
        "dee",
        "--decisions",
        s(&filled_path),
        "--at",
        "1700000500",
    ]);

    // Consensus under each rule against the truth.
    let best_reader = *reader_errors.iter().min().unwrap();
    assert!(
        best_reader > 40,
        "readers should be noisy: {reader_errors:?}"
    );
    let mut by_rule = Vec::new();
    for rule in ["majority", "median", "adjudicated", "unanimous"] {
        let out_dir = tmp.path().join(format!("cons-{rule}"));
        ok(&[
            "reads",
            "--dataset",
            data,
            "consensus",
            "--rule",
            rule,
            "--out",
            s(&out_dir),
        ]);
        let labels = read_train(&out_dir.join("train.csv"))
            .unwrap()
            .strict()
            .unwrap();
        by_rule.push((rule, errors(&labels, &truth)));
        let prov: Vec<serde_json::Value> =
            serde_json::from_slice(&std::fs::read(out_dir.join("provenance.json")).unwrap())
                .unwrap();
        assert_eq!(prov.len(), 16 * 25);
        assert!(prov
            .iter()
            .all(|p| p["reads"].as_array().unwrap().len() == 3));
        if rule == "adjudicated" {
            let adj = prov.iter().filter(|p| p["adjudicator"] == "dee").count();
            assert_eq!(adj, d.len(), "every disagreement adjudicated");
            // Unanimous findings plus adjudicated ones: every finding is labelled.
            assert!(prov.iter().all(|p| p["decided_by"] != "unresolved"));
        }
        let coords = std::fs::read_to_string(out_dir.join("train_label_coordinates.csv")).unwrap();
        assert_eq!(coords.lines().count(), 1 + 16 * 25);
        if rule == "majority" {
            // The consensus point (the medoid in mm) lies closer to the truth than any reader's.
            let cons = read_coordinates(&out_dir.join("train_label_coordinates.csv"))
                .unwrap()
                .strict()
                .unwrap();
            let c = mean_distance_mm(&cons, &truth);
            for name in names {
                let r = read_coordinates(
                    &root.join(format!("readers/{name}/train_label_coordinates.csv")),
                )
                .unwrap()
                .strict()
                .unwrap();
                let d = mean_distance_mm(&r, &truth);
                eprintln!("mean distance to the true point: {name} {d:.2} mm, consensus {c:.2} mm");
                assert!(c < d, "consensus {c} mm, {name} {d} mm");
            }
        }
    }
    eprintln!("reader errors {reader_errors:?}; consensus errors {by_rule:?}");
    for (rule, e) in &by_rule {
        if *rule == "unanimous" {
            continue; // leaves disagreements unresolved by design
        }
        assert!(
            *e < best_reader,
            "{rule}: {e} errors, best single reader {best_reader}"
        );
    }

    // Export gives back what a reader imported.
    let exp = tmp.path().join("export-ann");
    ok(&[
        "reads",
        "--dataset",
        data,
        "export",
        "--reader",
        "ann",
        "--out",
        s(&exp),
    ]);
    let back = read_train(&exp.join("train.csv"))
        .unwrap()
        .strict()
        .unwrap();
    let orig = read_train(&root.join("readers/ann/train.csv"))
        .unwrap()
        .strict()
        .unwrap();
    assert_eq!(back, orig);
    assert_eq!(
        std::fs::read(exp.join("train_label_coordinates.csv")).unwrap(),
        std::fs::read(root.join("readers/ann/train_label_coordinates.csv")).unwrap()
    );
}

#[test]
fn bad_input_names_the_line_and_imports_nothing_of_that_reader() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data");
    let ids = studies(3);
    let truth = write_dataset(&root, &ids, 5);
    let good = simulate_reader(&truth, 0.2, 0.0, 1);
    write_reader(&root.join("readers/good"), &good);
    // The bad reader: an unknown study (line 4 of train.csv), a grade that is not one of the
    // three (line 3), an unknown level (coordinates line 5), a point off the image (line 7).
    let bad = root.join("readers/bad");
    write_reader(&bad, &good);
    let mut train = std::fs::read_to_string(bad.join("train.csv")).unwrap();
    train = train.replacen("Moderate", "Moderately bad", 1);
    let lines: Vec<&str> = train.lines().collect();
    assert!(lines[1].contains("Moderately bad") || lines[2].contains("Moderately bad"));
    let bad_grade_line = 1 + lines
        .iter()
        .position(|l| l.contains("Moderately bad"))
        .unwrap();
    let mut lines: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    lines[3] = lines[3].replacen(&ids[2].to_string(), "123456", 1);
    std::fs::write(bad.join("train.csv"), lines.join("\n") + "\n").unwrap();
    let coords = std::fs::read_to_string(bad.join("train_label_coordinates.csv")).unwrap();
    let mut c: Vec<String> = coords.lines().map(|l| l.to_string()).collect();
    // Line 5 is the first study's spinal canal L4/L5 point (points are in train.csv column order).
    assert!(c[4].contains("L4/L5"), "{}", c[4]);
    c[4] = c[4].replacen("L4/L5", "L4/L6", 1);
    let mut f: Vec<&str> = c[6].split(',').collect();
    let x = "64.5";
    f[5] = x;
    c[6] = f.join(",");
    std::fs::write(bad.join("train_label_coordinates.csv"), c.join("\n") + "\n").unwrap();

    let data = s(&root);
    let o = run(&[
        "reads",
        "--dataset",
        data,
        "import",
        "--reader",
        "bad",
        "--train",
        s(&bad.join("train.csv")),
        "--coordinates",
        s(&bad.join("train_label_coordinates.csv")),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("nothing was imported"), "{err}");
    for (file, line, what) in [
        ("train.csv", bad_grade_line, "Moderately bad"),
        ("train.csv", 4, "study 123456 is not in the dataset"),
        ("train_label_coordinates.csv", 5, "unknown level"),
        ("train_label_coordinates.csv", 7, "outside the image"),
    ] {
        assert!(
            err.lines()
                .any(|l| l.contains(&format!("{file}: line {line}: ")) && l.contains(what)),
            "{file} line {line} ({what}) not named in:\n{err}"
        );
    }
    // Nothing stored.
    let o = run(&["reads", "--dataset", data, "agreement"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no blinded reads"));

    // With --readers-dir, the bad reader is reported and skipped; the good one is imported.
    let o = run(&[
        "reads",
        "--dataset",
        data,
        "--json",
        "import",
        "--readers-dir",
        &format!("{data}/readers"),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v[0]["error"].as_str().unwrap().contains("line 4"), "{v}");
    assert_eq!(v[1]["outcome"]["Imported"]["events"], 3 * 25);
    let exp = tmp.path().join("exp");
    ok(&[
        "reads",
        "--dataset",
        data,
        "export",
        "--reader",
        "good",
        "--out",
        s(&exp),
    ]);
    let o = run(&[
        "reads",
        "--dataset",
        data,
        "export",
        "--reader",
        "bad",
        "--out",
        s(&exp),
    ]);
    assert_eq!(o.status.code(), Some(1), "the bad reader was never created");

    // Usage errors exit 2.
    assert_eq!(run(&["reads", "import"]).status.code(), Some(2));
    assert_eq!(
        run(&["reads", "consensus", "--rule", "loudest", "--out", "x"])
            .status
            .code(),
        Some(2)
    );
}

/// Writes a reader's train.csv for `n` studies with ids from `first` (no dataset checks needed).
fn big_reader(dir: &Path, first: u64, n: usize, seed: u64) -> PathBuf {
    let mut g = SplitMix64(seed);
    let rows: Vec<StudyLabels> = (0..n as u64)
        .map(|i| {
            let mut l = StudyLabels::empty(StudyId(first + i));
            for c in l.grades.iter_mut() {
                *c = Severity::from_index(g.below(3));
            }
            l
        })
        .collect();
    std::fs::create_dir_all(dir).unwrap();
    let p = dir.join("train.csv");
    write_train(&p, &rows, LineEnding::Lf).unwrap();
    p
}

fn count_reads(store: &Path, reader: &str, round: &str, tmp: &Path) -> usize {
    let out = tmp.join(format!("count-{reader}-{round}"));
    let o = run(&[
        "reads",
        "--store",
        s(store),
        "--json",
        "export",
        "--reader",
        reader,
        "--round",
        round,
        "--out",
        s(&out),
    ]);
    if !o.status.success() {
        return 0;
    }
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v["reads"].as_u64().unwrap() as usize
}

#[test]
fn two_processes_recording_at_once_lose_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("reads.sqlite");
    let a = big_reader(&tmp.path().join("a"), 1, 400, 1);
    let b = big_reader(&tmp.path().join("b"), 1, 400, 2);
    // Two imports and two streams of single decisions, all at once.
    let spawn_import = |name: &str, train: &Path| {
        discus()
            .args([
                "reads",
                "--store",
                s(&store),
                "import",
                "--no-check",
                "--reader",
                name,
                "--train",
                s(train),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let ia = spawn_import("a", &a);
    let ib = spawn_import("b", &b);
    let streams: Vec<_> = ["x", "y"]
        .into_iter()
        .map(|who| {
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0..12u64 {
                    let row_id = format!("{}_spinal_canal_stenosis_l4_l5", i + 1);
                    let o = run(&[
                        "reads",
                        "--store",
                        s(&store),
                        "adjudicate",
                        "--blinded",
                        "--round",
                        "second",
                        "--adjudicator",
                        who,
                        "--row-id",
                        &row_id,
                        "--grade",
                        "Severe",
                    ]);
                    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
                }
            })
        })
        .collect();
    for h in streams {
        h.join().unwrap();
    }
    for c in [ia, ib] {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    assert_eq!(count_reads(&store, "a", "first", tmp.path()), 400 * 25);
    assert_eq!(count_reads(&store, "b", "first", tmp.path()), 400 * 25);
    assert_eq!(count_reads(&store, "x", "second", tmp.path()), 12);
    assert_eq!(count_reads(&store, "y", "second", tmp.path()), 12);
}

/// Tells `import_killed_midway_child` the store and the reader file (two lines).
const CHILD_ENV: &str = "DISCUS_TEST_IMPORT_CHILD";

/// Run only as the child process of the test below: imports reader "k" into the store and, halfway
/// through writing its reads (inside the transaction), says so on stderr and waits to be killed.
#[test]
#[ignore = "the child process of an_import_killed_midway_leaves_the_store_consistent_and_reruns_cleanly"]
fn import_killed_midway_child() {
    let spec = std::env::var(CHILD_ENV).expect("run by the parent test only");
    let (store, train) = spec.split_once('\n').unwrap();
    let mut store = discus_reads::store::ReadsStore::open(Path::new(store)).unwrap();
    let progress = discus_core::progress::Progress::with_observer(|p| {
        if p.stage == "recording reads" && p.total > 0 && p.done >= p.total / 2 {
            eprintln!("paused mid-import");
            std::thread::sleep(std::time::Duration::from_secs(60));
        }
    });
    let req = discus_reads::import::ImportRequest {
        reader: "k",
        round: "first",
        round_kind: discus_reads::store::RoundKind::Blinded,
        train: Path::new(train),
        coordinates: None,
        at: None,
    };
    discus_reads::import::import_reader(&mut store, None, &req, &progress).unwrap();
    panic!("the import should have been killed before it finished");
}

#[test]
fn an_import_killed_midway_leaves_the_store_consistent_and_reruns_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("reads.sqlite");
    let train = big_reader(&tmp.path().join("k"), 1, 300, 3);
    // Something already in the store, which must survive.
    let other = big_reader(&tmp.path().join("o"), 1, 10, 4);
    ok(&[
        "reads",
        "--store",
        s(&store),
        "import",
        "--no-check",
        "--reader",
        "other",
        "--train",
        s(&other),
    ]);

    // The child is this test binary running `import_killed_midway_child`: the library import
    // with a progress observer that stalls halfway through writing, inside the transaction.
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "import_killed_midway_child",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env(
            CHILD_ENV,
            format!("{}\n{}", store.display(), train.display()),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until half of the events are written inside the transaction, then kill.
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut line).unwrap();
    assert!(line.contains("paused mid-import"), "{line}");
    child.kill().unwrap();
    child.wait().unwrap();

    // Nothing of the killed import is visible; what was there before is intact.
    assert_eq!(count_reads(&store, "k", "first", tmp.path()), 0);
    assert_eq!(count_reads(&store, "other", "first", tmp.path()), 10 * 25);
    // The re-run imports everything once; a third run records nothing.
    ok(&[
        "reads",
        "--store",
        s(&store),
        "import",
        "--no-check",
        "--reader",
        "k",
        "--train",
        s(&train),
    ]);
    assert_eq!(count_reads(&store, "k", "first", tmp.path()), 300 * 25);
    let third = ok(&[
        "reads",
        "--store",
        s(&store),
        "import",
        "--no-check",
        "--reader",
        "k",
        "--train",
        s(&train),
    ]);
    assert!(third.contains("already imported"), "{third}");
    let exp = tmp.path().join("exp-k");
    ok(&[
        "reads",
        "--store",
        s(&store),
        "export",
        "--reader",
        "k",
        "--out",
        s(&exp),
    ]);
    assert_eq!(
        read_train(&exp.join("train.csv"))
            .unwrap()
            .strict()
            .unwrap(),
        read_train(&train).unwrap().strict().unwrap()
    );
}

/// The same protocol on the synthetic cohort (`discus synth --readers 3`): real rendered DICOM
/// series, readers simulated by discus-synth, truth from its truth.json.
#[test]
fn synthetic_cohort_consensus_beats_every_reader() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("cohort");
    let data = s(&root);
    ok(&[
        "synth",
        "--out",
        data,
        "--studies",
        "6",
        "--readers",
        "3",
        "--seed",
        "1",
    ]);
    let truth: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("truth.json")).unwrap()).unwrap();
    let mut true_grades = Vec::new();
    for st in truth["studies"].as_array().unwrap() {
        let mut l = StudyLabels::empty(StudyId(st["study_id"].as_u64().unwrap()));
        for (col, g) in st["true_grades"].as_object().unwrap() {
            let c = LabelColumn::parse(col).unwrap();
            l.grades[c.index()] = g.as_str().map(|g| g.parse().unwrap());
        }
        true_grades.push(l);
    }
    let t = Truth {
        grades: true_grades,
        points: Vec::new(),
    };
    let wrong = |labels: &[StudyLabels]| {
        // Only findings with a true grade count.
        let mut n = 0;
        for tl in &t.grades {
            let l = labels.iter().find(|l| l.study == tl.study);
            for i in 0..25 {
                if tl.grades[i].is_some() && l.and_then(|l| l.grades[i]) != tl.grades[i] {
                    n += 1;
                }
            }
        }
        n
    };
    let out = ok(&[
        "reads",
        "--dataset",
        data,
        "--json",
        "import",
        "--readers-dir",
        &format!("{data}/readers"),
    ]);
    assert_eq!(out.matches("\"Imported\"").count(), 3, "{out}");
    let mut reader_errors = Vec::new();
    for r in 0..3 {
        let labels = read_train(&root.join(format!("readers/{r}/train.csv")))
            .unwrap()
            .strict()
            .unwrap();
        reader_errors.push(wrong(&labels));
    }
    let rep = ok(&[
        "reads",
        "--dataset",
        data,
        "--json",
        "agreement",
        "--resamples",
        "100",
    ]);
    let rep: serde_json::Value = serde_json::from_str(&rep).unwrap();
    for p in rep["pairs"].as_array().unwrap() {
        // The synthetic readers' points scatter by a few mm around the truth.
        let med = p["points"]["median_mm"].as_f64().unwrap();
        assert!(med > 0.5 && med < 15.0, "{med}");
        assert!(p["points"]["measured"].as_u64().unwrap() > 100);
    }
    let cons = tmp.path().join("cons");
    ok(&[
        "reads",
        "--dataset",
        data,
        "consensus",
        "--rule",
        "median",
        "--out",
        s(&cons),
    ]);
    let labels = read_train(&cons.join("train.csv"))
        .unwrap()
        .strict()
        .unwrap();
    let e = wrong(&labels);
    eprintln!("synthetic cohort: reader errors {reader_errors:?}, median consensus {e}");
    assert!(
        e < *reader_errors.iter().min().unwrap(),
        "{e} vs {reader_errors:?}"
    );
}

//! Explanations and stability on the light tiny model of `common` (`light_fixture`): overlays have the DICOM slice's own size (as
//! dcmdump reads it) and lie where the finding is; stability is exactly zero without perturbation
//! and grows with the perturbations' size.

use discus_core::ConditionGroup;
use discus_data::dataset::Dataset;
use discus_model::explain::{explain_study, ExplainOptions, Overlay};
use discus_model::predict::predict_study;
use discus_model::stability::{stability_study, StabilityOptions};
use discus_model::Model;
use std::process::Command;

mod common;
use common::{light_fixture as fixture, studies};

/// Rows and Columns of a DICOM file, as dcmdump prints them; `None` when dcmdump is absent.
fn dcmdump_size(path: &std::path::Path) -> Option<(usize, usize)> {
    let out = match Command::new("dcmdump")
        .args(["+P", "0028,0010", "+P", "0028,0011"])
        .arg(path)
        .output()
    {
        Ok(o) => o,
        Err(e) => {
            discus_core::crosscheck::skip(format!("dcmdump cannot run: {e}"));
            return None;
        }
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let value = |tag: &str| -> usize {
        let line = text.lines().find(|l| l.starts_with(tag)).unwrap();
        line.split_whitespace().nth(2).unwrap().parse().unwrap()
    };
    Some((value("(0028,0010)"), value("(0028,0011)")))
}

fn argmax(o: &Overlay) -> (f64, f64) {
    let i = (0..o.map.len())
        .max_by(|a, b| o.map[*a].total_cmp(&o.map[*b]))
        .unwrap();
    ((i % o.columns) as f64, (i / o.columns) as f64)
}

#[test]
fn overlays_lie_on_the_source_slice_where_the_finding_is() {
    let f = fixture();
    let ds = Dataset::open(&f.cohort).unwrap();
    let model = Model::load(&f.model).unwrap();
    let pre = model.card.preprocessing;
    let study = studies(&ds)[0];
    let p = predict_study(&model, &ds, study).unwrap();
    let ex = explain_study(&model, &ds, &p, &ExplainOptions::default()).unwrap();
    assert_eq!(ex.len(), 25);
    let (mut heat, mut occ, mut positive) = (0, 0, 0);
    let mut heat_slices = std::collections::BTreeSet::new();
    for (fi, e) in p.findings.iter().zip(&ex) {
        assert_eq!(fi.row_id, e.row_id);
        let Some(pt) = &fi.point else {
            assert!(e.occlusion.is_none() && e.heatmap.is_none());
            continue;
        };
        let series = ds.find_series(study, pt.series).unwrap().unwrap();
        let stacks = ds.stacks(&series).unwrap();
        let ps = stacks[0].reference().pixel_spacing;
        for o in e.heatmap.iter().chain(&e.occlusion) {
            assert_eq!(o.series, pt.series);
            assert_eq!(o.map.len(), o.rows * o.columns);
            assert_eq!(o.image.len(), o.rows * o.columns);
            let file = ds.slice_file(&series, o.instance).unwrap();
            if let Some((rows, cols)) = dcmdump_size(&file) {
                assert_eq!((o.rows, o.columns), (rows, cols), "{}", fi.row_id);
            }
            assert!(o.map.iter().all(|v| *v >= 0.0 && v.is_finite()));
        }
        if let Some(h) = &e.heatmap {
            heat += 1;
            // The decoded point is the heat map's (sub-cell) peak: the overlay's maximum lies within
            // one localiser cell of it.
            let (x, y) = argmax(h);
            let cell_px = pre.localiser_spacing_mm / ps[0].min(ps[1]);
            let d = ((x - pt.x).powi(2) + (y - pt.y).powi(2)).sqrt();
            assert!(d <= cell_px, "{}: peak {d:.1} px from the point", fi.row_id);
            // The heat map is on the localiser's (middle) slice; the spinal point may have moved
            // through the plane onto the foramina's midline, by at most 10 mm.
            heat_slices.insert(h.instance);
            let spacing = stacks[0].slice_spacing.unwrap_or(1.0);
            assert!(
                ((h.instance - pt.instance).abs() as f64 - 0.5) * spacing <= 10.0,
                "{}: heat map on instance {}, point on {}",
                fi.row_id,
                h.instance,
                pt.instance
            );
        }
        if let Some(o) = &e.occlusion {
            occ += 1;
            // Everything the occlusion map marks lies inside the grader's crop around the point.
            let half = |n: usize, ps: f64| (n as f64 / 2.0 + 0.5) * pre.crop.spacing_mm / ps + 1.0;
            let (hx, hy) = (half(pre.crop.columns, ps[1]), half(pre.crop.rows, ps[0]));
            let max = o.map.iter().copied().fold(0f32, f32::max);
            if max > 0.0 {
                positive += 1;
            }
            for (i, v) in o.map.iter().enumerate() {
                if *v > 0.0 {
                    let (x, y) = ((i % o.columns) as f64, (i / o.columns) as f64);
                    assert!(
                        (x - o.point.0).abs() <= hx && (y - o.point.1).abs() <= hy,
                        "{}: map at ({x}, {y}), point {:?}",
                        fi.row_id,
                        o.point
                    );
                }
            }
            // The crop's centre is the finding's point (on the same slice, for sagittal points).
            if fi.condition.group() != ConditionGroup::Subarticular {
                assert!((o.point.0 - pt.x).abs() < 1e-3 && (o.point.1 - pt.y).abs() < 1e-3);
            }
        }
    }
    assert_eq!(heat, 5, "a heat map per canal finding");
    assert_eq!(heat_slices.len(), 1, "one localiser slice: {heat_slices:?}");
    assert!(occ >= 15, "{occ} occlusion maps");
    assert!(
        positive * 2 >= occ,
        "{positive} of {occ} occlusion maps are non-zero"
    );
}

fn mean_std(s: &std::collections::BTreeMap<String, discus_model::stability::Stability>) -> f64 {
    s.values()
        .map(|x| x.std.iter().sum::<f64>() / 3.0)
        .sum::<f64>()
        / s.len() as f64
}

#[test]
fn stability_is_zero_without_perturbation_and_grows_with_it() {
    let f = fixture();
    let ds = Dataset::open(&f.cohort).unwrap();
    let model = Model::load(&f.model).unwrap();
    let study = studies(&ds)[1];
    let p = predict_study(&model, &ds, study).unwrap();
    let with_point = p.findings.iter().filter(|f| f.point.is_some()).count();
    let opts = |m: f64| StabilityOptions {
        samples: 12,
        magnitude: m,
        seed: 9,
    };
    let zero = stability_study(&model, &ds, &p, &opts(0.0)).unwrap();
    assert_eq!(zero.len(), with_point);
    for (row, s) in &zero {
        assert!(
            s.std.iter().chain(&s.range).all(|v| v.abs() < 1e-12),
            "{row}: {s:?}"
        );
        // The unperturbed regrading reproduces the prediction's own grade.
        assert_eq!(s.flip_rate, 0.0, "{row}");
    }
    let small = mean_std(&stability_study(&model, &ds, &p, &opts(0.5)).unwrap());
    let nominal = stability_study(&model, &ds, &p, &opts(1.0)).unwrap();
    let large = mean_std(&stability_study(&model, &ds, &p, &opts(3.0)).unwrap());
    println!(
        "mean std: 0.5x {small:.5}, 1x {:.5}, 3x {large:.5}",
        mean_std(&nominal)
    );
    assert!(small > 0.0, "perturbations change the probabilities");
    assert!(large > small * 1.5, "spread {small} -> {large}");
    for s in nominal.values() {
        assert_eq!(s.samples, 12);
        assert!(s.range.iter().zip(&s.std).all(|(r, d)| r >= d));
        assert!((0.0..=1.0).contains(&s.flip_rate));
    }
    // Deterministic under the seed.
    assert_eq!(
        nominal,
        stability_study(&model, &ds, &p, &opts(1.0)).unwrap()
    );
}

#[test]
fn sharing_the_decoded_series_changes_nothing() {
    // predict -> explain -> stability -> thumbnails on one `Sources` (each series decoded once, the
    // localiser's run reused) give exactly what the standalone calls give.
    use discus_model::explain::{explain_study_with, point_overlays, point_overlays_with, Sources};
    use discus_model::predict::predict_study_with;
    use discus_model::stability::stability_study_with;
    let f = fixture();
    let ds = Dataset::open(&f.cohort).unwrap();
    let model = Model::load(&f.model).unwrap();
    let opts = StabilityOptions {
        samples: 4,
        magnitude: 1.0,
        seed: 3,
    };
    for study in studies(&ds) {
        let mut src = Sources::new(&ds, study);
        let p = predict_study_with(&model, &mut src).unwrap();
        assert_eq!(p, predict_study(&model, &ds, study).unwrap());
        let ex = explain_study_with(&model, &mut src, &p, &ExplainOptions::default()).unwrap();
        assert_eq!(
            ex,
            explain_study(&model, &ds, &p, &ExplainOptions::default()).unwrap()
        );
        assert_eq!(
            stability_study_with(&model, &mut src, &p, &opts).unwrap(),
            stability_study(&model, &ds, &p, &opts).unwrap()
        );
        assert_eq!(
            point_overlays_with(&model, &mut src, &p).unwrap(),
            point_overlays(&model, &ds, &p).unwrap()
        );
    }
}

#[test]
fn volumes_equal_pydicom_rescaled_pixels() {
    // Dataset::load_stack (files read once, slices decoded in parallel) against pydicom: every
    // stack of one study, stored values * RescaleSlope + RescaleIntercept in float64, then float32,
    // slice by slice in stack order; exact.
    let f = fixture();
    let ds = Dataset::open(&f.cohort).unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new(root.join("scripts/pyvenv"))
        .args(["synth-check", "pydicom==3.0.2", "numpy==2.4.6"])
        .output()
        .unwrap();
    if out.status.code() == Some(3) {
        discus_core::crosscheck::skip(String::from_utf8_lossy(&out.stderr));
        return;
    }
    assert!(
        out.status.success(),
        "pyvenv failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let python = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let tmp = tempfile::tempdir().unwrap();
    let study = studies(&ds)[0];
    let mut cases = Vec::new();
    for series in ds.series(study).unwrap() {
        for (i, stack) in ds.stacks(&series).unwrap().iter().enumerate() {
            let v = ds.load_stack(&series, stack).unwrap();
            let raw: Vec<u8> = v.data.iter().flat_map(|x| x.to_le_bytes()).collect();
            let file = tmp.path().join(format!("{}_{i}.f32", series.series));
            std::fs::write(&file, raw).unwrap();
            let files: Vec<String> = stack
                .slices
                .iter()
                .map(|s| {
                    ds.slice_file(&series, s.instance_number)
                        .unwrap()
                        .display()
                        .to_string()
                })
                .collect();
            cases.push(serde_json::json!({"raw": file, "files": files}));
        }
    }
    assert!(cases.len() >= 3, "{} stacks", cases.len());
    let script = r#"
import json, sys
import numpy as np, pydicom
bad = 0
for c in json.load(open(sys.argv[1])):
    want = []
    for f in c["files"]:
        d = pydicom.dcmread(f)
        v = d.pixel_array.astype(np.float64) * float(getattr(d, "RescaleSlope", 1) or 1) \
            + float(getattr(d, "RescaleIntercept", 0))
        want.append(v.astype(np.float32))
    want = np.stack(want).ravel()
    got = np.fromfile(c["raw"], dtype="<f4")
    if got.shape != want.shape or not np.array_equal(got, want):
        bad += 1
        print("differs:", c["raw"], got.shape, want.shape, file=sys.stderr)
print(json.dumps({"stacks": len(json.load(open(sys.argv[1]))), "bad": bad}))
"#;
    let cases_path = tmp.path().join("cases.json");
    std::fs::write(&cases_path, serde_json::to_vec(&cases).unwrap()).unwrap();
    let o = Command::new(python)
        .args(["-c", script])
        .arg(&cases_path)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["bad"], 0, "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(r["stacks"], cases.len());
}

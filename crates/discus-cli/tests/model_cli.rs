//! `discus train` and `discus predict` through the binary: a model trained on data licensed for
//! research only refuses `--use commercial` with the reason (writing nothing), and predicts for
//! research: a submission with 25 rows per study and findings.json per study. With `--sr`, a TID
//! 1500 SR per study that discus's checker accepts and that holds findings.json's findings in the
//! source study (Study Instance UID and Patient ID of the source instances). An ensemble of two
//! models averages their probabilities.

use discus_core::formats::read_submission;
use discus_core::governance::{DatasetCard, Use, CARD_FILE};
use std::path::Path;

mod common;
use common::{ok, run, s};

#[test]
fn train_then_predict_with_the_licence_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = tmp.path().join("ds");
    ok(&[
        "synth",
        "--out",
        s(&ds),
        "--studies",
        "2",
        "--sites",
        "1",
        "--seed",
        "8",
        "--matrix-scale",
        "0.25",
        "--readers",
        "1",
    ]);
    // The data's card now says research and education only.
    let mut card = DatasetCard::read(&ds.join(CARD_FILE)).unwrap();
    card.licence.name = "research-only test terms".into();
    card.licence.permitted_uses = vec![Use::Research, Use::Education];
    card.write(&ds.join(CARD_FILE)).unwrap();

    let model = tmp.path().join("model");
    let out = ok(&[
        "train",
        "--dataset",
        s(&ds),
        "--epochs",
        "1",
        "--seed",
        "3",
        "--out",
        s(&model),
    ]);
    assert!(out.contains("trained on 2 studies"), "{out}");
    let toml = std::fs::read_to_string(model.join("model.toml")).unwrap();
    assert!(toml.contains("research-only test terms"), "{toml}");

    let pred = tmp.path().join("pred");
    let o = run(&[
        "predict",
        "--model",
        s(&model),
        s(&ds),
        "--out",
        s(&pred),
        "--use",
        "commercial",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("does not permit commercial"), "{err}");
    assert!(err.contains("research-only test terms"), "{err}");
    assert!(
        !pred.exists(),
        "a refused prediction wrote {}",
        pred.display()
    );

    let out = ok(&["predict", "--model", s(&model), s(&ds), "--out", s(&pred)]);
    assert!(out.contains("predicted 2 of 2 studies"), "{out}");
    let rows = read_submission(&pred.join("submission.csv"))
        .unwrap()
        .strict()
        .unwrap();
    assert_eq!(rows.len(), 50);
    let studies: Vec<_> = std::fs::read_dir(ds.join("train_images"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    for st in &studies {
        let f: serde_json::Value =
            serde_json::from_slice(&std::fs::read(pred.join(st).join("findings.json")).unwrap())
                .unwrap();
        assert_eq!(f["findings"].as_array().unwrap().len(), 25);
    }
    // One study folder.
    let one = tmp.path().join("one");
    let study_dir = ds.join("train_images").join(&studies[0]);
    let out = ok(&[
        "predict",
        "--model",
        s(&model),
        s(&study_dir),
        "--out",
        s(&one),
    ]);
    assert!(out.contains("predicted 1 of 1 studies"), "{out}");

    // With --sr: one SR per study, matching findings.json and the source study.
    let with_sr = tmp.path().join("with_sr");
    let out = ok(&[
        "predict",
        "--model",
        s(&model),
        s(&ds),
        "--out",
        s(&with_sr),
        "--sr",
    ]);
    assert!(out.contains("findings.sr.dcm"), "{out}");
    for st in &studies {
        let f: serde_json::Value =
            serde_json::from_slice(&std::fs::read(with_sr.join(st).join("findings.json")).unwrap())
                .unwrap();
        let sr_path = with_sr.join(st).join("findings.sr.dcm");
        let report = discus_sr::check::check_file(&sr_path).unwrap();
        let findings = f["findings"].as_array().unwrap();
        assert_eq!(report.groups.len(), findings.len());
        for (g, x) in report.groups.iter().zip(findings) {
            assert_eq!(g.tracking_identifier, x["row_id"].as_str().unwrap());
            for k in 0..3 {
                let p = x["probabilities"][k].as_f64().unwrap();
                assert!((g.probabilities[k] - p).abs() < 1e-12);
            }
            assert_eq!(g.point.is_some(), !x["point"].is_null());
            if let Some(pt) = &g.point {
                let px = x["point"]["x"].as_f64().unwrap() + 0.5;
                let py = x["point"]["y"].as_f64().unwrap() + 0.5;
                assert!((pt.graphic_xy[0] as f64 - px).abs() < 1e-3);
                assert!((pt.graphic_xy[1] as f64 - py).abs() < 1e-3);
                // The referenced slice is the finding's instance of its series.
                let series = x["point"]["series"].as_u64().unwrap().to_string();
                let inst = x["point"]["instance"].as_i64().unwrap();
                let src = ds
                    .join("train_images")
                    .join(st)
                    .join(&series)
                    .join(format!("{inst}.dcm"));
                let obj = dicom_object::open_file(&src).unwrap();
                let uid = obj
                    .element(dicom_dictionary_std::tags::SOP_INSTANCE_UID)
                    .unwrap();
                assert_eq!(
                    uid.to_str().unwrap().trim_end_matches('\0'),
                    pt.sop_instance_uid
                );
            }
        }
        let sr = dicom_object::open_file(&sr_path).unwrap();
        let series_dir = std::fs::read_dir(ds.join("train_images").join(st))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let any = std::fs::read_dir(series_dir)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let src = dicom_object::open_file(any).unwrap();
        for tag in [
            dicom_dictionary_std::tags::STUDY_INSTANCE_UID,
            dicom_dictionary_std::tags::PATIENT_ID,
        ] {
            let a = sr
                .element(tag)
                .unwrap()
                .to_str()
                .unwrap()
                .trim_end_matches(['\0', ' '])
                .to_string();
            let b = src
                .element(tag)
                .unwrap()
                .to_str()
                .unwrap()
                .trim_end_matches(['\0', ' '])
                .to_string();
            assert_eq!(a, b);
        }
    }

    // An ensemble (--model twice), the second model from another seed. Each finding's
    // probabilities are the mean of the members' (both kept in findings.json); --stability is
    // refused, and so is a use that a member's licence does not permit.
    let model2 = tmp.path().join("model2");
    ok(&[
        "train",
        "--dataset",
        s(&ds),
        "--epochs",
        "1",
        "--seed",
        "4",
        "--out",
        s(&model2),
    ]);
    let ens = tmp.path().join("ensemble");
    let o = run(&[
        "predict",
        "--model",
        s(&model),
        "--model",
        s(&model2),
        s(&ds),
        "--out",
        s(&ens),
        "--stability",
        "1",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--stability measures one model"), "{err}");
    let o = run(&[
        "predict",
        "--model",
        s(&model2),
        "--model",
        s(&model),
        s(&ds),
        "--out",
        s(&ens),
        "--use",
        "commercial",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("does not permit commercial"), "{err}");
    assert!(
        !ens.exists(),
        "a refused prediction wrote {}",
        ens.display()
    );
    let single2 = tmp.path().join("single2");
    ok(&[
        "predict",
        "--model",
        s(&model2),
        s(&ds),
        "--out",
        s(&single2),
    ]);
    let out = ok(&[
        "predict",
        "--model",
        s(&model),
        "--model",
        s(&model2),
        s(&ds),
        "--out",
        s(&ens),
    ]);
    assert!(out.contains("predicted 2 of 2 studies"), "{out}");
    let json = |dir: &Path, st: &std::ffi::OsStr| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(dir.join(st).join("findings.json")).unwrap()).unwrap()
    };
    for st in &studies {
        let (a, b, e) = (json(&pred, st), json(&single2, st), json(&ens, st));
        for i in 0..25 {
            let (fa, fb, fe) = (&a["findings"][i], &b["findings"][i], &e["findings"][i]);
            for k in 0..3 {
                let (pa, pb) = (
                    fa["probabilities"][k].as_f64().unwrap(),
                    fb["probabilities"][k].as_f64().unwrap(),
                );
                let pe = fe["probabilities"][k].as_f64().unwrap();
                assert!((pe - (pa + pb) / 2.0).abs() < 1e-12, "{}", fe["row_id"]);
                assert_eq!(fe["members"][0][k].as_f64().unwrap(), pa);
                assert_eq!(fe["members"][1][k].as_f64().unwrap(), pb);
            }
            assert_eq!(fe["point"], fa["point"]);
        }
    }

    // `discus model calibrate`: the temperatures refitted on the model's own predictions. Its
    // weighted NLL before and after equal the ones computed here from the submissions that
    // `discus predict` writes with the model and with the calibrated one, over train.csv's labels.
    let cal = tmp.path().join("calibrated");
    let out = ok(&[
        "model",
        "calibrate",
        "--model",
        s(&model),
        "--dataset",
        s(&ds),
        "--out",
        s(&cal),
        "--json",
    ]);
    let fit: serde_json::Value = serde_json::from_str(&out).unwrap();
    let pred_cal = tmp.path().join("pred_cal");
    ok(&["predict", "--model", s(&cal), s(&ds), "--out", s(&pred_cal)]);
    let before = weighted_nll_by_group(&ds.join("train.csv"), &pred.join("submission.csv"));
    let after = weighted_nll_by_group(&ds.join("train.csv"), &pred_cal.join("submission.csv"));
    for (group, (n, nll)) in &before {
        let f = &fit["groups"][group];
        assert_eq!(f["findings"].as_u64(), Some(*n as u64), "{group}: {fit}");
        assert!(
            (f["nll_before"].as_f64().unwrap() - nll).abs() < 1e-5,
            "{group}: {fit}"
        );
        let (_, nll_after) = after[group];
        assert!(
            (f["nll_after"].as_f64().unwrap() - nll_after).abs() < 1e-5,
            "{group}: {fit}"
        );
        assert!(nll_after <= nll + 1e-9, "{group}: {nll} -> {nll_after}");
    }
    let card = std::fs::read_to_string(cal.join("model.toml")).unwrap();
    assert!(card.contains("model calibrate"), "{card}");
    assert!(card.contains("research-only test terms"), "{card}");
    let o = run(&[
        "model",
        "calibrate",
        "--model",
        s(&model),
        "--dataset",
        s(&ds),
        "--folds",
        "5",
        "--fold",
        "5",
        "--out",
        s(&cal),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--fold 5 is not one of the 5 folds"));

    // ONNX export: one file per network, the model card (with its licence) beside them. The
    // numeric check against onnxruntime is discus-model's tests/onnx.rs.
    let onnx = tmp.path().join("onnx");
    let out = ok(&["model", "export", "--onnx", s(&model), "--out", s(&onnx)]);
    assert!(out.contains("research-only test terms"), "{out}");
    for net in discus_model::export::NETWORKS {
        let f = onnx.join(format!("{net}.onnx"));
        assert!(
            std::fs::metadata(&f).unwrap().len() > 1000,
            "{}",
            f.display()
        );
    }
    assert_eq!(
        std::fs::read(onnx.join("model.toml")).unwrap(),
        std::fs::read(model.join("model.toml")).unwrap()
    );
    let manifest = std::fs::read_to_string(onnx.join("onnx.toml")).unwrap();
    assert!(manifest.contains("opset = 18"), "{manifest}");
}

#[test]
fn an_unknown_or_unbuilt_device_is_refused_with_the_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let o = run(&[
        "train",
        "--dataset",
        s(tmp.path()),
        "--device",
        "cuda",
        "--out",
        s(&tmp.path().join("m")),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("unknown device \"cuda\""), "{err}");
    if !cfg!(feature = "wgpu") {
        let o = run(&[
            "predict",
            "--model",
            s(tmp.path()),
            s(tmp.path()),
            "--device",
            "wgpu",
            "--out",
            s(&tmp.path().join("p")),
        ]);
        assert_eq!(o.status.code(), Some(1));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("--features wgpu"), "{err}");
        assert!(!tmp.path().join("p").exists());
    }
    if !cfg!(feature = "tch") {
        let o = run(&[
            "train",
            "--dataset",
            s(tmp.path()),
            "--device",
            "libtorch",
            "--out",
            s(&tmp.path().join("m")),
        ]);
        assert_eq!(o.status.code(), Some(1));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("device libtorch is not built") && err.contains("--features tch"),
            "{err}"
        );
        assert!(!tmp.path().join("m").exists());
    }
}

/// `discus model rescan` on a tiny `--rescan` cohort: both scans of each patient predicted; the
/// kappas, probability differences, flip rates and distance medians recomputed by scikit-learn and
/// numpy from the compared findings the report lists.
#[test]
fn rescan_agreement_matches_scikit_learn_on_the_produced_predictions() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = tmp.path().join("ds");
    ok(&[
        "synth",
        "--out",
        s(&ds),
        "--studies",
        "2",
        "--sites",
        "2",
        "--seed",
        "12",
        "--matrix-scale",
        "0.25",
        "--readers",
        "1",
        "--rescan",
    ]);
    let model = tmp.path().join("model");
    ok(&[
        "train",
        "--dataset",
        s(&ds),
        "--epochs",
        "1",
        "--seed",
        "3",
        "--out",
        s(&model),
    ]);
    let report = tmp.path().join("rescan");
    let json = ok(&[
        "model",
        "rescan",
        "--model",
        s(&model),
        s(&ds),
        "--out",
        s(&report),
        "--json",
    ]);
    let r: serde_json::Value = serde_json::from_str(&json).unwrap();
    let on_disk: serde_json::Value =
        serde_json::from_slice(&std::fs::read(report.join("report.json")).unwrap()).unwrap();
    assert_eq!(r, on_disk);
    let html = std::fs::read_to_string(report.join("index.html")).unwrap();
    assert!(html.contains("Rescan agreement") && html.contains("L5/S1"));
    assert_eq!(r["pairs"], 2);
    let findings = r["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 50, "25 findings per pair");
    // The pairs are truth.json's: the second scan names the first in rescan_of.
    let truth: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ds.join("truth.json")).unwrap()).unwrap();
    for f in findings {
        let second = truth["studies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["study_id"] == f["second"])
            .unwrap();
        assert_eq!(second["rescan_of"], f["first"]);
    }
    // Every point had a frame here (all series present), so every finding has a distance.
    assert_eq!(r["points_without_frame"], 0);
    assert!(findings.iter().all(|f| f["distance_mm"].is_f64()));

    let Some(py) = common::python() else { return };
    let script = r#"
import json, sys
import numpy as np
from sklearn.metrics import cohen_kappa_score
r = json.load(open(sys.argv[1]))
group = {"spinal_canal_stenosis": "spinal",
         "left_neural_foraminal_narrowing": "foraminal", "right_neural_foraminal_narrowing": "foraminal",
         "left_subarticular_stenosis": "subarticular", "right_subarticular_stenosis": "subarticular"}
out = {}
for g in ["spinal", "foraminal", "subarticular", "all"]:
    fs = [f for f in r["findings"] if g == "all" or group[f["condition"]] == g]
    a = [f["grade_first"] for f in fs]; b = [f["grade_second"] for f in fs]
    # The grades are the argmax of the probabilities.
    assert a == [int(np.argmax(f["probabilities_first"])) for f in fs]
    assert b == [int(np.argmax(f["probabilities_second"])) for f in fs]
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        k = cohen_kappa_score(a, b, weights="quadratic", labels=[0, 1, 2])
    pa = np.array([f["probabilities_first"] for f in fs]); pb = np.array([f["probabilities_second"] for f in fs])
    d = [float(np.linalg.norm(np.array(f["frame_mm_first"]) - np.array(f["frame_mm_second"]))) for f in fs]
    assert np.allclose(d, [f["distance_mm"] for f in fs], atol=1e-9)
    out[g] = {"kappa": None if np.isnan(k) else float(k),
              "diff": float(np.mean(np.abs(pa - pb))),
              "flips": float(np.mean(np.array(a) != np.array(b))),
              "median": float(np.median(d)), "n": len(fs)}
print(json.dumps(out))
"#;
    let o = std::process::Command::new(py)
        .args(["-c", script, s(&report.join("report.json"))])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let want: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let mut defined = 0;
    for g in r["groups"].as_array().unwrap() {
        let name = g["group"].as_str().unwrap();
        let w = &want[name];
        println!("{name}: discus {g}\n  scikit-learn/numpy {w}");
        assert_eq!(g["findings"], w["n"]);
        match (g["kappa_quadratic"].as_f64(), w["kappa"].as_f64()) {
            (Some(a), Some(b)) => {
                defined += 1;
                assert!((a - b).abs() < 1e-9, "{name}: kappa {a} vs {b}")
            }
            (None, None) => {}
            (a, b) => panic!("{name}: kappa {a:?} vs scikit-learn {b:?}"),
        }
        let close = |k: &str, v: &serde_json::Value| {
            let (a, b) = (g[k].as_f64().unwrap(), v.as_f64().unwrap());
            assert!((a - b).abs() < 1e-9, "{name} {k}: {a} vs {b}");
        };
        close("mean_abs_probability_difference", &w["diff"]);
        close("grade_flip_rate", &w["flips"]);
        let m = g["distance"]["median_mm"].as_f64().unwrap();
        assert!((m - w["median"].as_f64().unwrap()).abs() < 1e-9);
    }
    assert!(
        defined > 0,
        "no kappa was defined: the check checked nothing"
    );

    // The text summary, and a pairs file that is not one.
    let text = ok(&["model", "rescan", "--model", s(&model), s(&ds)]);
    assert!(text.contains("2 patients scanned twice"), "{text}");
    let bad = tmp.path().join("pairs.csv");
    std::fs::write(&bad, "first,second\n1,oops\n").unwrap();
    let o = run(&[
        "model",
        "rescan",
        "--model",
        s(&model),
        s(&ds),
        "--pairs",
        s(&bad),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("line 2") && err.contains("oops"), "{err}");
}

/// Per condition group (`spinal`, `foraminal`, `subarticular`): the labelled findings of
/// `labels` (train.csv) and the severity-weighted (1, 2, 4) mean negative log-likelihood of
/// `submission`'s probabilities for them.
fn weighted_nll_by_group(
    labels: &Path,
    submission: &Path,
) -> std::collections::BTreeMap<String, (usize, f64)> {
    let text = std::fs::read_to_string(labels).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let mut truth = std::collections::HashMap::new();
    for line in lines {
        let cells: Vec<&str> = line.split(',').collect();
        for (name, cell) in header.iter().zip(&cells).skip(1) {
            let grade = match *cell {
                "Normal/Mild" => 0,
                "Moderate" => 1,
                "Severe" => 2,
                _ => continue,
            };
            truth.insert(format!("{}_{name}", cells[0]), grade);
        }
    }
    let text = std::fs::read_to_string(submission).unwrap();
    let mut sums: std::collections::BTreeMap<String, (usize, f64, f64)> = Default::default();
    for line in text.lines().skip(1) {
        let cells: Vec<&str> = line.split(',').collect();
        let Some(&y) = truth.get(cells[0]) else {
            continue;
        };
        let group = ["spinal", "foraminal", "subarticular"]
            .into_iter()
            .find(|g| cells[0].contains(g))
            .unwrap();
        let p: f64 = cells[1 + y].parse().unwrap();
        let w = [1.0, 2.0, 4.0][y];
        let e = sums.entry(group.to_string()).or_default();
        e.0 += 1;
        e.1 -= w * p.max(1e-30).ln();
        e.2 += w;
    }
    sums.into_iter()
        .map(|(g, (n, s, w))| (g, (n, s / w)))
        .collect()
}

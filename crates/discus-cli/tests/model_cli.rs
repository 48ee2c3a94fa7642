//! `discus train` and `discus predict` through the binary: a model trained on data licensed for
//! research only refuses `--use commercial` with the reason (writing nothing), and predicts for
//! research: a submission with 25 rows per study and findings.json per study. With `--sr`, a TID
//! 1500 SR per study that discus's checker accepts and that holds findings.json's findings in the
//! source study (Study Instance UID and Patient ID of the source instances).

use discus_core::formats::read_submission;
use discus_core::governance::{DatasetCard, Use, CARD_FILE};

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
}

//! ONNX export checked independently: every exported network passes `onnx.checker` (full check)
//! and onnxruntime (PyPI, CPU, in a throwaway virtualenv made by `scripts/pyvenv`) gives burn's
//! outputs within 1e-5 on fixed inputs, at a batch size (3) the exporter never traced (1 and 2),
//! so the symbolic batch axis is exercised. The model card travels with the networks.

use burn::tensor::{Device, Tensor, TensorData};
use discus_core::governance::{DatasetCard, Deidentification, Licence, Provenance, Use};
use discus_model::export::{export_onnx, input_shape, network_path, sample_input, NETWORKS};
use discus_model::net::Architecture;
use discus_model::prep::Preprocessing;
use discus_model::train::seeded_net;
use discus_model::{Model, ModelCard, CARD_FILE};
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A model folder with seeded (untrained) weights and a card whose licence is research-only.
fn model_folder(dir: &Path) -> ModelCard {
    model_folder_with(dir, Architecture::default())
}

/// [`model_folder`] with other networks.
fn model_folder_with(dir: &Path, architecture: Architecture) -> ModelCard {
    let preprocessing = Preprocessing::default();
    let device = Device::flex();
    let net = seeded_net(&architecture, 17, &device);
    common::save_untrained(
        dir,
        &net,
        architecture,
        preprocessing,
        17,
        Provenance::new(
            "onnx test",
            vec![DatasetCard {
                name: "test cohort".into(),
                source: "tests/onnx.rs".into(),
                date: None,
                sites: Vec::new(),
                licence: Licence {
                    name: "onnx-test research terms".into(),
                    url: None,
                    permitted_uses: vec![Use::Research],
                    citation_required: false,
                    citation: None,
                },
                deidentification: Deidentification::default(),
                derived_from: Vec::new(),
            }],
        ),
    )
}

fn pyvenv() -> Option<PathBuf> {
    let out = Command::new(repo_root().join("scripts/pyvenv"))
        .args(["onnx", "onnx==1.23.2", "onnxruntime==1.32.0"])
        .output()
        .expect("running scripts/pyvenv");
    if !out.status.success() {
        discus_core::crosscheck::skip(format!(
            "scripts/pyvenv could not make the onnx virtualenv: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
        return None;
    }
    Some(PathBuf::from(String::from_utf8(out.stdout).unwrap().trim()))
}

#[test]
fn exported_networks_pass_the_checker_and_match_onnxruntime() {
    exports_and_matches_onnxruntime(Architecture::default());
}

#[test]
fn exported_ordinal_graders_match_onnxruntime() {
    exports_and_matches_onnxruntime(Architecture {
        grader_ordinal: true,
        ..Architecture::default()
    });
}

fn exports_and_matches_onnxruntime(architecture: Architecture) {
    let tmp = tempfile::tempdir().unwrap();
    let model_dir = tmp.path().join("model");
    let card = model_folder_with(&model_dir, architecture);
    let out = tmp.path().join("onnx");
    let manifest = export_onnx(&model_dir, &out).unwrap();
    assert_eq!(
        manifest
            .networks
            .iter()
            .map(|n| n.name.as_str())
            .collect::<Vec<_>>(),
        NETWORKS
    );
    assert_eq!(manifest.licence, vec!["onnx-test research terms"]);
    // The card travels unchanged.
    assert_eq!(
        std::fs::read(out.join(CARD_FILE)).unwrap(),
        std::fs::read(model_dir.join(CARD_FILE)).unwrap()
    );

    // burn's outputs (the reloaded model, as `discus predict` would run it) on fixed inputs of
    // batch 3; the inputs go to Python as raw float32.
    let model = Model::load_on(&model_dir, &Device::flex()).unwrap();
    let mut cases = Vec::new();
    let mut expected = Vec::new();
    for (k, name) in NETWORKS.iter().enumerate() {
        let shape = input_shape(&card, name, 3);
        let x = sample_input(shape, 2.5 + k as f32);
        let raw: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
        let input = tmp.path().join(format!("{name}.f32"));
        std::fs::write(&input, raw).unwrap();
        let t = Tensor::<4>::from_data(TensorData::new(x, shape), &model.device);
        let localiser = match *name {
            "localiser" => Some(&model.net.localiser),
            "foraminal_localiser" => Some(&model.net.foraminal_localiser),
            "subarticular_localiser" => Some(&model.net.subarticular_localiser),
            _ => None,
        };
        let (y, dims): (Vec<f32>, Vec<usize>) = if let Some(l) = localiser {
            let y = l.forward(t);
            (y.to_data().try_to_vec::<f32>().unwrap(), y.dims().to_vec())
        } else {
            let g = match *name {
                "spinal" => &model.net.spinal,
                "foraminal" => &model.net.foraminal,
                _ => &model.net.subarticular,
            };
            let y = g.forward(t);
            (y.to_data().try_to_vec::<f32>().unwrap(), y.dims().to_vec())
        };
        // Outputs that do not vary would make the comparison meaningless.
        let mean = y.iter().sum::<f32>() / y.len() as f32;
        let spread = y.iter().map(|v| (v - mean).abs()).fold(0.0, f32::max);
        assert!(
            spread > 1e-3,
            "{name}: burn's output barely varies ({spread})"
        );
        cases.push(serde_json::json!({
            "model": network_path(&out, name),
            "input": input,
            "shape": shape,
        }));
        expected.push((name, y, dims));
    }
    let cases_path = tmp.path().join("cases.json");
    std::fs::write(&cases_path, serde_json::to_vec(&cases).unwrap()).unwrap();

    let Some(python) = pyvenv() else { return };
    let o = Command::new(python)
        .arg(repo_root().join("scripts/onnx_check.py"))
        .arg(&cases_path)
        .output()
        .expect("running scripts/onnx_check.py");
    assert!(
        o.status.success(),
        "onnx_check.py failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let results: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(results.len(), NETWORKS.len());
    for ((name, y, dims), r) in expected.iter().zip(&results) {
        assert_eq!(r["checker"], "ok", "{name}");
        assert_eq!(r["opset"], 18, "{name}");
        assert_eq!(
            r["input_dims"][0], "batch",
            "{name}: batch axis not symbolic: {r}"
        );
        let shape: Vec<usize> = serde_json::from_value(r["output_shape"].clone()).unwrap();
        assert_eq!(&shape, dims, "{name}");
        let got: Vec<f64> = serde_json::from_value(r["output"].clone()).unwrap();
        assert_eq!(got.len(), y.len(), "{name}");
        let worst = got
            .iter()
            .zip(y)
            .map(|(a, b)| (a - *b as f64).abs())
            .fold(0.0, f64::max);
        eprintln!(
            "{name}: max |onnxruntime - burn| = {worst:.2e} over {} values",
            y.len()
        );
        assert!(
            worst <= 1e-5,
            "{name}: onnxruntime differs from burn by {worst}"
        );
    }
}

#[test]
fn exporting_a_missing_or_corrupted_model_says_why() {
    let tmp = tempfile::tempdir().unwrap();
    let e = export_onnx(&tmp.path().join("nothing"), &tmp.path().join("out")).unwrap_err();
    assert!(e.to_string().contains(CARD_FILE), "{e}");
    let dir = tmp.path().join("model");
    model_folder(&dir);
    std::fs::write(dir.join(discus_model::WEIGHTS_FILE), b"garbage").unwrap();
    let e = export_onnx(&dir, &tmp.path().join("out")).unwrap_err();
    assert!(e.to_string().contains("safetensors"), "{e}");
    assert!(
        !tmp.path().join("out").exists(),
        "a failed export wrote files"
    );
}

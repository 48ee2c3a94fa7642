//! `discus demo` runs the whole path on a small cohort and leaves every artifact it announces.

mod common;
use common::discus;

#[test]
fn demo_runs_end_to_end_and_writes_every_artifact() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    let o = discus()
        .args([
            "demo",
            "--studies",
            "4",
            "--sites",
            "2",
            "--epochs",
            "1",
            "--held-out",
            "2",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "demo failed\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for rel in [
        "cohort/train.csv",
        "cohort/train_label_coordinates.csv",
        "cohort/train_series_descriptions.csv",
        "cohort/truth.json",
        "validate/index.html",
        "validate/report.json",
        "submissions/prior_uniform.csv",
        "submissions/prior_optimal.csv",
        "evaluation/index.html",
        "evaluation/report.json",
        "folds.csv",
        "reads.sqlite",
        "deid/dataset.toml",
        "model/model.toml",
        "model/weights.safetensors",
        "held-out/train.csv",
        "predictions/submission.csv",
        "predictions/index.html",
        "agreement-ai/index.html",
    ] {
        assert!(out.join(rel).is_file(), "{rel} missing; stdout:\n{stdout}");
    }
    let pngs = std::fs::read_dir(out.join("render")).unwrap().count();
    assert!((1..=2).contains(&pngs), "{pngs} contact sheets");
    // Every step is announced as the command line that reproduces it.
    for cmd in [
        "discus synth",
        "discus validate",
        "discus score",
        "discus deid verify",
        "discus train",
        "discus predict",
        "import --reader ai:demo --predictions",
    ] {
        assert!(stdout.contains(cmd), "{cmd} not announced");
    }
    // The findings page of one held-out study is announced and exists, with its overlays.
    let line = stdout
        .lines()
        .find(|l| l.contains("one study's findings page"))
        .unwrap_or_else(|| panic!("no findings page announced:\n{stdout}"));
    let page = std::path::PathBuf::from(line.split_whitespace().last().unwrap());
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        html.contains("explain_") && html.contains("heatmap_"),
        "{html}"
    );
    let agreement = std::fs::read_to_string(out.join("agreement-ai/report.json")).unwrap();
    assert!(
        agreement.contains("ai:demo"),
        "the AI reader is in the agreement report"
    );
    // The uniform prior's group terms are ln 3 (closed form), printed by the score step.
    assert!(stdout.contains(&format!("{:.6}", 3f64.ln())), "{stdout}");
}

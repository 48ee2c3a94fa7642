//! `discus validate` exit codes and outputs (the library's checks are tested in discus-data).

use std::path::Path;
use std::process::Command;

fn discus(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_discus"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn descriptions(root: &Path) {
    std::fs::write(
        root.join("train_series_descriptions.csv"),
        "study_id,series_id,series_description\n",
    )
    .unwrap();
}

#[test]
fn usage_errors_exit_2() {
    let out = discus(&["validate", "/nonexistent/discus/root"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a folder"));
    let out = discus(&["validate"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn warnings_only_exit_0_errors_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("train_images/7")).unwrap();
    descriptions(root);
    let out = discus(&["validate", root.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("empty_study_folder"), "{text}");
    assert!(text.contains("0 errors"), "{text}");

    // A file that is not DICOM: an error-level finding, exit 1; JSON on stdout, HTML report written.
    std::fs::create_dir_all(root.join("train_images/7/8")).unwrap();
    std::fs::write(root.join("train_images/7/8/1.dcm"), b"hello").unwrap();
    let html = root.join("report.html");
    let out = discus(&[
        "validate",
        root.to_str().unwrap(),
        "--json",
        "--report",
        html.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let kinds: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"unreadable_file"), "{kinds:?}");
    let f = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "unreadable_file")
        .unwrap();
    assert_eq!(f["severity"], "error");
    assert_eq!(f["study"], 7);
    assert_eq!(f["series"], 8);
    assert_eq!(f["instance"], 1);
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.starts_with("<!doctype html>") && page.contains("unreadable_file"));
    assert!(!page.contains("<script src") && !page.contains("<link"));

    // The JSON report by extension, and the index where asked.
    let json = root.join("r.json");
    let ix = root.join("ix/index.sqlite");
    let out = discus(&[
        "validate",
        root.to_str().unwrap(),
        "--report",
        json.to_str().unwrap(),
        "--index",
        ix.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(v["scan"]["files"], 1);
    assert!(ix.exists());
}

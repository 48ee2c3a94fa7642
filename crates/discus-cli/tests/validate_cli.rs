//! `discus validate` exit codes and outputs (the library's checks are tested in discus-data).

use std::path::Path;

mod common;
use common::run;

fn descriptions(root: &Path) {
    std::fs::write(
        root.join("train_series_descriptions.csv"),
        "study_id,series_id,series_description\n",
    )
    .unwrap();
}

#[test]
fn usage_errors_exit_2() {
    let out = run(&["validate", "/nonexistent/discus/root"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a folder"));
    let out = run(&["validate"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn warnings_only_exit_0_errors_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("train_images/7")).unwrap();
    descriptions(root);
    let out = run(&["validate", root.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("empty_study_folder"), "{text}");
    assert!(text.contains("0 errors"), "{text}");

    // A file that is not DICOM: an error-level finding, exit 1; JSON on stdout, report folder written.
    std::fs::create_dir_all(root.join("train_images/7/8")).unwrap();
    std::fs::write(root.join("train_images/7/8/1.dcm"), b"hello").unwrap();
    let rep = root.join("report");
    let out = run(&[
        "validate",
        root.to_str().unwrap(),
        "--json",
        "--report",
        rep.to_str().unwrap(),
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
    let page = std::fs::read_to_string(rep.join("index.html")).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>") && page.contains("unreadable_file"));
    assert!(!page.contains("<script") && !page.contains("<link") && !page.contains("src="));
    // report.json in the folder is the same report as --json printed.
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(rep.join("report.json")).unwrap()).unwrap();
    assert_eq!(saved["findings"], v["findings"]);

    // The index where asked; the report folder's JSON.
    let rep2 = root.join("r2");
    let ix = root.join("ix/index.sqlite");
    let out = run(&[
        "validate",
        root.to_str().unwrap(),
        "--report",
        rep2.to_str().unwrap(),
        "--index",
        ix.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(rep2.join("report.json")).unwrap()).unwrap();
    assert_eq!(v["scan"]["files"], 1);
    assert!(ix.exists());
}

#[test]
fn a_report_name_ending_in_html_or_json_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("train_images/7")).unwrap();
    descriptions(root);
    for name in ["report.html", "r.JSON"] {
        let path = root.join(name);
        let out = run(&[
            "validate",
            root.to_str().unwrap(),
            "--report",
            path.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("a report is a folder"), "{err}");
        // The suggestion is the name without its extension.
        assert!(
            err.contains(
                &root
                    .join(name.split('.').next().unwrap())
                    .display()
                    .to_string()
            ),
            "{err}"
        );
        assert!(!path.exists(), "nothing written");
    }
    assert!(
        !root.join(".discus").exists(),
        "refused before anything was scanned"
    );
}

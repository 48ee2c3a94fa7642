//! `discus deid` and `discus deid verify` as a user runs them: exit codes, files written, and a
//! leak that verify must report.

use std::path::PathBuf;

mod common;
use common::{run_os, shared_dir};

fn shared_deid() -> PathBuf {
    shared_dir().join("data/deid/dicom-cookies")
}

#[test]
fn deid_then_verify_then_a_leak_fails_verify() {
    let src = shared_deid();
    if !src.is_dir() {
        discus_core::crosscheck::skip(format!(
            "{} not found (set DISCUS_SHARED_DIR)",
            src.display()
        ));
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    for e in std::fs::read_dir(&src).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, input.join(p.file_name().unwrap())).unwrap();
    }
    let out = tmp.path().join("out");
    let key = tmp.path().join("site.key");
    let o = run_os(&[
        "deid".as_ref(),
        input.as_os_str(),
        out.as_os_str(),
        "--profile".as_ref(),
        "basic".as_ref(),
        "--retain-longitudinal-modified-dates".as_ref(),
        "--key".as_ref(),
        key.as_os_str(),
        "--json".as_ref(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["written"], 7);
    assert_eq!(
        report["flagged"].as_array().unwrap().len(),
        7,
        "secondary captures are flagged"
    );
    assert!(key.is_file());
    assert!(tmp.path().join("out.deid-map.csv").is_file());
    assert!(out.join("dataset.toml").is_file());

    let v = run_os(&[
        "deid".as_ref(),
        "verify".as_ref(),
        out.as_os_str(),
        "--against".as_ref(),
        input.as_os_str(),
    ]);
    assert_eq!(
        v.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&v.stdout)
    );

    // an original file slipped into the output: verify names it and exits 1
    std::fs::copy(input.join("image1.dcm"), out.join("stray.dcm")).unwrap();
    let v = run_os(&[
        "deid".as_ref(),
        "verify".as_ref(),
        out.as_os_str(),
        "--against".as_ref(),
        input.as_os_str(),
    ]);
    assert_eq!(v.status.code(), Some(1));
    let text = String::from_utf8_lossy(&v.stdout);
    assert!(
        text.contains("leak: stray.dcm") && text.contains("(0010,0010)"),
        "{text}"
    );

    // usage error: exit 2
    let u = run_os(&["deid".as_ref(), input.as_os_str()]);
    assert_eq!(u.status.code(), Some(2));
}

//! `discus compare` end to end: usage errors, a cohort against itself (nothing flagged), and a copy
//! whose train.csv makes every graded spinal level Severe (only labels flagged). The comparison's
//! logic and its divergences are tested in discus-eval (tests/compare.rs, against scipy).

use discus_core::formats::{read_train, write_train, LineEnding};
use discus_core::{Condition, Severity};
use std::path::Path;

mod common;
use common::{run, s};

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        if name == ".discus" || name == ".discus-synth" {
            continue;
        }
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(&name));
        } else {
            std::fs::copy(e.path(), to.join(&name)).unwrap();
        }
    }
}

#[test]
fn compare_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    let o = run(&[
        "synth",
        "--out",
        s(&a),
        "--studies",
        "2",
        "--sites",
        "1",
        "--seed",
        "3",
        "--readers",
        "1",
        "--matrix-scale",
        "0.15",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // Usage errors: exit 2, nothing written.
    let o = run(&["compare", s(&a), "/nonexistent/discus/b"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a folder"));
    let html = tmp.path().join("cmp.html");
    let o = run(&["compare", s(&a), s(&a), "--out", s(&html)]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("a report is a folder"));
    assert!(!html.exists());
    // The help states the library's threshold (help text is wrapped: compare words).
    let o = run(&["compare", "--help"]);
    let help = String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let threshold = format!("above {} bits", discus_eval::compare::JS_FLAG_BITS);
    assert!(help.contains(&threshold), "{help}");

    // A against itself: no flags; the report folder is written.
    let out = tmp.path().join("self");
    let o = run(&["compare", s(&a), s(&a), "--out", s(&out)]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(text.contains("no flags"), "{text}");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["flags"], serde_json::json!([]));
    assert!(std::fs::read_to_string(out.join("index.html"))
        .unwrap()
        .contains("No flags"));

    // B: A's images with every graded spinal level Severe. Only label cells are flagged.
    let b = tmp.path().join("b");
    copy_dir(&a, &b);
    let mut train = read_train(&b.join("train.csv")).unwrap();
    for r in &mut train.rows {
        for g in &mut r.grades[Condition::SpinalCanalStenosis.index() * 5..][..5] {
            if g.is_some() {
                *g = Some(Severity::Severe);
            }
        }
    }
    write_train(&b.join("train.csv"), &train.rows, LineEnding::Lf).unwrap();
    let o = run(&["compare", s(&a), s(&b), "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let flags = v["flags"].as_array().unwrap();
    assert!(!flags.is_empty());
    for f in flags {
        assert_eq!(f["facet"], "labels", "{f}");
        assert!(f["item"]
            .as_str()
            .unwrap()
            .starts_with("spinal_canal_stenosis_"));
    }
}

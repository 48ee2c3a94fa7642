//! `discus_core::layout` owns the LumbarDISC file and folder names: no other library or binary
//! source file spells them (outside comments and `#[cfg(test)]` modules). A name spelled elsewhere
//! fails here with its file and line.

use std::path::{Path, PathBuf};

/// The names only `layout.rs` may spell.
const NAMES: [&str; 8] = [
    "train_images",
    "test_images",
    "_series_descriptions.csv",
    "train_label_coordinates.csv",
    "\"train.csv\"",
    "\"sample_submission.csv\"",
    "\"dataset.toml\"",
    "\"index.sqlite\"",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn layout_names_are_spelled_only_in_layout_rs() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for c in std::fs::read_dir(&crates).unwrap() {
        let src = c.unwrap().path().join("src");
        if src.is_dir() {
            rust_files(&src, &mut files);
        }
    }
    assert!(files.len() > 50, "found only {} source files", files.len());
    let layout = crates.join("discus-core/src/layout.rs");
    assert!(files.contains(&layout));
    let mut found = Vec::new();
    for f in files.iter().filter(|f| **f != layout) {
        let text = std::fs::read_to_string(f).unwrap();
        for (i, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("#[cfg(test)]") {
                break;
            }
            if code.starts_with("//") {
                continue;
            }
            for name in NAMES.iter().filter(|n| code.contains(**n)) {
                found.push(format!("{}:{}: {name}", f.display(), i + 1));
            }
        }
    }
    assert!(
        found.is_empty(),
        "layout names spelled outside discus_core::layout:\n{}",
        found.join("\n")
    );
}

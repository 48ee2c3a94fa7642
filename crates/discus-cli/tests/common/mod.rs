//! Helpers shared by the discus-cli integration tests: running the `discus` binary, and the
//! scikit-learn virtualenv of the Python cross-checks.
#![allow(dead_code)] // each test crate uses its own subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs `discus ARGS`.
pub fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_discus"))
        .args(args)
        .output()
        .expect("run discus")
}

/// Runs `discus ARGS`, fails the test on a non-zero exit, returns stdout.
pub fn ok(args: &[&str]) -> String {
    let o = run(args);
    assert!(
        o.status.success(),
        "discus {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// A path as `&str`.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The Python of the `sklearn-check` virtualenv (numpy, scipy, scikit-learn pinned), or `None`
/// after `crosscheck::skip` when python3 is absent.
pub fn python() -> Option<PathBuf> {
    let out = Command::new(root().join("scripts/pyvenv"))
        .args([
            "sklearn-check",
            "numpy==1.26.4",
            "scipy==1.13.1",
            "scikit-learn==1.4.2",
        ])
        .output()
        .expect("run scripts/pyvenv");
    match out.status.code() {
        Some(0) => Some(PathBuf::from(
            String::from_utf8(out.stdout).unwrap().trim().to_string(),
        )),
        Some(3) => {
            discus_core::crosscheck::skip(String::from_utf8_lossy(&out.stderr).trim());
            None
        }
        _ => panic!(
            "scripts/pyvenv failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

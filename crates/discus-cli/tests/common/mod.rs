//! Helpers shared by the discus-cli integration tests: running the `discus` binary, paths, files,
//! external tools, and the Python virtualenvs of the cross-checks.
#![allow(dead_code)] // each test crate uses its own subset

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The `discus` binary as a command, for arguments, input or environment beyond [`run`].
pub fn discus() -> Command {
    Command::new(env!("CARGO_BIN_EXE_discus"))
}

/// Runs `discus ARGS`.
pub fn run(args: &[&str]) -> Output {
    discus().args(args).output().expect("run discus")
}

/// Runs `discus ARGS` with arguments that may not be UTF-8 (paths).
pub fn run_os(args: &[&OsStr]) -> Output {
    discus().args(args).output().expect("run discus")
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

/// The stdout of a finished run, failing the test (with its exit code and stderr) if it failed.
pub fn stdout_of(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// A path as `&str`.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The shared data folder: `$DISCUS_SHARED_DIR`, else `shared/` beside the repository.
pub fn shared_dir() -> PathBuf {
    match std::env::var_os("DISCUS_SHARED_DIR") {
        Some(d) => PathBuf::from(d),
        None => root().join("../shared"),
    }
}

/// A JSON file, parsed.
pub fn json_file(p: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// Every file under `dir` (any depth), sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                v.push(p);
            }
        }
    }
    v.sort();
    v
}

/// True when the external tool `name` runs (`name --version`); otherwise `crosscheck::skip`
/// with `what` (which package it comes from) and false.
pub fn tool(name: &str, what: &str) -> bool {
    let ok = Command::new(name)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !ok {
        discus_core::crosscheck::skip(format!("{name} ({what}) is not installed"));
    }
    ok
}

/// The Python of the virtualenv `name` with `requirements` (pinned) made by `scripts/pyvenv`, or
/// `None` after `crosscheck::skip` when python3 is absent.
pub fn pyvenv(name: &str, requirements: &[&str]) -> Option<PathBuf> {
    let out = Command::new(root().join("scripts/pyvenv"))
        .arg(name)
        .args(requirements)
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

/// The Python of the `sklearn-check` virtualenv (numpy, scipy, scikit-learn pinned), or `None`
/// after `crosscheck::skip` when python3 is absent.
pub fn python() -> Option<PathBuf> {
    pyvenv(
        "sklearn-check",
        &["numpy==1.26.4", "scipy==1.13.1", "scikit-learn==1.4.2"],
    )
}

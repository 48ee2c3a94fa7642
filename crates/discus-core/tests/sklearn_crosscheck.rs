//! Cross-checks discus's metric against an independent implementation on scikit-learn's `log_loss`
//! (tests/python/metric_sklearn.py) over a few hundred random cases: tiny and zero probabilities,
//! values above one, unnormalised rows, studies without a severe level, missing labels.
//!
//! Pinned versions, and why:
//! - scikit-learn 1.4.2 for the default (renormalising) semantics: the last release line whose
//!   `log_loss` clips to [eps, 1-eps] and then renormalises each row, which is what the competition was
//!   scored with (1.5 stopped renormalising). 1.4.2 is the newest 1.4 release and has wheels for the
//!   Python 3.11 used here.
//! - scikit-learn 1.5.2 for `--semantics clip-only`: clips and does not renormalise.
//! - numpy 1.26.4 and scipy 1.13.1 for both: releases that 1.4.2 and 1.5.2 were built and tested
//!   against, with Python 3.11 wheels.
//!
//! When python3 is absent the test prints why and returns; any other failure fails the test.

use discus_core::formats::{StudyLabels, SubmissionRow};
use discus_core::metric::{score, Semantics};
use discus_core::{LabelColumn, RowId, Severity, StudyId};
use std::path::Path;
use std::process::Command;

/// SplitMix64: a tiny fixed-seed generator, so the cases are the same on every run.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E3779B97F4A7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn value(rng: &mut Rng) -> f64 {
    match rng.below(12) {
        0 => 0.0,
        1 => 1e-300,
        2 => 1e-17,
        3 => 1.0,
        4 => 3.5, // above one: clipped to 1 - eps
        5 => f64::EPSILON / 2.0,
        _ => rng.unit(),
    }
}

/// One random case: labels and a full submission.
fn case(rng: &mut Rng) -> (Vec<StudyLabels>, Vec<SubmissionRow>) {
    let n = 1 + rng.below(6) as usize;
    let p_missing = [0.0, 0.1, 0.5][rng.below(3) as usize];
    // Some cases have no Severe grade at all (so no study has a severe level).
    let max_grade = if rng.below(4) == 0 { 2 } else { 3 };
    let mut labels = Vec::new();
    let mut rows = Vec::new();
    for s in 0..n {
        let study = StudyId(4_000_000_000 + s as u64 * 7919); // ids above 2^31
        let mut l = StudyLabels::empty(study);
        for c in 0..25 {
            if rng.unit() >= p_missing {
                l.grades[c] = Severity::from_index(rng.below(max_grade) as usize);
            }
        }
        labels.push(l);
        for column in LabelColumn::all() {
            let style = rng.below(3);
            let probs = match style {
                // a normalised row
                0 => {
                    let a = [rng.unit(), rng.unit(), rng.unit()];
                    let t: f64 = a.iter().sum();
                    a.map(|v| v / t)
                }
                // an arbitrary row: zeros, tiny values, unnormalised
                _ => [value(rng), value(rng), value(rng)],
            };
            rows.push(SubmissionRow {
                row_id: RowId { study, column },
                probs,
            });
        }
    }
    // Every term needs at least one scored row; otherwise both sides refuse the case.
    for g in 0..3 {
        let has = labels.iter().any(|l| {
            LabelColumn::all()
                .iter()
                .any(|c| c.condition.group() as usize == g && l.grades[c.index()].is_some())
        });
        if !has {
            let c = LabelColumn::all()
                .into_iter()
                .find(|c| c.condition.group() as usize == g)
                .unwrap();
            labels[0].grades[c.index()] = Some(Severity::Moderate);
        }
    }
    (labels, rows)
}

fn cases_json(cases: &[(Vec<StudyLabels>, Vec<SubmissionRow>)]) -> serde_json::Value {
    let list: Vec<serde_json::Value> = cases
        .iter()
        .map(|(labels, rows)| {
            let r: Vec<serde_json::Value> = rows
                .iter()
                .map(|row| {
                    let l = labels.iter().find(|l| l.study == row.row_id.study).unwrap();
                    let g = l.grades[row.row_id.column.index()].map(|g| g.index());
                    serde_json::json!([
                        row.row_id.study.0,
                        row.row_id.column.condition.group().as_str(),
                        g,
                        row.probs
                    ])
                })
                .collect();
            serde_json::json!({ "rows": r })
        })
        .collect();
    serde_json::Value::Array(list)
}

fn python(venv: &str, reqs: &[&str]) -> Option<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new(root.join("scripts/pyvenv"))
        .arg(venv)
        .args(reqs)
        .output()
        .expect("running scripts/pyvenv");
    match out.status.code() {
        Some(0) => Some(String::from_utf8(out.stdout).unwrap().trim().to_string()),
        Some(3) => {
            discus_core::crosscheck::skip(format!(
                "the scikit-learn cross-check: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
            None
        }
        _ => panic!(
            "scripts/pyvenv {venv} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

fn crosscheck(venv: &str, reqs: &[&str], semantics: Semantics, expect_version: &str) {
    let Some(py) = python(venv, reqs) else { return };
    let mut rng = Rng(0x5EED_2024);
    let cases: Vec<_> = (0..300).map(|_| case(&mut rng)).collect();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("cases.json");
    std::fs::write(&input, serde_json::to_vec(&cases_json(&cases)).unwrap()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/metric_sklearn.py");
    let out = Command::new(&py).arg(&script).arg(&input).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["sklearn"], expect_version);
    let theirs = v["scores"].as_array().unwrap();
    assert_eq!(theirs.len(), cases.len());
    let mut worst = 0.0f64;
    for (i, ((labels, rows), t)) in cases.iter().zip(theirs).enumerate() {
        let s = score(labels, rows, semantics).unwrap();
        let ours = [s.spinal, s.foraminal, s.subarticular, s.any_severe, s.score];
        for (k, &o) in ours.iter().enumerate() {
            let e = t[k].as_f64().unwrap();
            let d = (o - e).abs();
            worst = worst.max(d);
            assert!(
                d < 1e-9,
                "case {i} term {k}: discus {o} vs scikit-learn {e}"
            );
        }
    }
    println!(
        "{semantics}: {} cases agree with scikit-learn {expect_version}; largest difference {worst:e}",
        cases.len()
    );
}

#[test]
fn renormalize_matches_sklearn_1_4() {
    crosscheck(
        "sklearn-check",
        &["scikit-learn==1.4.2", "numpy==1.26.4", "scipy==1.13.1"],
        Semantics::Renormalize,
        "1.4.2",
    );
}

#[test]
fn clip_only_matches_sklearn_1_5() {
    crosscheck(
        "sklearn-clip",
        &["scikit-learn==1.5.2", "numpy==1.26.4", "scipy==1.13.1"],
        Semantics::ClipOnly,
        "1.5.2",
    );
}

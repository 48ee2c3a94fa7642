//! Cross-checks discus-core's agreement statistics against the Python reference packages on random
//! tables (some with missing ratings), through scripts/agreement_check.py.
//!
//! Pinned versions, and why these:
//! - irrCAC 0.4.4 (the latest) pins scipy==1.12.0 and pandas>=2.2.2,<3, so scipy is 1.12.0, pandas 2.2.3;
//! - scipy 1.12 is built against numpy 1.x, so numpy is 1.26.4 (the last 1.x);
//! - scikit-learn 1.5.2 and statsmodels 0.14.4 are the newest releases that run on numpy 1.26 and
//!   scipy 1.12 and have the functions used here (cohen_kappa_score with labels/weights;
//!   fleiss_kappa + aggregate_raters);
//! - krippendorff 0.8.1 supports value_domain and NaN for missing ratings.
//!
//! "Ordinal": discus implements Krippendorff's ordinal metric (cumulative marginal frequencies), which
//! is what the `krippendorff` package calls ordinal. irrCAC's krippendorff(weights="ordinal") uses
//! Gwet's ordinal weights and differs (0.68134 instead of 0.745665 on the spec's table); this test
//! checks that it does differ, so the distinction stays documented by a test.

use discus_core::agreement::{
    cohen_kappa, fleiss_kappa, gwet_ac, krippendorff_alpha, percent_agreement, Metric, Ratings,
    SplitMix64, Weights,
};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

const PINS: [&str; 7] = [
    "numpy==1.26.4",
    "pandas==2.2.3",
    "scipy==1.12.0",
    "scikit-learn==1.5.2",
    "statsmodels==0.14.4",
    "krippendorff==0.8.1",
    "irrCAC==0.4.4",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The python of the pinned virtualenv, or None (with the reason printed) when python3 is absent.
fn python() -> Option<PathBuf> {
    let out = Command::new(root().join("scripts/pyvenv"))
        .arg("agreement-check")
        .args(PINS)
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

struct Case {
    id: String,
    rows: Vec<Vec<Option<usize>>>,
}

/// Random tables: 2-5 raters, 8-60 subjects, a skewed grade distribution, readers who copy a latent
/// truth with some noise (so agreement is neither zero nor perfect), and missing ratings in half of
/// the cases.
fn cases() -> Vec<Case> {
    let mut g = SplitMix64(20241127);
    let mut out = Vec::new();
    for c in 0..60 {
        let raters = 2 + g.below(4);
        let n = 8 + g.below(53);
        let missing = if c % 2 == 1 {
            0.05 + 0.25 * g.unit()
        } else {
            0.0
        };
        let noise = 0.1 + 0.5 * g.unit();
        let mut rows = Vec::new();
        for _ in 0..n {
            let u = g.unit();
            let truth = if u < 0.6 {
                0
            } else if u < 0.85 {
                1
            } else {
                2
            };
            let row = (0..raters)
                .map(|_| {
                    if g.unit() < missing {
                        return None;
                    }
                    if g.unit() < noise {
                        Some(g.below(3))
                    } else {
                        Some(truth)
                    }
                })
                .collect();
            rows.push(row);
        }
        out.push(Case {
            id: format!("case{c}"),
            rows,
        });
    }
    // The spec's table, and with C's 4th and 8th ratings missing.
    let a = [0, 0, 1, 2, 1, 0, 2, 1, 0, 0, 1, 2];
    let b = [0, 1, 1, 2, 1, 0, 1, 1, 0, 0, 2, 2];
    let cc = [0, 0, 1, 1, 2, 0, 2, 1, 1, 0, 1, 2];
    for (id, drop) in [("spec", false), ("spec_missing", true)] {
        let rows = (0..12)
            .map(|i| {
                let c = (!drop || (i != 3 && i != 7)).then_some(cc[i]);
                vec![Some(a[i]), Some(b[i]), c]
            })
            .collect();
        out.push(Case {
            id: id.into(),
            rows,
        });
    }
    out
}

fn table(rows: &[Vec<Option<usize>>]) -> Ratings {
    let mut r = Ratings::new(3, rows[0].len()).unwrap();
    for row in rows {
        r.push(row).unwrap();
    }
    r
}

fn ours(rows: &[Vec<Option<usize>>]) -> Vec<(&'static str, Option<f64>)> {
    let r = table(rows);
    let complete: Vec<Vec<Option<usize>>> = rows
        .iter()
        .filter(|r| r.iter().all(|c| c.is_some()))
        .cloned()
        .collect();
    let fleiss = if complete.is_empty() {
        None
    } else {
        fleiss_kappa(&table(&complete))
    };
    vec![
        (
            "cohen_kappa_unweighted",
            cohen_kappa(&r, 0, 1, Weights::Identity),
        ),
        ("cohen_kappa_linear", cohen_kappa(&r, 0, 1, Weights::Linear)),
        (
            "cohen_kappa_quadratic",
            cohen_kappa(&r, 0, 1, Weights::Quadratic),
        ),
        ("fleiss_kappa_complete", fleiss),
        (
            "krippendorff_alpha_nominal",
            krippendorff_alpha(&r, Metric::Nominal),
        ),
        (
            "krippendorff_alpha_ordinal",
            krippendorff_alpha(&r, Metric::Ordinal),
        ),
        (
            "krippendorff_alpha_interval",
            krippendorff_alpha(&r, Metric::Interval),
        ),
        ("gwet_ac1", gwet_ac(&r, Weights::Identity)),
        ("gwet_ac2_linear", gwet_ac(&r, Weights::Linear)),
        ("gwet_ac2_quadratic", gwet_ac(&r, Weights::Quadratic)),
        ("percent_agreement", percent_agreement(&r)),
    ]
}

#[test]
fn agreement_matches_python_reference_packages() {
    let Some(py) = python() else { return };
    let cases = cases();
    let input = serde_json::json!({
        "cases": cases.iter().map(|c| serde_json::json!({
            "id": c.id, "categories": 3, "ratings": c.rows,
        })).collect::<Vec<_>>()
    });
    let mut child = Command::new(py)
        .arg(root().join("scripts/agreement_check.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "agreement_check.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reference: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut compared = 0;
    for c in &cases {
        let want = &reference[&c.id];
        for (key, got) in ours(&c.rows) {
            let w = want[key].as_f64();
            match (got, w) {
                (Some(g), Some(w)) => {
                    assert!(
                        (g - w).abs() < 1e-9,
                        "{} {key}: discus {g}, reference {w}",
                        c.id
                    );
                    compared += 1;
                }
                (None, None) => {}
                // A statistic at the edge of definition (expected agreement ~1): the packages may
                // return a huge or NaN value where discus says undefined; only tolerated when the
                // reference is not a sensible coefficient.
                (None, Some(w)) => assert!(
                    !(-1.0..=1.0).contains(&w),
                    "{} {key}: discus undefined, reference {w}",
                    c.id
                ),
                (Some(g), None) => panic!("{} {key}: discus {g}, reference undefined", c.id),
            }
        }
    }
    assert!(compared > 500, "only {compared} values compared");
    // The other "ordinal": irrCAC's ordinal weights are not Krippendorff's ordinal metric.
    let other = reference["spec"]["irrcac_krippendorff_ordinal_weights"]
        .as_f64()
        .unwrap();
    assert!((other - 0.68134).abs() < 1e-5, "{other}");
    let kripp = reference["spec"]["krippendorff_alpha_ordinal"]
        .as_f64()
        .unwrap();
    assert!((kripp - 0.745665).abs() < 1e-6);
}

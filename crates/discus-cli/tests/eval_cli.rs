//! `discus score`, `discus baseline prior`, `discus evaluate` and `discus split` run as a user runs
//! them, on a synthetic-like labels file built here with a fixed seed.

use std::path::{Path, PathBuf};

mod common;
use common::{run, s, stdout_of};

const GRADES: [&str; 3] = ["Normal/Mild", "Moderate", "Severe"];

/// SplitMix64 with a fixed seed.
struct Rng(u64);
impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E3779B97F4A7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn columns() -> Vec<String> {
    let conds = [
        "spinal_canal_stenosis",
        "left_neural_foraminal_narrowing",
        "right_neural_foraminal_narrowing",
        "left_subarticular_stenosis",
        "right_subarticular_stenosis",
    ];
    let levels = ["l1_l2", "l2_l3", "l3_l4", "l4_l5", "l5_s1"];
    conds
        .iter()
        .flat_map(|c| levels.iter().map(move |l| format!("{c}_{l}")))
        .collect()
}

/// A train.csv of `n` studies with grades drawn roughly as in the real set (about 75% Normal/Mild,
/// 17% Moderate, 7% Severe, 1% missing). Returns the text and the grades (None = missing).
/// Per study: its id and its 25 grades (0, 1, 2; None = missing).
type Grades = Vec<(u64, Vec<Option<usize>>)>;

fn labels(n: usize, seed: u64) -> (String, Grades) {
    let mut rng = Rng(seed);
    let mut text = format!("study_id,{}\n", columns().join(","));
    let mut rows = Vec::new();
    for i in 0..n {
        let id = 4_000_000_000u64 + i as u64 * 1009;
        let g: Vec<Option<usize>> = (0..25)
            .map(|_| {
                let u = rng.unit();
                if u < 0.01 {
                    None
                } else if u < 0.76 {
                    Some(0)
                } else if u < 0.93 {
                    Some(1)
                } else {
                    Some(2)
                }
            })
            .collect();
        let cells: Vec<&str> = g
            .iter()
            .map(|g| g.map(|k| GRADES[k]).unwrap_or(""))
            .collect();
        text += &format!("{id},{}\n", cells.join(","));
        rows.push((id, g));
    }
    (text, rows)
}

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    train: PathBuf,
    grades: Grades,
}

fn fixture(n: usize) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let (text, grades) = labels(n, 11);
    let train = root.join("train.csv");
    std::fs::write(&train, text).unwrap();
    Fixture {
        _dir: dir,
        root,
        train,
        grades,
    }
}

fn score_json(f: &Fixture, sub: &Path) -> serde_json::Value {
    let out = stdout_of(&run(&[
        "score",
        "--labels",
        s(&f.train),
        "--submission",
        s(sub),
        "--json",
    ]));
    serde_json::from_str(&out).unwrap()
}

#[test]
fn uniform_prior_scores_the_closed_form_and_optimal_beats_it() {
    let f = fixture(300);
    let uniform = f.root.join("uniform.csv");
    let optimal = f.root.join("optimal.csv");
    for (kind, path) in [("uniform", &uniform), ("optimal", &optimal)] {
        stdout_of(&run(&[
            "baseline",
            "prior",
            "--labels",
            s(&f.train),
            "--studies",
            s(&f.train),
            "--out",
            s(path),
            "--kind",
            kind,
        ]));
    }
    let u = score_json(&f, &uniform);
    let ln3 = 3f64.ln();
    for term in ["spinal", "foraminal", "subarticular"] {
        let v = u[term].as_f64().unwrap();
        assert!((v - ln3).abs() < 1e-9, "{term}: {v}");
    }
    // any_severe_spinal in closed form: p = 1/3 for every study; y = any severe spinal level;
    // v = the largest weight (1, 2, 4) among the study's labelled spinal levels.
    let (mut num, mut den) = (0.0, 0.0);
    for (_, g) in &f.grades {
        let spinal: Vec<usize> = g[..5].iter().flatten().copied().collect();
        if spinal.is_empty() {
            continue;
        }
        let y = spinal.contains(&2);
        let v = [1.0, 2.0, 4.0][*spinal.iter().max().unwrap()];
        num += v * if y { ln3 } else { (1.5f64).ln() };
        den += v;
    }
    let any = u["any_severe"].as_f64().unwrap();
    assert!((any - num / den).abs() < 1e-9, "{any} vs {}", num / den);
    let closed = (3.0 * ln3 + num / den) / 4.0;
    assert!((u["score"].as_f64().unwrap() - closed).abs() < 1e-9);

    let o = score_json(&f, &optimal);
    assert!(
        o["score"].as_f64().unwrap() < u["score"].as_f64().unwrap(),
        "optimal {} vs uniform {}",
        o["score"],
        u["score"]
    );
    for term in ["spinal", "foraminal", "subarticular"] {
        assert!(o[term].as_f64().unwrap() < ln3, "{term}");
    }
    // The text output names the four terms.
    let text = stdout_of(&run(&[
        "score",
        "--labels",
        s(&f.train),
        "--submission",
        s(&uniform),
    ]));
    for t in [
        "spinal",
        "foraminal",
        "subarticular",
        "any_severe_spinal",
        "score",
    ] {
        assert!(text.contains(t), "{text}");
    }
}

/// Runs `discus score` on a damaged copy of the uniform prior and returns (exit code, stderr).
fn refused(f: &Fixture, edit: impl Fn(String) -> String) -> (Option<i32>, String) {
    let good = f.root.join("good.csv");
    stdout_of(&run(&[
        "baseline",
        "prior",
        "--labels",
        s(&f.train),
        "--studies",
        s(&f.train),
        "--out",
        s(&good),
        "--kind",
        "uniform",
    ]));
    let bad = f.root.join("bad.csv");
    std::fs::write(&bad, edit(std::fs::read_to_string(&good).unwrap())).unwrap();
    let o = run(&["score", "--labels", s(&f.train), "--submission", s(&bad)]);
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn refusals_name_the_row() {
    let f = fixture(3);
    let first = format!("{}_spinal_canal_stenosis_l1_l2", f.grades[0].0);
    let second = format!("{}_left_subarticular_stenosis_l2_l3", f.grades[1].0);

    // missing row
    let (code, e) = refused(&f, |t| {
        t.lines()
            .filter(|l| !l.starts_with(&second))
            .map(|l| format!("{l}\n"))
            .collect()
    });
    assert_eq!(code, Some(1));
    assert!(e.contains(&format!("missing row {second}")), "{e}");
    assert!(e.contains("bad.csv"), "{e}");

    // duplicate row: the first data row again at the end (line 77)
    let (code, e) = refused(&f, |t| {
        let dup = t.lines().nth(1).unwrap().to_string();
        format!("{t}{dup}\n")
    });
    assert_eq!(code, Some(1));
    assert!(
        e.contains(&format!("line 77: duplicate row {first}")),
        "{e}"
    );

    // unknown row_id
    let (code, e) = refused(&f, |t| {
        format!("{t}12345_spinal_canal_stenosis_l1_l2,0.3,0.3,0.4\n")
    });
    assert_eq!(code, Some(1));
    assert!(
        e.contains("line 77: unknown row 12345_spinal_canal_stenosis_l1_l2"),
        "{e}"
    );

    // non-finite and negative values
    for bad in ["NaN", "inf", "-0.1"] {
        let (code, e) = refused(&f, |t| {
            t.replacen(
                &format!("{first},0.3333333333333333,"),
                &format!("{first},{bad},"),
                1,
            )
        });
        assert_eq!(code, Some(1), "{bad}");
        assert!(
            e.contains(&format!("line 2: row {first}: normal_mild")),
            "{bad}: {e}"
        );
    }

    // usage error: exit 2
    let o = run(&[
        "score",
        "--labels",
        s(&f.train),
        "--submission",
        s(&f.train),
        "--semantics",
        "x",
    ]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn evaluate_and_split_without_images() {
    let f = fixture(60);
    let sub = f.root.join("optimal.csv");
    stdout_of(&run(&[
        "baseline",
        "prior",
        "--labels",
        s(&f.train),
        "--studies",
        s(&f.train),
        "--out",
        s(&sub),
    ]));
    let report = f.root.join("report");
    let out = stdout_of(&run(&[
        "evaluate",
        "--dataset",
        s(&f.root),
        "--submission",
        s(&sub),
        "--out",
        s(&report),
        "--resamples",
        "200",
        "--json",
    ]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let scored = score_json(&f, &sub);
    assert_eq!(v["score"]["score"], scored["score"]);
    let (lo, hi) = (
        v["interval"]["score"][0].as_f64().unwrap(),
        v["interval"]["score"][1].as_f64().unwrap(),
    );
    assert!(lo < scored["score"].as_f64().unwrap() && scored["score"].as_f64().unwrap() < hi);
    assert!(report.join("index.html").is_file());
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(report.join("report.json")).unwrap()).unwrap();
    assert_eq!(r["studies"], 60);
    assert_eq!(r["by_condition_level"].as_array().unwrap().len(), 25);
    assert_eq!(r["by_facet"][0]["groups"][0]["name"], "unknown");

    // split: to a file, deterministic, every study once
    let a = f.root.join("a.csv");
    let b = f.root.join("b.csv");
    for p in [&a, &b] {
        stdout_of(&run(&[
            "split",
            "--dataset",
            s(&f.root),
            "--folds",
            "4",
            "--seed",
            "9",
            "--out",
            s(p),
        ]));
    }
    let text = std::fs::read_to_string(&a).unwrap();
    assert_eq!(text, std::fs::read_to_string(&b).unwrap());
    let rows: Vec<&str> = text.lines().skip(1).collect();
    assert_eq!(rows.len(), 60);
    let stdout = stdout_of(&run(&[
        "split",
        "--dataset",
        s(&f.root),
        "--folds",
        "4",
        "--seed",
        "9",
    ]));
    assert_eq!(stdout, text);
    let o = run(&["split", "--dataset", s(&f.root), "--folds", "1"]);
    assert_eq!(o.status.code(), Some(1));
}

/// On a cohort from `discus synth` (labels from its simulated reader), the uniform prior scores
/// the closed form, the loss-optimal prior beats it, and `evaluate` groups the studies by the
/// sites written in the DICOM headers.
#[test]
fn synthetic_cohort_uniform_closed_form() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("cohort");
    stdout_of(&run(&[
        "synth",
        "--out",
        s(&root),
        "--studies",
        "6",
        "--sites",
        "2",
        "--seed",
        "3",
        "--matrix-scale",
        "0.25",
    ]));
    let train = root.join("train.csv");
    let text = std::fs::read_to_string(&train).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let (ln3, ln15) = (3f64.ln(), 1.5f64.ln());
    let (mut num, mut den) = (0.0, 0.0);
    for line in lines.filter(|l| !l.is_empty()) {
        let cells: Vec<&str> = line.split(',').collect();
        let spinal: Vec<&str> = header
            .iter()
            .zip(&cells)
            .filter(|(h, c)| h.starts_with("spinal_canal_stenosis_") && !c.is_empty())
            .map(|(_, c)| *c)
            .collect();
        if spinal.is_empty() {
            continue;
        }
        let v = spinal
            .iter()
            .map(|g| match *g {
                "Normal/Mild" => 1.0,
                "Moderate" => 2.0,
                "Severe" => 4.0,
                other => panic!("grade {other}"),
            })
            .fold(0.0, f64::max);
        num += v * if spinal.contains(&"Severe") {
            ln3
        } else {
            ln15
        };
        den += v;
    }
    let uniform = dir.path().join("u.csv");
    let optimal = dir.path().join("o.csv");
    let studies = root.join("train_series_descriptions.csv");
    for (kind, out) in [("uniform", &uniform), ("optimal", &optimal)] {
        stdout_of(&run(&[
            "baseline",
            "prior",
            "--labels",
            s(&train),
            "--studies",
            s(&studies),
            "--out",
            s(out),
            "--kind",
            kind,
        ]));
    }
    let score = |sub: &Path| -> serde_json::Value {
        serde_json::from_str(&stdout_of(&run(&[
            "score",
            "--labels",
            s(&train),
            "--submission",
            s(sub),
            "--json",
        ])))
        .unwrap()
    };
    let u = score(&uniform);
    for term in ["spinal", "foraminal", "subarticular"] {
        assert!((u[term].as_f64().unwrap() - ln3).abs() < 1e-9, "{term}");
    }
    assert!((u["any_severe"].as_f64().unwrap() - num / den).abs() < 1e-9);
    assert!((u["score"].as_f64().unwrap() - (3.0 * ln3 + num / den) / 4.0).abs() < 1e-9);
    let o = score(&optimal);
    assert!(o["score"].as_f64().unwrap() < u["score"].as_f64().unwrap());

    let report = dir.path().join("report");
    stdout_of(&run(&[
        "evaluate",
        "--dataset",
        s(&root),
        "--submission",
        s(&optimal),
        "--out",
        s(&report),
        "--resamples",
        "100",
    ]));
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(report.join("report.json")).unwrap()).unwrap();
    let sites = r["by_facet"][0]["groups"].as_array().unwrap();
    assert_eq!(sites.len(), 2, "{sites:?}");
    assert!(sites.iter().all(|g| g["name"] != "unknown"));
    assert_eq!(r["studies_without_metadata"], 0);

    // `baseline bayes`: each row is P(label | true degree) under the designated reader of
    // truth.json (threshold model, documented there): computed here from truth.json's degrees and
    // reader by integrating the normal density, not with discus's normal CDF.
    let bayes = dir.path().join("bayes.csv");
    stdout_of(&run(&[
        "baseline",
        "bayes",
        "--truth",
        s(&root.join("truth.json")),
        "--out",
        s(&bayes),
    ]));
    let truth: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("truth.json")).unwrap()).unwrap();
    let reader = &truth["readers"][truth["designated_reader"].as_u64().unwrap() as usize];
    let (bias, sigma) = (
        reader["bias"].as_f64().unwrap(),
        reader["sigma"].as_f64().unwrap(),
    );
    let cdf = |x: f64| -> f64 {
        // Simpson's rule on the standard normal density from -10 to x.
        let (a, n) = (-10.0f64, 20_000);
        if x <= a {
            return 0.0;
        }
        let h = (x - a) / n as f64;
        let f = |t: f64| (-t * t / 2.0).exp() / (2.0 * std::f64::consts::PI).sqrt();
        let mut sum = f(a) + f(x);
        for i in 1..n {
            sum += f(a + i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 };
        }
        sum * h / 3.0
    };
    let text = std::fs::read_to_string(&bayes).unwrap();
    let rows: Vec<&str> = text.lines().skip(1).collect();
    assert_eq!(rows.len(), 6 * 25);
    let levels = ["l1_l2", "l2_l3", "l3_l4", "l4_l5", "l5_s1"];
    for st in truth["studies"].as_array().unwrap() {
        let id = st["study_id"].as_u64().unwrap();
        let d = &st["degrees"];
        for (li, level) in levels.iter().enumerate() {
            let l5 = if li == 4 { 1.3 } else { 1.0 };
            let mut want = vec![(
                format!("spinal_canal_stenosis_{level}"),
                d["spinal"][li].as_f64().unwrap(),
                1.0,
            )];
            for (side, name) in ["left", "right"].iter().enumerate() {
                want.push((
                    format!("{name}_neural_foraminal_narrowing_{level}"),
                    d["foraminal"][side][li].as_f64().unwrap(),
                    1.45,
                ));
                want.push((
                    format!("{name}_subarticular_stenosis_{level}"),
                    d["subarticular"][side][li].as_f64().unwrap(),
                    1.2,
                ));
            }
            for (column, degree, k) in want {
                let sd = sigma * k * l5;
                let m = degree + bias;
                let c0 = cdf((1.0 / 3.0 - m) / sd);
                let c1 = cdf((2.0 / 3.0 - m) / sd);
                let expected = [c0, c1 - c0, 1.0 - c1];
                let row_id = format!("{id}_{column}");
                let row = rows
                    .iter()
                    .find(|r| r.starts_with(&format!("{row_id},")))
                    .unwrap_or_else(|| panic!("no row {row_id}"));
                let got: Vec<f64> = row.split(',').skip(1).map(|v| v.parse().unwrap()).collect();
                for k in 0..3 {
                    assert!(
                        (got[k] - expected[k]).abs() < 1e-6,
                        "{row_id}: {got:?} against {expected:?}"
                    );
                }
            }
        }
    }
    // Not a truth file: the error names it and says what was expected.
    let o = run(&[
        "baseline",
        "bayes",
        "--truth",
        s(&train),
        "--out",
        s(&dir.path().join("never.csv")),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("train.csv") && err.contains("not a discus synth truth.json"),
        "{err}"
    );
    assert!(!dir.path().join("never.csv").exists());
}

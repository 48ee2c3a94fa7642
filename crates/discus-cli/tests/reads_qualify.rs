//! `discus reads qualify` on fixed reads of a synthetic cohort: the kappas (overall and per
//! condition group, quadratic and linear weights) equal scikit-learn's `cohen_kappa_score` of the
//! reader's grades against the unanimous grades of the reference readers, computed in Python from
//! the same CSV files; the exit status is 0 on pass and 3 on fail. `discus reads simulate` runs and
//! its reported reads add up.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

mod common;
use common::{ok, python, run, s};

/// The reader's kappa against the unanimous grade of the reference readers, overall and per
/// condition group, by scikit-learn.
const KAPPA_PY: &str = r#"
import csv, json, sys
from sklearn.metrics import cohen_kappa_score
args = json.load(sys.stdin)
names = ["Normal/Mild", "Moderate", "Severe"]
def grades(path):
    out = {}
    with open(path) as f:
        r = csv.reader(f)
        head = next(r)
        for row in r:
            for col, v in zip(head[1:], row[1:]):
                if v:
                    out[row[0] + "_" + col] = names.index(v)
    return out
refs = [grades(p) for p in args["reference"]]
reader = grades(args["reader"])
cons = {}
for k in set().union(*refs):
    g = [r[k] for r in refs if k in r]
    if g and all(x == g[0] for x in g):
        cons[k] = g[0]
keys = sorted(set(cons) & set(reader))
def group(k):
    col = k.split("_", 1)[1]
    if col.startswith("spinal"): return "spinal"
    if "foraminal" in col: return "foraminal"
    return "subarticular"
def kappa(ks, w):
    if not ks: return None
    v = cohen_kappa_score([reader[k] for k in ks], [cons[k] for k in ks], labels=[0, 1, 2], weights=w)
    return None if v != v else float(v)
out = {"n": len(keys), "consensus": len(cons)}
for w in ["linear", "quadratic"]:
    out[w] = {"overall": kappa(keys, w)}
    for g in ["spinal", "foraminal", "subarticular"]:
        out[w][g] = kappa([k for k in keys if group(k) == g], w)
print(json.dumps(out))
"#;

/// A copy of a reader's train.csv with every 7th grade moved one step (so agreement is imperfect).
fn perturb(train: &Path, out: &Path) {
    let text = std::fs::read_to_string(train).unwrap();
    let mut lines = text.lines();
    let mut o = String::from(lines.next().unwrap());
    o.push('\n');
    let mut k = 0;
    for line in lines {
        let cells: Vec<String> = line
            .split(',')
            .enumerate()
            .map(|(i, v)| {
                if i == 0 || v.is_empty() {
                    return v.to_string();
                }
                k += 1;
                if k % 7 != 0 {
                    return v.to_string();
                }
                match v {
                    "Normal/Mild" => "Moderate",
                    "Moderate" => "Severe",
                    _ => "Moderate",
                }
                .to_string()
            })
            .collect();
        o.push_str(&cells.join(","));
        o.push('\n');
    }
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    std::fs::write(out, o).unwrap();
}

#[test]
fn qualify_matches_sklearn_and_exits_3_on_fail() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = tmp.path().join("ds");
    ok(&[
        "synth",
        "--out",
        s(&ds),
        "--studies",
        "4",
        "--sites",
        "1",
        "--seed",
        "31",
        "--matrix-scale",
        "0.25",
        "--readers",
        "4",
    ]);
    let store = tmp.path().join("reads.sqlite");
    let reads = |args: &[&str]| -> Output {
        let mut v = vec!["reads", "--dataset", s(&ds), "--store", s(&store), "--json"];
        v.extend_from_slice(args);
        run(&v)
    };
    let rd = ds.join("readers");
    for r in ["0", "1", "2"] {
        let o = reads(&[
            "import",
            "--reader",
            &format!("expert{r}"),
            "--train",
            s(&rd.join(r).join("train.csv")),
            "--coordinates",
            s(&rd.join(r).join("train_label_coordinates.csv")),
            "--round",
            "reference",
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let trainee = tmp.path().join("trainee/train.csv");
    perturb(&rd.join("3/train.csv"), &trainee);
    let o = reads(&[
        "import",
        "--reader",
        "trainee",
        "--train",
        s(&trainee),
        "--coordinates",
        s(&rd.join("3/train_label_coordinates.csv")),
        "--round",
        "exam",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let o = reads(&[
        "qualify",
        "--reader",
        "trainee",
        "--against",
        "reference",
        "--resamples",
        "200",
    ]);
    let q: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stderr)));
    assert_eq!(q["config_source"], "built-in defaults");
    assert_eq!(q["config"]["weights"], "quadratic");
    let pass = q["pass"].as_bool().unwrap();
    assert_eq!(o.status.code(), Some(if pass { 0 } else { 3 }), "{q}");
    let p = &q["points"];
    assert!(p["measured"].as_u64().unwrap() >= 50, "{q}");
    let median = p["median_mm"].as_f64().unwrap();
    assert!(median > 0.0 && median < 20.0, "{q}");

    // The same with linear weights from a config file whose threshold cannot be met: exit 3.
    let cfg = tmp.path().join("discus.toml");
    std::fs::write(
        &cfg,
        "[serve]\nport = 1\n\n[qualify]\nweights = \"linear\"\nmin_kappa = 0.999\nresamples = 50\n",
    )
    .unwrap();
    let o2 = reads(&[
        "qualify",
        "--reader",
        "trainee",
        "--against",
        "reference",
        "--config",
        s(&cfg),
    ]);
    assert_eq!(o2.status.code(), Some(3));
    let q2: serde_json::Value = serde_json::from_slice(&o2.stdout).unwrap();
    assert_eq!(q2["pass"], false);
    assert!(q2["reasons"][0].as_str().unwrap().contains("below"), "{q2}");
    // Text output names the verdict.
    let o3 = run(&[
        "reads",
        "--dataset",
        s(&ds),
        "--store",
        s(&store),
        "qualify",
        "--reader",
        "trainee",
        "--against",
        "reference",
        "--config",
        s(&cfg),
    ]);
    assert_eq!(o3.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o3.stdout).contains("fail: kappa"));
    // A bad config is an error (exit 1), naming the file.
    std::fs::write(&cfg, "[qualify]\nmin_kapa = 0.5\n").unwrap();
    let o4 = reads(&[
        "qualify",
        "--reader",
        "trainee",
        "--against",
        "reference",
        "--config",
        s(&cfg),
    ]);
    assert_eq!(o4.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o4.stderr).contains("discus.toml"));

    // The protocol's example images: one 128 x 128 PNG per group and grade found, each naming a
    // finding whose train.csv grade is the image's grade.
    let imgs = tmp.path().join("imgs");
    let o5 = run(&[
        "reads",
        "--dataset",
        s(&ds),
        "protocol-images",
        "--out",
        s(&imgs),
    ]);
    assert!(
        o5.status.success(),
        "{}",
        String::from_utf8_lossy(&o5.stderr)
    );
    let sources: serde_json::Value =
        serde_json::from_slice(&std::fs::read(imgs.join("sources.json")).unwrap()).unwrap();
    let train = std::fs::read_to_string(ds.join("train.csv")).unwrap();
    let head: Vec<&str> = train.lines().next().unwrap().split(',').collect();
    let sources = sources.as_array().unwrap();
    assert!(sources.len() >= 6, "{sources:?}");
    for src in sources {
        let bytes = std::fs::read(imgs.join(src["file"].as_str().unwrap())).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        // IHDR width and height.
        assert_eq!(&bytes[16..24], &[0, 0, 0, 128, 0, 0, 0, 128]);
        assert!(bytes.len() < 40_000);
        let col = format!(
            "{}_{}",
            src["condition"].as_str().unwrap(),
            src["level"].as_str().unwrap()
        );
        let ci = head.iter().position(|h| *h == col).unwrap();
        let study = src["study_id"].to_string();
        let row = train
            .lines()
            .find(|l| l.split(',').next() == Some(study.as_str()))
            .unwrap();
        assert_eq!(
            row.split(',').nth(ci).unwrap(),
            src["grade"].as_str().unwrap(),
            "{src}"
        );
    }

    let Some(py) = python() else { return };
    let args = serde_json::json!({
        "reference": [rd.join("0/train.csv"), rd.join("1/train.csv"), rd.join("2/train.csv")],
        "reader": trainee,
    });
    let mut child = Command::new(py)
        .args(["-c", KAPPA_PY])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(args.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let sk: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(q["overall"]["findings"], sk["n"], "{q} {sk}");
    assert_eq!(q["consensus_labels"], sk["consensus"], "{q} {sk}");
    for (rep, w) in [(&q, "quadratic"), (&q2, "linear")] {
        let got = rep["overall"]["kappa"]["value"].as_f64().unwrap();
        let want = sk[w]["overall"].as_f64().unwrap();
        assert!((got - want).abs() < 1e-9, "{w}: {got} vs sklearn {want}");
        assert!(want < 0.999, "the perturbed reader is not perfect");
        for g in rep["by_group"].as_array().unwrap() {
            let name = g["group"].as_str().unwrap();
            let got = g["kappa"]["value"].as_f64();
            let want = sk[w][name].as_f64();
            match (got, want) {
                (Some(a), Some(b)) => assert!((a - b).abs() < 1e-9, "{w} {name}: {a} vs {b}"),
                // Undefined (a zero denominator) on both sides.
                (None, None) => {}
                (None, Some(b)) => panic!("{w} {name}: none where sklearn has {b}"),
                (Some(a), None) => panic!("{w} {name}: {a} where sklearn has none"),
            }
        }
    }
    assert_eq!(
        q["pass"],
        sk["quadratic"]["overall"].as_f64().unwrap() >= 0.6 && median <= 5.0
    );
}

#[test]
fn simulate_reports_reads_saved() {
    let out = ok(&[
        "reads",
        "--json",
        "simulate",
        "--studies",
        "40",
        "--replicates",
        "2",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    for r in v["replicates"].as_array().unwrap() {
        assert_eq!(r["baseline_reads"], 120);
        for p in r["protocols"].as_array().unwrap() {
            if let Some(reads) = p["reads"].as_u64() {
                assert_eq!(reads + p["reads_saved"].as_u64().unwrap(), 120, "{p}");
            }
        }
    }
    assert_eq!(v["summary"].as_array().unwrap().len(), 3);
}

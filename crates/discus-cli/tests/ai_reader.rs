//! `discus predict --explain --stability N` writes overlays, stability and findings pages; its output
//! imports into the reads store as an AI reader (`discus reads import --predictions`), and the
//! agreement between that reader and the human readers equals scikit-learn's Cohen's kappa computed
//! in Python from the same files (the readers' train.csv and the submission's most probable class).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

mod common;
use common::{ok, python, s};

/// Cohen's kappa (unweighted and quadratic) of reader `reader`'s train.csv against each prediction
/// folder's submission.csv, on the rows both graded, by scikit-learn.
const KAPPA_PY: &str = r#"
import csv, json, sys
from sklearn.metrics import cohen_kappa_score
args = json.load(sys.stdin)
names = ["Normal/Mild", "Moderate", "Severe"]
reader = {}
with open(args["train"]) as f:
    r = csv.reader(f)
    head = next(r)
    for row in r:
        for col, v in zip(head[1:], row[1:]):
            if v:
                reader[row[0] + "_" + col] = names.index(v)
out = {}
for name, sub in args["predictions"].items():
    ai = {}
    with open(sub) as f:
        r = csv.DictReader(f)
        for row in r:
            p = [float(row["normal_mild"]), float(row["moderate"]), float(row["severe"])]
            best = max(p)
            ai[row["row_id"]] = max(i for i in range(3) if p[i] == best)
    keys = sorted(set(reader) & set(ai))
    a = [reader[k] for k in keys]
    b = [ai[k] for k in keys]
    out[name] = {
        "n": len(keys),
        "cohen_kappa_unweighted": cohen_kappa_score(a, b, labels=[0, 1, 2]),
        "cohen_kappa_quadratic": cohen_kappa_score(a, b, labels=[0, 1, 2], weights="quadratic"),
    }
print(json.dumps(out))
"#;

/// A prediction folder made from a reader's grades with some rows changed (so the agreement is
/// neither perfect nor trivial): probabilities put 0.6 on the chosen grade.
fn noisy_predictions(train: &Path, out: &Path) {
    let text = std::fs::read_to_string(train).unwrap();
    let mut lines = text.lines();
    let head: Vec<&str> = lines.next().unwrap().split(',').collect();
    let mut sub = String::from("row_id,normal_mild,moderate,severe\n");
    let mut k = 0u32;
    for line in lines {
        let cells: Vec<&str> = line.split(',').collect();
        for (col, v) in head[1..].iter().zip(&cells[1..]) {
            let g = match *v {
                "Normal/Mild" => 0,
                "Moderate" => 1,
                "Severe" => 2,
                _ => continue,
            };
            k += 1;
            let g = if k % 4 == 0 { (g + 1) % 3 } else { g };
            let mut p = [0.2, 0.2, 0.2];
            p[g] = 0.6;
            sub.push_str(&format!("{}_{col},{},{},{}\n", cells[0], p[0], p[1], p[2]));
        }
    }
    std::fs::create_dir_all(out).unwrap();
    std::fs::write(out.join("submission.csv"), sub).unwrap();
}

#[test]
fn predictions_explain_and_import_as_an_ai_reader_with_sklearn_kappa() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = tmp.path().join("ds");
    ok(&[
        "synth",
        "--out",
        s(&ds),
        "--studies",
        "3",
        "--sites",
        "1",
        "--seed",
        "12",
        "--matrix-scale",
        "0.25",
        "--readers",
        "2",
    ]);
    let model = tmp.path().join("model");
    ok(&[
        "train",
        "--dataset",
        s(&ds),
        "--epochs",
        "2",
        "--seed",
        "4",
        "--out",
        s(&model),
    ]);
    let pred = tmp.path().join("pred");
    ok(&[
        "predict",
        "--model",
        s(&model),
        s(&ds),
        "--out",
        s(&pred),
        "--explain",
        "--stability",
        "3",
    ]);

    // findings.json references overlays that exist; stability is there; the pages link up.
    let index = std::fs::read_to_string(pred.join("index.html")).unwrap();
    let mut studies = 0;
    for e in std::fs::read_dir(&pred).unwrap() {
        let d = e.unwrap().path();
        if !d.is_dir() {
            continue;
        }
        studies += 1;
        let name = d.file_name().unwrap().to_str().unwrap().to_string();
        assert!(
            index.contains(&format!("href=\"{name}/index.html\"")),
            "{index}"
        );
        let f: serde_json::Value =
            serde_json::from_slice(&std::fs::read(d.join("findings.json")).unwrap()).unwrap();
        let page = std::fs::read_to_string(d.join("index.html")).unwrap();
        let findings = f["findings"].as_array().unwrap();
        assert_eq!(findings.len(), 25);
        let (mut heat, mut expl) = (0, 0);
        for fi in findings {
            if fi["point"].is_null() {
                continue;
            }
            for key in ["heatmap", "explanation"] {
                if let Some(png) = fi[key].as_str() {
                    assert!(d.join(png).is_file(), "{png} missing");
                    assert!(
                        page.contains(&format!("src=\"{png}\"")),
                        "{png} not on the page"
                    );
                    if key == "heatmap" {
                        heat += 1
                    } else {
                        expl += 1
                    }
                }
            }
            let st = &fi["stability"];
            assert_eq!(st["samples"], 3, "{fi}");
            assert_eq!(st["std"].as_array().unwrap().len(), 3);
        }
        assert_eq!(heat, 5, "one localiser heat map per canal finding");
        assert!(expl >= 15, "{expl} occlusion maps");
    }
    assert_eq!(studies, 3);

    // The model as a reader: its real output, and a folder of known, imperfect grades.
    let store = tmp.path().join("reads.sqlite");
    let reads = |args: &[&str]| -> String {
        let mut v = vec!["reads", "--dataset", s(&ds), "--store", s(&store), "--json"];
        v.extend_from_slice(args);
        ok(&v)
    };
    reads(&["import", "--readers-dir", s(&ds.join("readers"))]);
    let out = reads(&["import", "--reader", "ai:tiny", "--predictions", s(&pred)]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["grades"], 75, "{v}");
    assert!(v["points"].as_u64().unwrap() >= 45, "{v}");
    // Format detection: a prediction folder given as --train imports as predictions (same files:
    // nothing new recorded).
    let again = reads(&["import", "--reader", "ai:tiny", "--train", s(&pred)]);
    assert!(again.contains("AlreadyImported"), "{again}");
    let noisy = tmp.path().join("noisy");
    noisy_predictions(&ds.join("readers/0/train.csv"), &noisy);
    reads(&["import", "--reader", "ai:noisy", "--predictions", s(&noisy)]);

    let rep = tmp.path().join("rep");
    let out = reads(&["agreement", "--out", s(&rep), "--resamples", "20"]);
    let a: serde_json::Value = serde_json::from_str(&out).unwrap();
    let value = |x: &str, y: &str, stat: &str| -> (f64, u64) {
        let p = a["pairs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| (p["a"] == x && p["b"] == y) || (p["a"] == y && p["b"] == x))
            .unwrap_or_else(|| panic!("no pair {x} {y} in {a}"));
        let e = p["estimates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["statistic"] == stat)
            .unwrap();
        (
            e["value"].as_f64().unwrap(),
            p["findings"].as_u64().unwrap(),
        )
    };

    let Some(py) = python() else { return };
    let args = serde_json::json!({
        "train": ds.join("readers/0/train.csv"),
        "predictions": {"ai:tiny": pred.join("submission.csv"), "ai:noisy": noisy.join("submission.csv")},
    });
    let mut child = Command::new(&py)
        .args(["-c", KAPPA_PY])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(args.to_string().as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let want: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for ai in ["ai:tiny", "ai:noisy"] {
        for stat in ["cohen_kappa_unweighted", "cohen_kappa_quadratic"] {
            let (got, n) = value("0", ai, stat);
            let w = want[ai][stat].as_f64().unwrap();
            println!("{ai} {stat}: discus {got}, sklearn {w} over {n} findings");
            assert_eq!(n, want[ai]["n"].as_u64().unwrap());
            assert!(
                (got - w).abs() < 1e-9,
                "{ai} {stat}: discus {got}, sklearn {w}"
            );
        }
    }
    // The noisy reader agrees imperfectly but well: the check is not on a degenerate table.
    let (k, _) = value("0", "ai:noisy", "cohen_kappa_unweighted");
    assert!(k > 0.3 && k < 0.95, "{k}");
}

//! The reading room in headless Debian chromium (puppeteer-core from `web/test-tools`, installed by
//! `.ci/run` with `npm ci`): the viewer shows a synthetic study whose pixel-region checksum equals
//! pydicom's; the reference line of the axial slice on both sagittal views lies within 1 px of the
//! line computed in the browser from cornerstone's own reading of the headers; a click and keys
//! make the expected row in the reads store's SQLite; a blinded reader's calls never return another
//! reader's reads before submission; an adjudication decision makes the expected consensus label.
//! Screenshots are kept in `target/reader-test/`.

use discus_core::crosscheck::skip;
use discus_serve::reader::{ReaderConfig, ReaderState, RoundConfig};
use discus_synth::cohort::{generate, SynthConfig};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

const ANN: &str = "ann-token-0001";
const BOB: &str = "bob-token-0002";
const ADJ: &str = "adj-token-0003";

fn account(name: &str, token: &str, adjudicator: bool) -> discus_serve::reader::ReaderAccount {
    discus_serve::reader::ReaderAccount {
        name: name.into(),
        token: token.into(),
        rounds: if adjudicator {
            vec![]
        } else {
            vec!["first".into()]
        },
        adjudicator,
    }
}

/// Starts the reading room alone (no model needed) on a free port; returns its base URL.
fn serve(dataset: &Path, store: &Path) -> String {
    let mut config = ReaderConfig {
        dataset: dataset.to_path_buf(),
        store: Some(store.to_path_buf()),
        ai_readers: vec!["model".into()],
        rounds: vec![RoundConfig {
            name: "first".into(),
            ai_assisted: false,
        }],
        adjudication_round: "adjudication".into(),
        readers: vec![
            account("ann", ANN, false),
            account("bob", BOB, false),
            account("adj", ADJ, true),
        ],
    };
    config.resolve(Path::new(".")).unwrap();
    let state = ReaderState::open(config).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let l = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(l, discus_serve::reader::router(state))
                .await
                .unwrap();
        });
    });
    format!("http://{addr}")
}

fn call(method: &str, url: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    let auth = format!("Bearer {token}");
    let res = if method == "GET" {
        ureq::get(url).set("Authorization", &auth).call()
    } else {
        ureq::post(url)
            .set("Authorization", &auth)
            .set("Content-Type", "application/json")
            .send_string(&body.unwrap_or(json!({})).to_string())
    };
    let (status, resp) = match res {
        Ok(r) => (r.status(), r),
        Err(ureq::Error::Status(c, r)) => (c, r),
        Err(e) => panic!("{url}: {e}"),
    };
    let text = resp.into_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn tool(cmd: &str) -> Option<PathBuf> {
    let out = Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

fn python() -> Option<PathBuf> {
    let out = Command::new(root().join("scripts/pyvenv"))
        .args(["reader-pixels", "pydicom==3.0.2", "numpy==2.4.6"])
        .output()
        .expect("run scripts/pyvenv");
    match out.status.code() {
        Some(0) => Some(PathBuf::from(
            String::from_utf8(out.stdout).unwrap().trim().to_string(),
        )),
        Some(3) => {
            skip(String::from_utf8_lossy(&out.stderr).trim());
            None
        }
        _ => panic!(
            "scripts/pyvenv failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// Sum and sum of squares of rows 8..39, columns 8..39 of the modality-rescaled pixels, by pydicom.
const CHECKSUM_PY: &str = r#"
import sys, pydicom, numpy as np
from pydicom.pixels import apply_modality_lut
ds = pydicom.dcmread(sys.argv[1])
a = apply_modality_lut(ds.pixel_array, ds).astype(np.float64)[8:40, 8:40]
print(ds.Rows, ds.Columns, repr(float(a.sum())), repr(float((a * a).sum())))
"#;

fn dist(a: [f64; 2], b: [f64; 2]) -> f64 {
    (a[0] - b[0]).hypot(a[1] - b[1])
}

fn pt(v: &Value) -> [f64; 2] {
    [v[0].as_f64().unwrap(), v[1].as_f64().unwrap()]
}

/// Each end of `got` within `tol` px of an end of `want` (either order).
fn same_line(got: &Value, want: &Value, tol: f64) -> bool {
    let (g0, g1, w0, w1) = (pt(&got[0]), pt(&got[1]), pt(&want[0]), pt(&want[1]));
    (dist(g0, w0) <= tol && dist(g1, w1) <= tol) || (dist(g0, w1) <= tol && dist(g1, w0) <= tol)
}

#[test]
fn reading_room_in_chromium() {
    let tools = root().join("web/test-tools");
    if !tools.join("node_modules/puppeteer-core").is_dir() {
        skip("web/test-tools has no node_modules (run npm ci there; .ci/run does)");
        return;
    }
    let (Some(node), Some(_)) = (tool("node"), tool("chromium")) else {
        skip("node or chromium is not installed");
        return;
    };
    let Some(py) = python() else { return };
    let out = root().join("target/reader-test");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("cohort");
    generate(
        &data,
        &SynthConfig {
            studies: 2,
            sites: 1,
            seed: 5,
            readers: 1,
            quirk_rate: 0.0,
            matrix_scale: 0.5,
            ..Default::default()
        },
        &|_| {},
    )
    .unwrap();
    let store = dir.path().join("reads.sqlite");
    let base = serve(&data, &store);
    let api = format!("{base}/reader/api");

    // Bob reads the first study first: spinal canal L4/L5 Severe.
    let (_, next) = call("GET", &format!("{api}/next?round=first"), BOB, None);
    let study = next["study"].as_u64().unwrap();
    let sag_t2 = next["series"]["sag_t2"]["series"].as_u64().unwrap();
    let n = next["series"]["sag_t2"]["instances"][0].as_u64().unwrap();
    let (code, _) = call(
        "POST",
        &format!("{api}/reads"),
        BOB,
        Some(
            json!({"round": "first", "study": study, "series": sag_t2, "instance": n,
                    "x": 10.0, "y": 12.0, "condition": "spinal_canal_stenosis",
                    "level": "l4_l5", "grade": "Severe"}),
        ),
    );
    assert_eq!(code, 200);
    // Wrong token, other reader's round: refused.
    assert_eq!(
        call("GET", &format!("{api}/session"), "nope-nope-nope", None).0,
        401
    );
    assert_eq!(
        call("GET", &format!("{api}/next?round=second"), ANN, None).0,
        403
    );

    // Ann reads in the browser.
    let run = Command::new(&node)
        .arg(tools.join("reader_test.mjs"))
        .args([&base, ANN, out.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let r: Value = serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap_or_else(|e| {
        panic!(
            "browser script: {e}\n{stdout}\n{}",
            String::from_utf8_lossy(&run.stderr)
        )
    });
    std::fs::write(
        out.join("result.json"),
        serde_json::to_vec_pretty(&r).unwrap(),
    )
    .unwrap();
    assert!(r["failure"].is_null(), "browser: {}", r["failure"]);
    assert_eq!(r["study"].as_u64(), Some(study));

    // 1. Pixels: the region checksum of the axial slice shown equals pydicom's.
    let ax = r["series"]["ax_t2"].as_u64().unwrap();
    let ax_n = r["axial_instance"].as_i64().unwrap();
    let ds = discus_data::dataset::Dataset::open(&data).unwrap();
    let sr = ds
        .find_series(discus_core::StudyId(study), discus_core::SeriesId(ax))
        .unwrap()
        .unwrap();
    let file = ds.slice_file(&sr, ax_n).unwrap();
    let o = Command::new(&py)
        .args(["-c", CHECKSUM_PY, file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let f: Vec<f64> = String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    let c = &r["checksum"];
    assert_eq!(c["rows"].as_f64(), Some(f[0]));
    assert_eq!(c["columns"].as_f64(), Some(f[1]));
    assert!((c["sum"].as_f64().unwrap() - f[2]).abs() < 1e-6 * f[2].abs().max(1.0));
    assert!((c["sq"].as_f64().unwrap() - f[3]).abs() < 1e-6 * f[3].abs().max(1.0));

    // 2. Reference lines: discus's (API) and the drawn one within 1 px of the independent line.
    for role in ["sag_t1", "sag_t2"] {
        let l = &r["lines"][role];
        assert_eq!(l["expected"].as_array().map(|a| a.len()), Some(2), "{l}");
        assert!(same_line(&l["api"], &l["expected"], 1.0), "{role}: {l}");
        assert!(same_line(&l["drawn"], &l["expected"], 1.0), "{role}: {l}");
    }

    // 3. The click and keys made this row in SQLite.
    let p = &r["clicked"]["point"];
    let conn = rusqlite::Connection::open(&store).unwrap();
    let row: (
        i64,
        String,
        String,
        String,
        i64,
        i64,
        f64,
        f64,
        String,
        String,
    ) = conn
        .query_row(
            "SELECT e.study_id, e.condition, e.level, e.grade, e.series_id, e.instance_number,
                    e.x, e.y, r.name, o.name
             FROM events e JOIN readers r ON r.id = e.reader_id JOIN rounds o ON o.id = e.round_id
             WHERE r.name = 'ann'",
            [],
            |q| {
                Ok((
                    q.get(0)?,
                    q.get(1)?,
                    q.get(2)?,
                    q.get(3)?,
                    q.get(4)?,
                    q.get(5)?,
                    q.get(6)?,
                    q.get(7)?,
                    q.get(8)?,
                    q.get(9)?,
                ))
            },
        )
        .unwrap();
    assert_eq!(row.0 as u64, study);
    assert_eq!(
        (row.1.as_str(), row.2.as_str(), row.3.as_str()),
        ("spinal_canal_stenosis", "l4_l5", "Moderate")
    );
    assert_eq!(row.4 as u64, r["series"]["sag_t2"].as_u64().unwrap());
    assert_eq!(row.5, r["lines"]["sag_t2"]["instance"].as_i64().unwrap());
    // The click was in the middle of the view, where the fitted image's centre is.
    let sag = ds
        .find_series(
            discus_core::StudyId(study),
            discus_core::SeriesId(row.4 as u64),
        )
        .unwrap()
        .unwrap();
    let g = ds
        .slice(discus_core::StudyId(study), sag.series, row.5)
        .unwrap()
        .geometry;
    let centre = [(g.columns as f64 - 1.0) / 2.0, (g.rows as f64 - 1.0) / 2.0];
    assert!(dist([row.6, row.7], centre) < 3.0, "{row:?} vs {centre:?}");
    assert!((row.6 - p["x"].as_f64().unwrap()).abs() < 1e-9);
    assert_eq!((row.8.as_str(), row.9.as_str()), ("ann", "first"));

    // 4. Blinding: before submission the reader saw only her own read; after it, Bob's too.
    let before = &r["before_submit"];
    assert_eq!(before["own"].as_array().unwrap().len(), 1);
    assert!(before["others"].is_null() && before["ai"].is_null());
    assert!(!before.to_string().contains("\"bob\""));
    assert!(r["adjudication_as_reader"]
        .as_str()
        .unwrap()
        .contains("not an adjudicator"));
    assert_eq!(r["next_study"].as_u64().map(|s| s != study), Some(true));
    let after = &r["after_submit"];
    assert_eq!(after["others"][0]["reader"], "bob");
    // Bob (not submitted) still sees nothing of Ann's.
    let (_, bobs) = call(
        "GET",
        &format!("{api}/studies/{study}/reads?round=first"),
        BOB,
        None,
    );
    assert!(bobs["others"].is_null() && !bobs.to_string().contains("\"ann\""));
    // A read after submission is refused.
    let (code, _) = call(
        "POST",
        &format!("{api}/reads"),
        ANN,
        Some(
            json!({"round": "first", "study": study, "series": sag_t2, "instance": n,
                    "x": 10.0, "y": 12.0, "condition": "spinal_canal_stenosis",
                    "level": "l4_l5", "grade": "Severe"}),
        ),
    );
    assert_eq!(code, 409);

    // 5. Adjudication: the disagreement is listed with both points; the decision makes the label.
    let (code, wl) = call("GET", &format!("{api}/adjudication?round=first"), ADJ, None);
    assert_eq!(code, 200);
    let item = wl["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["study"].as_u64() == Some(study) && i["level"] == "l4_l5")
        .unwrap_or_else(|| panic!("{wl}"))
        .clone();
    assert_eq!(item["reads"].as_array().unwrap().len(), 2);
    // Both points are on the same sagittal series: distance = in-plane pixel distance x spacing
    // (+ slice offset), at least the in-plane part.
    assert!(item["max_distance_mm"].as_f64().is_some(), "{item}");
    let (code, dec) = call(
        "POST",
        &format!("{api}/adjudication"),
        ADJ,
        Some(
            json!({"round": "first", "study": study, "condition": "spinal_canal_stenosis",
                    "level": "l4_l5", "grade": "Severe"}),
        ),
    );
    assert_eq!(code, 200, "{dec}");
    let label = &dec["consensus"];
    assert_eq!(label["grade"], "Severe");
    assert_eq!(label["decided_by"], "adjudicated");
    assert_eq!(label["adjudicator"], "adj");
    let readers: Vec<&str> = label["reads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["reader"].as_str().unwrap())
        .collect();
    assert_eq!(readers, ["ann", "bob"]);
    let adj_event: i64 = conn
        .query_row(
            "SELECT e.id FROM events e JOIN rounds o ON o.id = e.round_id
             WHERE o.kind = 'adjudication' AND e.grade = 'Severe'",
            [],
            |q| q.get(0),
        )
        .unwrap();
    assert_eq!(label["adjudication_event"].as_i64(), Some(adj_event));

    eprintln!(
        "reader figures: first image {} ms, next study {} ms",
        r["first_image_ms"], r["next_study_ms"]
    );
}

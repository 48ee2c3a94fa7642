//! The reading room in headless Debian chromium (puppeteer-core from `web/test-tools`, installed by
//! `.ci/run` with `npm ci`): the viewer shows a synthetic study whose pixel-region checksum equals
//! pydicom's; the reference line of the axial slice on both sagittal views lies within 1 px of the
//! line computed in the browser from cornerstone's own reading of the headers; a click and keys
//! make the expected row in the reads store's SQLite; a blinded reader's calls never return another
//! reader's reads before submission; an adjudication decision makes the expected consensus label.
//! Then the labelling queue, AI proposals, training feedback and the protocol page: two readers
//! of an AI-assisted round get different studies in the order of the model's uncertainty (the
//! entropies computed here from the probabilities the test wrote); the proposal marker is drawn on
//! the proposal's point, `y` records a read equal to the AI read flagged assisted and accepted, a
//! click and a grade record it changed; a blinded round returns no proposal; a training round shows
//! the consensus grade and the point distance (pydicom's geometry) after submission, not before;
//! the protocol page shows its example images (PNG, 128 x 128).
//! Screenshots are kept in `target/reader-test/`.

use discus_core::crosscheck::skip;
use discus_serve::reader::{QueueOrder, ReaderConfig, ReaderState, RoundConfig};
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

const AI: &str = "ai:model";

fn account(name: &str, token: &str, rounds: &[&str]) -> discus_serve::reader::ReaderAccount {
    discus_serve::reader::ReaderAccount {
        name: name.into(),
        token: token.into(),
        rounds: rounds.iter().map(|r| r.to_string()).collect(),
        adjudicator: rounds.is_empty(),
    }
}

/// Starts the reading room alone (no model needed) on a free port; returns its base URL. Rounds:
/// `first` (blinded, dataset order; ann and bob), `assisted` (AI-assisted, uncertainty order
/// from `predictions`; ann and bob), `training` (over the consensus of `first`; ann).
fn serve(dataset: &Path, store: &Path, predictions: &Path) -> String {
    let mut config = ReaderConfig {
        dataset: dataset.to_path_buf(),
        store: Some(store.to_path_buf()),
        ai_readers: vec![AI.into()],
        rounds: vec![
            RoundConfig::new("first"),
            RoundConfig {
                ai_assisted: true,
                order: QueueOrder::Uncertainty,
                predictions: Some(predictions.to_path_buf()),
                ..RoundConfig::new("assisted")
            },
            RoundConfig {
                training_reference: Some("first".into()),
                ..RoundConfig::new("training")
            },
        ],
        adjudication_round: "adjudication".into(),
        readers: vec![
            account("ann", ANN, &["first", "assisted", "training"]),
            account("bob", BOB, &["first", "assisted"]),
            account("adj", ADJ, &[]),
        ],
        lease_secs: 600,
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

/// The distance (mm) between two points (instance file, column, row) in patient space, by pydicom:
/// position + x * row cosines * column spacing + y * column cosines * row spacing.
const DISTANCE_PY: &str = r#"
import sys, pydicom, numpy as np
def world(path, x, y):
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    o = np.array(ds.ImagePositionPatient, dtype=float)
    c = np.array(ds.ImageOrientationPatient, dtype=float)
    rs, cs = (float(v) for v in ds.PixelSpacing)
    return o + x * c[:3] * cs + y * c[3:] * rs
a = world(sys.argv[1], float(sys.argv[2]), float(sys.argv[3]))
b = world(sys.argv[4], float(sys.argv[5]), float(sys.argv[6]))
print(repr(float(np.linalg.norm(a - b))))
"#;

/// Probabilities for the test's AI reader: a fixed pseudo-random triple per row (a 64-bit LCG).
fn probs(seed: &mut u64) -> [f64; 3] {
    let mut next = || {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 33) as f64 / (1u64 << 31) as f64) * 0.98 + 0.01
    };
    let (a, b, c) = (next().powi(3), next().powi(3), next().powi(3));
    let z = a + b + c;
    [a / z, b / z, c / z]
}

/// The entropy (nats) of a probability triple, written out here independently of discus.
fn entropy_nats(p: [f64; 3]) -> f64 {
    let z: f64 = p.iter().sum();
    -p.iter().map(|v| v / z).map(|q| q * q.ln()).sum::<f64>()
}

/// The sagittal T2/STIR series of a study and the instance the viewer opens it on (the middle of
/// its largest stack), from the dataset.
fn sag_t2_middle(ds: &discus_data::dataset::Dataset, study: discus_core::StudyId) -> (u64, i64) {
    let sr = ds
        .series(study)
        .unwrap()
        .into_iter()
        .find(|s| s.kind == Some(discus_core::SeriesKind::SagittalT2Stir))
        .unwrap();
    let stacks = ds.stacks(&sr).unwrap();
    let stack = stacks.iter().max_by_key(|s| s.len()).unwrap();
    let n = stack.instance_numbers();
    (sr.series.0, n[n.len() / 2])
}

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
            studies: 3,
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
    let ds = discus_data::dataset::Dataset::open(&data).unwrap();
    let mut studies: Vec<u64> = ds.studies().unwrap().iter().map(|s| s.study.0).collect();
    studies.sort();
    assert_eq!(studies.len(), 3);

    // The AI reader: a `discus predict`-shaped folder (probabilities for every finding; points
    // for spinal canal L1/L2 and L2/L3 on the sagittal T2/STIR slice the viewer opens), imported
    // into the store as the model's reads.
    let pred = dir.path().join("pred");
    let mut csv = String::from("row_id,normal_mild,moderate,severe\n");
    let mut seed = 20261130u64;
    let mut entropy_of: Vec<(u64, f64)> = Vec::new();
    let mut ai_probs = std::collections::BTreeMap::new();
    for &st in &studies {
        let mut h = 0.0;
        for col in discus_core::LabelColumn::all() {
            let p = probs(&mut seed);
            h += entropy_nats(p);
            let row_id = format!("{st}_{}_{}", col.condition.key(), col.level.key());
            csv.push_str(&format!("{row_id},{},{},{}\n", p[0], p[1], p[2]));
            ai_probs.insert(row_id, p);
        }
        entropy_of.push((st, h));
        let (se, inst) = sag_t2_middle(&ds, discus_core::StudyId(st));
        let g = ds
            .slice(discus_core::StudyId(st), discus_core::SeriesId(se), inst)
            .unwrap()
            .geometry;
        let (w, hgt) = (g.columns as f64, g.rows as f64);
        std::fs::create_dir_all(pred.join(st.to_string())).unwrap();
        std::fs::write(
            pred.join(format!("{st}/findings.json")),
            json!({"study": st, "findings": [
                {"row_id": format!("{st}_spinal_canal_stenosis_l1_l2"),
                 "point": {"series": se, "instance": inst, "x": w * 0.42 + 0.25, "y": hgt * 0.3 + 0.5}},
                {"row_id": format!("{st}_spinal_canal_stenosis_l2_l3"),
                 "point": {"series": se, "instance": inst, "x": w * 0.44 + 0.75, "y": hgt * 0.4 + 0.5}},
            ], "notes": []})
            .to_string(),
        )
        .unwrap();
    }
    std::fs::write(pred.join("submission.csv"), csv).unwrap();
    {
        let mut st = discus_reads::store::ReadsStore::open(&store).unwrap();
        discus_reads::predictions::import_predictions(
            &mut st,
            None,
            &discus_reads::predictions::PredictionsRequest {
                reader: AI,
                round: "ai",
                round_kind: discus_reads::store::RoundKind::Blinded,
                dir: &pred,
                at: None,
            },
            &discus_core::progress::Progress::new(),
        )
        .unwrap();
    }
    // The queue's uncertainty order, computed here: the largest entropy sum first.
    let mut order = entropy_of.clone();
    order.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let order: Vec<u64> = order.into_iter().map(|(s, _)| s).collect();

    let base = serve(&data, &store, &pred);
    let api = format!("{base}/reader/api");

    // Bob reads the first study (by id) in round `first`: spinal canal L4/L5 Severe. (He does
    // not ask the queue for it, so Ann's `next` in the browser gets this study.)
    let study = studies[0];
    let sag_sr = ds
        .series(discus_core::StudyId(study))
        .unwrap()
        .into_iter()
        .find(|s| s.kind == Some(discus_core::SeriesKind::SagittalT2Stir))
        .unwrap();
    let sag_t2 = sag_sr.series.0;
    let n = ds
        .stacks(&sag_sr)
        .unwrap()
        .iter()
        .max_by_key(|s| s.len())
        .unwrap()
        .instance_numbers()[0];
    let (code, _) = call(
        "POST",
        &format!("{api}/reads?round=first"),
        BOB,
        Some(json!({"study": study, "series": sag_t2, "instance": n,
                    "x": 10.0, "y": 12.0, "condition": "spinal_canal_stenosis",
                    "level": "l4_l5", "grade": "Severe"})),
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
    assert_eq!(
        call("GET", &format!("{api}/next?round=training"), BOB, None).0,
        403
    );

    // The queue: Bob asks first in the AI-assisted round and gets the most uncertain study, again
    // when he asks again (his lease); Ann (in the browser) must get the second.
    let (_, b1) = call("GET", &format!("{api}/next?round=assisted"), BOB, None);
    assert_eq!(b1["study"].as_u64(), Some(order[0]), "{entropy_of:?}");
    let (_, b2) = call("GET", &format!("{api}/next?round=assisted"), BOB, None);
    assert_eq!(b2["study"].as_u64(), Some(order[0]));
    // A blinded round never answers with proposals (nor an unknown reader).
    let (code, body) = call(
        "GET",
        &format!("{api}/studies/{study}/proposals?round=first"),
        ANN,
        None,
    );
    assert_eq!(code, 403, "{body}");
    assert!(body.get("proposals").is_none() && !body.to_string().contains(AI));
    assert_eq!(
        call(
            "GET",
            &format!("{api}/studies/{study}/proposals?round=assisted"),
            "nope-nope-nope",
            None
        )
        .0,
        401
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
        &format!("{api}/reads?round=first"),
        ANN,
        Some(json!({"study": study, "series": sag_t2, "instance": n,
                    "x": 10.0, "y": 12.0, "condition": "spinal_canal_stenosis",
                    "level": "l4_l5", "grade": "Severe"})),
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

    // 6. The `?` overlay and the header link the protocol page; no proposal in the blinded round.
    let links = r["help_protocol_links"].to_string();
    assert!(links.matches("/reader/protocol").count() >= 2, "{links}");
    assert_eq!(
        r["proposals_in_blinded_round"],
        json!({"state": 0, "drawn": 0})
    );

    // 7. The AI-assisted round: Ann got the second most uncertain study; the marker is drawn on
    // the proposal's point; `y` recorded the AI read as hers, flagged assisted and accepted.
    let a = &r["assisted"];
    assert_eq!(a["study"].as_u64(), Some(order[1]), "{a}");
    let s1 = order[1];
    let ai_row = |level: &str| -> (String, i64, i64, f64, f64) {
        conn.query_row(
            "SELECT e.grade, e.series_id, e.instance_number, e.x, e.y FROM events e
             JOIN readers r ON r.id = e.reader_id
             WHERE r.name = ?1 AND e.study_id = ?2 AND e.condition = 'spinal_canal_stenosis' AND e.level = ?3",
            rusqlite::params![AI, s1 as i64, level],
            |q| Ok((q.get(0)?, q.get(1)?, q.get(2)?, q.get(3)?, q.get(4)?)),
        )
        .unwrap()
    };
    let ai1 = ai_row("l1_l2");
    // The AI read's grade is the most probable class of the probabilities written above.
    let p = ai_probs[&format!("{s1}_spinal_canal_stenosis_l1_l2")];
    let want = ["Normal/Mild", "Moderate", "Severe"]
        [(0..3).max_by(|i, j| p[*i].total_cmp(&p[*j])).unwrap()];
    assert_eq!(ai1.0, want);
    let marker = pt(&a["marker"]);
    assert!(
        dist(marker, [ai1.3, ai1.4]) < 1.0,
        "marker {marker:?} vs {ai1:?}"
    );
    assert_eq!(a["current"]["grade"], want);
    assert!(a["footer"].as_str().unwrap().contains(want), "{a}");
    let ann_row = |level: &str| -> (String, i64, i64, f64, f64, String, String, String) {
        conn.query_row(
            "SELECT e.grade, e.series_id, e.instance_number, e.x, e.y, e.note, x.outcome, x.source
             FROM events e JOIN readers r ON r.id = e.reader_id JOIN rounds o ON o.id = e.round_id
             JOIN assisted_reads x ON x.event_id = e.id
             WHERE r.name = 'ann' AND o.name = 'assisted' AND e.study_id = ?1
               AND e.condition = 'spinal_canal_stenosis' AND e.level = ?2",
            rusqlite::params![s1 as i64, level],
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
                ))
            },
        )
        .unwrap()
    };
    let acc = ann_row("l1_l2");
    assert_eq!(
        (&acc.0, acc.1, acc.2, acc.3, acc.4),
        (&ai1.0, ai1.1, ai1.2, ai1.3, ai1.4)
    );
    assert_eq!((acc.6.as_str(), acc.7.as_str()), ("accepted", AI));
    assert!(acc.5.contains("ai-assisted"), "{acc:?}");
    // L2/L3: a click in the middle of the view and `3`: the proposal changed.
    let ch = ann_row("l2_l3");
    let cp = &a["changed"]["point"];
    assert_eq!(ch.0, "Severe");
    assert!((ch.3 - cp["x"].as_f64().unwrap()).abs() < 1e-9);
    assert_ne!((ch.3, ch.4), (ai_row("l2_l3").3, ai_row("l2_l3").4));
    assert_eq!((ch.6.as_str(), ch.7.as_str()), ("changed", AI));
    // After submitting, Ann's next study is the third (the first is leased to Bob).
    assert_eq!(a["next_study"].as_u64(), Some(order[2]), "{a}");

    // 8. The training round: no feedback before submission; after it, the consensus of `first`
    // (Bob's Severe at his point: Ann is left out of her own reference) with the distance that
    // pydicom's geometry gives.
    let t = &r["training"];
    assert_eq!(t["study"].as_u64(), Some(study));
    assert!(t["before"]["refused"].as_str().is_some(), "{t}");
    assert_eq!(t["shown_before"], false);
    let row = t["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["row_id"] == format!("{study}_spinal_canal_stenosis_l4_l5"))
        .unwrap_or_else(|| panic!("{t}"));
    assert_eq!(row["consensus"], "Severe");
    let f = t["feedback"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["row_id"] == format!("{study}_spinal_canal_stenosis_l4_l5"))
        .unwrap();
    assert_eq!(
        (&f["grade"], &f["consensus_grade"]),
        (&json!("Moderate"), &json!("Severe"))
    );
    assert_eq!(f["consensus_point"]["instance"].as_i64(), Some(n as i64));
    let tp = &t["read"]["point"];
    let file_of = |inst: i64| {
        ds.slice_file(&sag_sr, inst)
            .unwrap()
            .to_str()
            .unwrap()
            .to_string()
    };
    let o = Command::new(&py)
        .args([
            "-c",
            DISTANCE_PY,
            &file_of(tp["instance"].as_i64().unwrap()),
            &tp["x"].as_f64().unwrap().to_string(),
            &tp["y"].as_f64().unwrap().to_string(),
            &file_of(n as i64),
            "10.0",
            "12.0",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mm: f64 = String::from_utf8_lossy(&o.stdout).trim().parse().unwrap();
    assert!(
        (f["distance_mm"].as_f64().unwrap() - mm).abs() < 1e-6,
        "{f} vs {mm}"
    );
    assert!(
        row["text"]
            .as_str()
            .unwrap()
            .contains(&format!("{mm:.1} mm")),
        "{row}"
    );
    assert_eq!(t["after"]["shown"], false);
    assert_ne!(t["after"]["study"].as_u64(), Some(study));

    // 9. The protocol page: 200 without a token, its example images with one (PNG, 128 x 128),
    // loaded by the page.
    let page = ureq::get(&format!("{base}/reader/protocol"))
        .call()
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.into_string().unwrap();
    assert!(html.contains("<h1>Annotation protocol</h1>") && html.contains("<table>"));
    let (code, list) = call("GET", &format!("{api}/protocol-images"), ANN, None);
    assert_eq!(code, 200);
    let images = list["images"].as_array().unwrap();
    assert_eq!(
        images.len() + list["missing"].as_array().unwrap().len(),
        9,
        "{list}"
    );
    assert!(images.len() >= 3, "{list}");
    for im in images {
        let file = im["file"].as_str().unwrap();
        assert!(
            html.contains(&format!("data-protocol-image=\"{file}\"")),
            "{file}"
        );
        let res = ureq::get(&format!("{api}/protocol-images/{file}"))
            .set("Authorization", &format!("Bearer {ANN}"))
            .call()
            .unwrap();
        let mut png = Vec::new();
        std::io::Read::read_to_end(&mut res.into_reader(), &mut png).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let be = |i: usize| u32::from_be_bytes([png[i], png[i + 1], png[i + 2], png[i + 3]]);
        assert_eq!((be(16), be(20)), (128, 128), "{file}");
    }
    assert_eq!(
        call(
            "GET",
            &format!("{api}/protocol-images/spinal_moderate.png"),
            "nope-nope-nope",
            None
        )
        .0,
        401
    );
    let shown = r["protocol"]["images"].as_array().unwrap();
    assert_eq!(r["protocol"]["title"], "Annotation protocol");
    assert_eq!(shown.len(), 9);
    for im in images {
        let s = shown
            .iter()
            .find(|x| x["file"] == im["file"])
            .unwrap_or_else(|| panic!("{im}"));
        assert_eq!(
            (&s["loaded"], &s["width"], &s["height"]),
            (&json!("1"), &json!(128), &json!(128))
        );
    }

    eprintln!(
        "reader figures: first image {} ms, next study {} ms, protocol page {} ms",
        r["first_image_ms"], r["next_study_ms"], r["protocol"]["ms"]
    );
}

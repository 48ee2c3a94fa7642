//! `discus compare` on synthetic cohorts: cohort B is cohort A's plan written with another site
//! profile (vendor and field strength) and a shifted label distribution (every graded spinal canal
//! stenosis level made Severe). The comparison must flag exactly vendor, field strength and the
//! spinal label cells that changed; a cohort against itself flags nothing. The divergences are
//! checked against scipy (`scipy.spatial.distance.jensenshannon`, squared, and `cityblock / 2`).

use discus_core::formats::read_train;
use discus_core::{Condition, Level, Severity};
use discus_eval::compare::{compare, dataset_facts, write_report, Comparison, FlagKind};
use discus_synth::cohort::{write_study, CohortPlan, SynthConfig};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn config() -> SynthConfig {
    SynthConfig {
        studies: 4,
        sites: 1,
        seed: 21,
        readers: 1,
        quirk_rate: 0.0,
        matrix_scale: 0.15,
        ..Default::default()
    }
}

/// Writes the cohort of [`config`] into `root`; `profile` replaces the site's vendor and field
/// strength, `severe_spinal` makes every graded spinal canal stenosis level Severe.
fn write_cohort(root: &Path, profile: Option<(&str, f64)>, severe_spinal: bool) -> CohortPlan {
    let cfg = config();
    let mut plan = CohortPlan::new(&cfg).unwrap();
    if let Some((vendor, tesla)) = profile {
        plan.sites[0].manufacturer = vendor.into();
        plan.sites[0].field_t = tesla;
    }
    if severe_spinal {
        for st in &mut plan.studies {
            for r in &mut st.reads {
                for l in Level::ALL {
                    let g = &mut r.grades.grades
                        [Condition::SpinalCanalStenosis.index() * 5 + l.index()];
                    if g.is_some() {
                        *g = Some(Severity::Severe);
                    }
                }
            }
        }
    }
    for st in &plan.studies {
        write_study(root, &cfg, st, &plan.sites[st.site]).unwrap();
    }
    plan.write_labels(root).unwrap();
    plan
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The python of a pinned virtualenv with scipy, or None (with the reason) when python3 is absent
/// and the cross-checks are not required (`DISCUS_REQUIRE_CROSSCHECKS=1` makes that a failure).
fn python() -> Option<PathBuf> {
    let out = Command::new(root().join("scripts/pyvenv"))
        .args(["compare-check", "numpy==1.26.4", "scipy==1.13.1"])
        .output()
        .expect("run scripts/pyvenv");
    match out.status.code() {
        Some(0) => Some(PathBuf::from(
            String::from_utf8(out.stdout).unwrap().trim().to_string(),
        )),
        Some(3) if std::env::var("DISCUS_REQUIRE_CROSSCHECKS").as_deref() != Ok("1") => {
            eprintln!("skipping: {}", String::from_utf8_lossy(&out.stderr).trim());
            None
        }
        _ => panic!(
            "scripts/pyvenv failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// Every (A counts, B counts, TV, JS) of a comparison, over the union of categories.
fn pairs(c: &Comparison) -> Vec<(Vec<u64>, Vec<u64>, f64, f64)> {
    let mut v = Vec::new();
    for f in &c.facets {
        let keys: BTreeSet<&String> = f.a.keys().chain(f.b.keys()).collect();
        let get = |m: &std::collections::BTreeMap<String, u64>, k: &String| {
            m.get(k).copied().unwrap_or(0)
        };
        if let Some(d) = f.divergence {
            v.push((
                keys.iter().map(|k| get(&f.a, k)).collect(),
                keys.iter().map(|k| get(&f.b, k)).collect(),
                d.total_variation,
                d.jensen_shannon_bits,
            ));
        }
    }
    for l in &c.labels {
        if let Some(d) = l.divergence {
            v.push((
                l.a.to_vec(),
                l.b.to_vec(),
                d.total_variation,
                d.jensen_shannon_bits,
            ));
        }
    }
    v
}

fn check_with_scipy(c: &Comparison) {
    let Some(py) = python() else { return };
    let cases = pairs(c);
    let json = serde_json::to_string(
        &cases
            .iter()
            .map(|(a, b, _, _)| (a.clone(), b.clone()))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let script = r#"
import json, sys
import numpy as np
from scipy.spatial.distance import jensenshannon, cityblock
out = []
for a, b in json.loads(sys.stdin.read()):
    p = np.array(a, float) / sum(a)
    q = np.array(b, float) / sum(b)
    out.append([cityblock(p, q) / 2, float(jensenshannon(p, q, base=2)) ** 2])
print(json.dumps(out))
"#;
    let mut child = Command::new(py)
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(json.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let expected: Vec<[f64; 2]> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(expected.len(), cases.len());
    let mut nonzero = 0;
    for ((a, b, tv, js), [tv_py, js_py]) in cases.iter().zip(&expected) {
        assert!(
            (tv - tv_py).abs() < 1e-12,
            "{a:?} {b:?}: TV {tv} vs {tv_py}"
        );
        // scipy's distance is the square root of the divergence: squaring loses a few digits near 0.
        assert!((js - js_py).abs() < 1e-9, "{a:?} {b:?}: JS {js} vs {js_py}");
        nonzero += (*js > 0.01) as usize;
    }
    assert!(nonzero >= 3, "the check covers real differences");
}

#[test]
fn compare_flags_exactly_the_site_profile_and_label_shift() {
    let tmp = tempfile::tempdir().unwrap();
    let (da, db) = (tmp.path().join("a"), tmp.path().join("b"));
    let plan = write_cohort(&da, None, false);
    let (vendor_a, tesla_a) = (plan.sites[0].manufacturer.clone(), plan.sites[0].field_t);
    let vendor_b = if vendor_a == "SIEMENS" {
        "Philips Medical Systems"
    } else {
        "SIEMENS"
    };
    let tesla_b = if tesla_a > 2.0 { 1.5 } else { 3.0 };
    write_cohort(&db, Some((vendor_b, tesla_b)), true);

    // No index yet: dataset_facts scans each dataset (and leaves the index).
    let fa = dataset_facts(&da, &|_| {}).unwrap();
    let fb = dataset_facts(&db, &|_| {}).unwrap();
    assert!(da.join(".discus/index.sqlite").is_file());
    assert_eq!(fa.studies, 4);
    assert_eq!(
        fa.series.len(),
        plan.studies.iter().map(|s| s.series.len()).sum::<usize>()
    );
    assert_eq!(fa.labelled_studies, 4);
    assert!(fa
        .series
        .iter()
        .all(|s| s.manufacturer.as_deref() == Some(vendor_a.as_str())));
    assert!(fb.series.iter().all(|s| s.field_strength == Some(tesla_b)));

    // A against itself: nothing flagged, every divergence 0.
    let same = compare(&fa, &fa);
    assert!(same.flags.is_empty(), "{:#?}", same.flags);
    assert!(same
        .facets
        .iter()
        .all(|f| f.divergence.unwrap().jensen_shannon_bits == 0.0));
    assert!(same
        .labels
        .iter()
        .filter_map(|l| l.divergence)
        .all(|d| d.total_variation == 0.0 && d.jensen_shannon_bits == 0.0));

    let c = compare(&fa, &fb);
    let facets: Vec<String> = c.flagged_facets().into_iter().collect();
    assert_eq!(
        facets,
        ["field_strength", "labels", "vendor"],
        "{:#?}",
        c.flags
    );
    // The vendor B has and A lacks, and B's field strength outside A's range.
    assert!(c.flags.iter().any(|f| f.facet == "vendor"
        && f.kind == FlagKind::NewCategory
        && f.item.as_deref() == Some(vendor_b)
        && f.message.contains(vendor_b)));
    assert!(c
        .flags
        .iter()
        .any(|f| f.facet == "field_strength" && f.kind == FlagKind::OutsideRange));
    for f in ["matrix", "slice_thickness", "series_kind"] {
        let fc = c.facets.iter().find(|x| x.facet.key() == f).unwrap();
        assert_eq!(fc.a, fc.b, "{f}: same plan, same series");
    }
    // The label cells flagged are exactly the spinal levels whose grades changed: those where A's
    // train.csv (read here, independently of the index) has a graded level that is not Severe.
    let train = read_train(&da.join("train.csv")).unwrap();
    let changed: BTreeSet<String> = Level::ALL
        .iter()
        .filter(|l| {
            let i = Condition::SpinalCanalStenosis.index() * 5 + l.index();
            train
                .rows
                .iter()
                .any(|r| matches!(r.grades[i], Some(g) if g != Severity::Severe))
        })
        .map(|l| format!("spinal_canal_stenosis_{}", l.key()))
        .collect();
    assert!(!changed.is_empty());
    let flagged: BTreeSet<String> = c
        .flags
        .iter()
        .filter(|f| f.facet == "labels")
        .map(|f| f.item.clone().unwrap())
        .collect();
    assert_eq!(flagged, changed);
    // Where A never grades Severe, B's Severe is a new category.
    for l in Level::ALL {
        let i = Condition::SpinalCanalStenosis.index() * 5 + l.index();
        let a_severe = train
            .rows
            .iter()
            .any(|r| r.grades[i] == Some(Severity::Severe));
        let b_graded = train.rows.iter().any(|r| r.grades[i].is_some());
        let key = format!("spinal_canal_stenosis_{}", l.key());
        let new = c
            .flags
            .iter()
            .any(|f| f.kind == FlagKind::NewCategory && f.item.as_deref() == Some(key.as_str()));
        assert_eq!(new, !a_severe && b_graded, "{key}");
    }

    check_with_scipy(&c);

    // The report folder: JSON with the flags, HTML with bar plots, a heat map and the flags.
    let out = tmp.path().join("cmp");
    let files = write_report(&out, &c).unwrap();
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&files.json).unwrap()).unwrap();
    assert_eq!(json["flags"].as_array().unwrap().len(), c.flags.len());
    let html = std::fs::read_to_string(&files.html).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    // 5 facet bar plots + the JS heat map + 5 per-condition bar plots.
    assert_eq!(html.matches("<svg").count(), 11);
    assert!(html.contains(vendor_b) && html.contains("which A does not have"));
    assert!(html.contains("outside A"));
    for outside in ["src=", "<link", "<script", "url("] {
        assert!(!html.contains(outside), "{outside}");
    }
}

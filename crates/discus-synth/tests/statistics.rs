//! Statistical properties of the synthetic cohort, on anatomy and labels only (no pixels): grade
//! frequencies against the real table (spec section 3), the geometry encoding the grade (spec
//! section 7), reader agreement in the radiologists' range, and the Bayes limit against a Monte Carlo
//! run of the competition metric (discus-core's implementation, itself cross-checked with
//! scikit-learn).

// Counts are indexed by (condition, level, grade) as in the spec table; index loops read clearer here.
#![allow(clippy::needless_range_loop, clippy::type_complexity)]

use discus_core::agreement::{cohen_kappa, Ratings, Weights};
use discus_core::formats::{StudyLabels, SubmissionRow};
use discus_core::metric::{score, Semantics};
use discus_core::{Condition, ConditionGroup, LabelColumn, Level, RowId, Severity};
use discus_synth::anatomy::{
    grade_of_degree, spec_proportions, Anatomy, Degeneration, SpineCoord, Tissue, FORAMEN_ROOT_R,
    RECESS_ROOT_R,
};
use discus_synth::cohort::{CohortPlan, SynthConfig};
use discus_synth::readers::optimal_prediction;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[test]
fn grade_frequencies_match_the_real_table() {
    let n = 2000;
    let mut rng = ChaCha8Rng::seed_from_u64(2024);
    let mut counts = [[[0usize; 3]; 5]; 5];
    let mut any_severe_spinal = 0;
    let mut pairs = Vec::new();
    for _ in 0..n {
        let d = Degeneration::sample(&mut rng);
        let mut sev = false;
        for c in 0..5 {
            for l in 0..5 {
                let g = grade_of_degree(d.degree(c, l));
                counts[c][l][g.index()] += 1;
                sev |= c == 0 && g == Severity::Severe;
            }
        }
        any_severe_spinal += sev as usize;
        pairs.push((
            d.spinal[2],
            d.spinal[3],
            d.foraminal[0][4],
            d.foraminal[1][4],
        ));
    }
    for c in 0..5 {
        for l in 0..5 {
            let want = spec_proportions(c, l);
            for k in 0..3 {
                let got = counts[c][l][k] as f64 / n as f64;
                assert!(
                    (got - want[k]).abs() < 0.035,
                    "{} {}: grade {k}: {got:.3} vs spec {:.3}",
                    Condition::ALL[c],
                    Level::ALL[l],
                    want[k]
                );
            }
        }
    }
    // 18.5% of real studies have at least one Severe spinal level.
    let frac = any_severe_spinal as f64 / n as f64;
    assert!((frac - 0.185).abs() < 0.04, "any severe spinal: {frac:.3}");
    // Levels and sides are correlated within a patient.
    let corr = |f: &dyn Fn(&(f64, f64, f64, f64)) -> (f64, f64)| {
        let v: Vec<(f64, f64)> = pairs.iter().map(f).collect();
        let m = v.len() as f64;
        let (ma, mb) = (
            v.iter().map(|p| p.0).sum::<f64>() / m,
            v.iter().map(|p| p.1).sum::<f64>() / m,
        );
        let cov = v.iter().map(|p| (p.0 - ma) * (p.1 - mb)).sum::<f64>();
        let va = v.iter().map(|p| (p.0 - ma).powi(2)).sum::<f64>();
        let vb = v.iter().map(|p| (p.1 - mb).powi(2)).sum::<f64>();
        cov / (va * vb).sqrt()
    };
    let levels = corr(&|p| (p.0, p.1));
    let sides = corr(&|p| (p.2, p.3));
    assert!(levels > 0.2 && levels < 0.7, "adjacent levels: {levels:.2}");
    assert!(sides > 0.5, "left/right foramen: {sides:.2}");
}

/// Probes the tissue model along a line and returns the runs of each tissue as (tissue, start, end).
fn runs(f: impl Fn(f64) -> Tissue, a: f64, b: f64, step: f64) -> Vec<(Tissue, f64, f64)> {
    let mut out: Vec<(Tissue, f64, f64)> = Vec::new();
    let mut t = a;
    while t <= b {
        let x = f(t);
        match out.last_mut() {
            Some(r) if r.0 == x => r.2 = t,
            _ => out.push((x, t, t)),
        }
        t += step;
    }
    out
}

/// The grade read off the geometry, by the rules of spec section 7.
fn measured_grades(a: &Anatomy, level: Level) -> [Severity; 5] {
    let j = discus_synth::anatomy::disc_of_level(level);
    let s = a.disc_s(j);
    let step = 0.005;
    // Spinal: narrowing of the sac's AP diameter at the disc, relative to this patient's normal sac.
    let r = runs(
        |d| a.tissue_at_spine(SpineCoord { s, x: 0.0, d }),
        0.0,
        a.lamina_d,
        step,
    );
    let sac: f64 = {
        let inside: Vec<_> = r
            .iter()
            .filter(|x| matches!(x.0, Tissue::Csf | Tissue::Nerve))
            .collect();
        inside.last().unwrap().2 - inside.first().unwrap().1 + step
    };
    let narrowing = 1.0 - sac / (2.0 * a.sac_rd);
    let spinal = grade_of_degree(narrowing);
    let mut out = [spinal; 5];
    for side in 0..2 {
        let sign = if side == 0 { 1.0 } else { -1.0 };
        // Foramen: along d through the exiting root: compressed root -> Severe; fat rim under half a
        // millimetre on both sides -> Moderate (obliterated at MR resolution); else Normal/Mild.
        let (_, fd, _, _, root_s) = a.foramen(j, side);
        let x = sign * a.foramen_x();
        let r = runs(
            |d| a.tissue_at_spine(SpineCoord { s: root_s, x, d }),
            fd - 8.0,
            fd + 8.0,
            step,
        );
        let k = r
            .iter()
            .position(|x| x.0 == Tissue::Nerve && x.1 <= fd && x.2 >= fd)
            .unwrap();
        let root = r[k].2 - r[k].1 + step;
        let rim = |i: Option<&(Tissue, f64, f64)>| match i {
            Some(x) if x.0 == Tissue::Fat => x.2 - x.1,
            _ => 0.0,
        };
        let fat = rim(r.get(k + 1)).min(rim(k.checked_sub(1).and_then(|i| r.get(i))));
        out[1 + side] = if root < 2.0 * FORAMEN_ROOT_R - 0.05 {
            Severity::Severe
        } else if fat < 0.444 {
            Severity::Moderate
        } else {
            Severity::NormalMild
        };
        // Recess: along x through the traversing root: compressed -> Severe; touched (no fat rim
        // laterally) -> Moderate; free -> Normal/Mild.
        let (xr, dr, _, _) = a.recess_at(s, j, side);
        let r = runs(
            |ax| {
                a.tissue_at_spine(SpineCoord {
                    s,
                    x: sign * ax,
                    d: dr,
                })
            },
            xr - 6.0,
            a.canal_w - 0.01,
            step,
        );
        let k = r
            .iter()
            .position(|x| x.0 == Tissue::Nerve && x.1 <= xr && x.2 >= xr)
            .unwrap();
        let root = r[k].2 - r[k].1 + step;
        let fat = rim(r.get(k + 1));
        out[3 + side] = if root < 2.0 * RECESS_ROOT_R - 0.05 {
            Severity::Severe
        } else if fat < 0.444 {
            Severity::Moderate
        } else {
            Severity::NormalMild
        };
    }
    out
}

#[test]
fn the_geometry_encodes_the_grade() {
    let mut rng = ChaCha8Rng::seed_from_u64(99);
    let mut checked = 0;
    for _ in 0..150 {
        let a = Anatomy::sample(&mut rng);
        for level in Level::ALL {
            let m = measured_grades(&a, level);
            for c in 0..5 {
                let deg = a.degeneration.degree(c, level.index());
                // Degrees within a hair of a threshold can measure either way at this step size.
                if (deg - 1.0 / 3.0).abs() < 0.01 || (deg - 2.0 / 3.0).abs() < 0.01 {
                    continue;
                }
                assert_eq!(
                    m[c],
                    grade_of_degree(deg),
                    "{} {level}: degree {deg:.3}",
                    Condition::ALL[c]
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 3500);
}

fn kappa(plan: &CohortPlan, a: usize, b: usize, keep: impl Fn(LabelColumn) -> bool) -> f64 {
    let (mut ca, mut cb) = (Vec::new(), Vec::new());
    for st in &plan.studies {
        for col in LabelColumn::all().into_iter().filter(|c| keep(*c)) {
            if let (Some(x), Some(y)) = (
                st.reads[a].grades.grades[col.index()],
                st.reads[b].grades.grades[col.index()],
            ) {
                ca.push(x.index());
                cb.push(y.index());
            }
        }
    }
    let r = Ratings::from_columns(3, &[&ca, &cb]).unwrap();
    cohen_kappa(&r, 0, 1, Weights::Identity).unwrap()
}

#[test]
fn readers_agree_like_radiologists() {
    let plan = CohortPlan::new(&SynthConfig {
        studies: 1500,
        readers: 3,
        ..Default::default()
    })
    .unwrap();
    let group = |g: ConditionGroup| move |c: LabelColumn| c.condition.group() == g;
    for (a, b) in [(0, 1), (0, 2), (1, 2)] {
        let all = kappa(&plan, a, b, |_| true);
        let sp = kappa(&plan, a, b, group(ConditionGroup::Spinal));
        let fo = kappa(&plan, a, b, group(ConditionGroup::Foraminal));
        let su = kappa(&plan, a, b, group(ConditionGroup::Subarticular));
        let l5 = kappa(&plan, a, b, |c| c.level == Level::L5S1);
        let upper = kappa(&plan, a, b, |c| c.level != Level::L5S1);
        for (name, k) in [
            ("all", all),
            ("spinal", sp),
            ("foraminal", fo),
            ("subarticular", su),
        ] {
            assert!(
                (0.45..=0.85).contains(&k),
                "readers {a},{b} {name}: kappa {k:.3}"
            );
        }
        assert!(
            fo < sp,
            "foraminal {fo:.3} should agree worse than spinal {sp:.3}"
        );
        assert!(
            l5 < upper,
            "L5/S1 {l5:.3} should agree worse than the other levels {upper:.3}"
        );
    }
}

/// The analytic Bayes limit equals the mean score, over many draws of reader 0's labels, of the
/// submission it describes, computed with discus-core's competition metric.
#[test]
fn bayes_limit_matches_monte_carlo_of_the_metric() {
    let plan = CohortPlan::new(&SynthConfig {
        studies: 300,
        readers: 1,
        ..Default::default()
    })
    .unwrap();
    let bl = plan.bayes_limit();
    let reader = &plan.readers[0];
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut submission = Vec::new();
    let mut probs = Vec::new();
    for st in &plan.studies {
        for col in LabelColumn::all() {
            if st.reads[0].grades.grades[col.index()].is_none() {
                continue;
            }
            let g = st
                .anatomy
                .degeneration
                .degree(col.condition.index(), col.level.index());
            let p = reader.label_probs(g, col.condition, col.level);
            submission.push(SubmissionRow {
                row_id: RowId::new(st.study, col.condition, col.level),
                probs: optimal_prediction(p),
            });
            probs.push((st.study, col, p));
        }
    }
    // Rows with no label get any prediction (they are not scored), so the submission is complete.
    for st in &plan.studies {
        for col in LabelColumn::all() {
            if st.reads[0].grades.grades[col.index()].is_none() {
                submission.push(SubmissionRow {
                    row_id: RowId::new(st.study, col.condition, col.level),
                    probs: [1.0 / 3.0; 3],
                });
            }
        }
    }
    let draws = 200;
    let mut total = 0.0;
    for _ in 0..draws {
        let mut labels: Vec<StudyLabels> = plan
            .studies
            .iter()
            .map(|s| StudyLabels::empty(s.study))
            .collect();
        for (study, col, p) in &probs {
            let u: f64 = rng.gen();
            let k = if u < p[0] {
                0
            } else if u < p[0] + p[1] {
                1
            } else {
                2
            };
            let i = plan.studies.iter().position(|s| s.study == *study).unwrap();
            labels[i].grades[col.index()] = Severity::from_index(k);
        }
        total += score(&labels, &submission, Semantics::Renormalize)
            .unwrap()
            .score;
    }
    let mc = total / draws as f64;
    assert!(
        (mc - bl.score).abs() < 0.01,
        "Monte Carlo {mc:.4} vs analytic {:.4}",
        bl.score
    );
    assert!(bl.lower_bound <= bl.score + 1e-12);
    // Far below the real data's constant-prior score and above a perfect one.
    assert!(bl.score > 0.05 && bl.score < 0.6, "{bl:?}");
}

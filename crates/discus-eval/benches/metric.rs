//! Speed of the metric on a full-size submission (2,000 studies x 25 rows) and of a bootstrap of
//! 1,000 resamples over those studies. Run: `cargo bench -p discus-eval --bench metric`.
//! Targets: scoring under 100 ms; bootstrap under 2 s. Also times the numbers of a whole report.

use criterion::{criterion_group, criterion_main, Criterion};
use discus_core::formats::{StudyLabels, SubmissionRow};
use discus_core::metric::{score, Joined, Semantics};
use discus_core::{LabelColumn, RowId, Severity, StudyId};
use discus_eval::report::{evaluate, EvalOptions};
use discus_eval::sites::StudyMeta;
use discus_eval::stats::bootstrap;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn cohort(n: usize) -> (Vec<StudyLabels>, Vec<SubmissionRow>) {
    let mut rng = ChaCha8Rng::seed_from_u64(2024);
    let mut labels = Vec::with_capacity(n);
    let mut rows = Vec::with_capacity(n * 25);
    for s in 0..n {
        let study = StudyId(4_000_000_000 + s as u64);
        let mut l = StudyLabels::empty(study);
        for c in 0..25 {
            let u: f64 = rng.gen();
            l.grades[c] = if u < 0.01 {
                None
            } else if u < 0.75 {
                Some(Severity::NormalMild)
            } else if u < 0.92 {
                Some(Severity::Moderate)
            } else {
                Some(Severity::Severe)
            };
        }
        labels.push(l);
        for column in LabelColumn::all() {
            let p: [f64; 3] = [rng.gen(), rng.gen(), rng.gen()];
            rows.push(SubmissionRow {
                row_id: RowId { study, column },
                probs: p,
            });
        }
    }
    // The submission in another order than the labels.
    rows.reverse();
    (labels, rows)
}

fn bench(c: &mut Criterion) {
    let (labels, rows) = cohort(2000);
    c.bench_function("score 2000 studies x 25 rows (join + check + score)", |b| {
        b.iter(|| score(&labels, &rows, Semantics::Renormalize).unwrap())
    });
    let terms = Joined::new(&labels, &rows, None)
        .unwrap()
        .study_terms(Semantics::Renormalize);
    let all: Vec<usize> = (0..labels.len()).collect();
    let mut g = c.benchmark_group("bootstrap");
    g.sample_size(10);
    g.bench_function("1000 resamples of 2000 studies", |b| {
        b.iter(|| bootstrap(&terms, &all, 1000, 1))
    });
    g.finish();

    // The whole report's numbers (no HTML): overall and 3 facets x sites bootstraps, 36 slices.
    let meta: std::collections::HashMap<StudyId, StudyMeta> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let m = StudyMeta {
                institution: Some(format!("site {}", i % 6)),
                manufacturer: Some(["SIEMENS", "GE", "Philips"][i % 3].into()),
                field_strength: Some([1.5, 3.0][i % 2]),
            };
            (l.study, m)
        })
        .collect();
    let mut g = c.benchmark_group("report");
    g.sample_size(10);
    g.bench_function("evaluate 2000 studies, 1000 resamples, 6 sites", |b| {
        b.iter(|| evaluate(&labels, &rows, None, &meta, vec![], EvalOptions::default()).unwrap())
    });
    g.finish();
}

// The group function `criterion_group!` defines is `pub`; kept in a private module so that it is
// not an exported item (which `missing_docs` would ask a doc comment for, and a macro call cannot
// carry one).
mod group {
    use super::*;
    criterion_group!(benches, bench);
}
criterion_main!(group::benches);

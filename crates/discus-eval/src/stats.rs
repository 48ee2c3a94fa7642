//! Evaluation maths over a joined submission ([`discus_core::metric::Joined`]): bootstrap intervals
//! over studies, and per-slice statistics (weighted log loss, confusion matrix at argmax, one-vs-rest
//! AUC, expected calibration error with its reliability curve).

use discus_core::metric::{row_probs, Joined, MetricScore, Semantics, StudyTerms};
use discus_core::{LabelColumn, Severity};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// A percentile bootstrap interval (2.5th and 97.5th percentiles) of the score and of each term.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// The score's interval, `[low, high]`.
    pub score: [f64; 2],
    /// spinal, foraminal, subarticular, any_severe_spinal.
    pub terms: [[f64; 2]; 4],
    /// Resamples drawn.
    pub resamples: usize,
    /// Resamples where some term had nothing to score (left out of the percentiles).
    pub undefined: usize,
    /// The resampled scores, for plotting the distribution.
    #[serde(skip)]
    pub samples: Vec<f64>,
}

/// The score of the studies at `members` (indices into the joined studies) with a bootstrap interval:
/// `resamples` resamples of `members` with replacement. Resample `b` draws from its own generator
/// seeded by `(seed, b)`, so the result does not depend on the number of threads.
pub fn bootstrap(
    terms: &StudyTerms,
    members: &[usize],
    resamples: usize,
    seed: u64,
) -> (MetricScore, Interval) {
    let point = terms.subset(members);
    let n = members.len();
    let draws: Vec<MetricScore> = (0..resamples)
        .into_par_iter()
        .map_init(
            || vec![0u32; terms.terms.len()],
            |counts, b| {
                counts.iter_mut().for_each(|c| *c = 0);
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                rng.set_stream(b as u64);
                for _ in 0..n {
                    counts[members[rng.gen_range(0..n)]] += 1;
                }
                terms.weighted(counts)
            },
        )
        .collect();
    let ok: Vec<&MetricScore> = draws.iter().filter(|s| s.score.is_finite()).collect();
    let pct = |mut v: Vec<f64>| -> [f64; 2] {
        v.sort_by(f64::total_cmp);
        [percentile(&v, 2.5), percentile(&v, 97.5)]
    };
    let samples: Vec<f64> = ok.iter().map(|s| s.score).collect();
    let interval = Interval {
        score: pct(samples.clone()),
        terms: std::array::from_fn(|k| pct(ok.iter().map(|s| s.terms()[k]).collect())),
        resamples,
        undefined: draws.len() - ok.len(),
        samples,
    };
    (point, interval)
}

/// The `q`th percentile (`q` in `[0, 100]`) of sorted values, interpolating linearly between order
/// statistics (numpy's default): [`discus_core::stats::quantile_sorted`]. NaN when empty.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    discus_core::stats::quantile_sorted(sorted, q / 100.0).unwrap_or(f64::NAN)
}

/// One bin of a reliability curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bin {
    /// The bin's lower confidence bound.
    pub lo: f64,
    /// The bin's upper confidence bound.
    pub hi: f64,
    /// Rows whose top-label confidence falls in the bin.
    pub count: u64,
    /// Mean confidence in the bin.
    pub confidence: f64,
    /// Fraction correct in the bin.
    pub accuracy: f64,
}

/// Statistics of the scored rows of one slice (a condition, a level, a condition x level, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SliceStats {
    /// The slice's name: `all rows`, a condition key, a level key or `<condition>_<level>`.
    pub name: String,
    /// Scored rows in the slice.
    pub rows: u64,
    /// Rows per true grade (Normal/Mild, Moderate, Severe).
    pub support: [u64; 3],
    /// sum(w * -ln q_true) / sum(w), w = 1, 2, 4 by true grade.
    pub weighted_log_loss: f64,
    /// `confusion[true][predicted]`, predicted = the grade of highest probability (first on ties).
    pub confusion: [[u64; 3]; 3],
    /// One-vs-rest AUC of Moderate or Severe vs Normal/Mild, scored by q_moderate + q_severe;
    /// None when one side is empty.
    pub auc_moderate_plus: Option<f64>,
    /// One-vs-rest AUC of Severe vs the rest, scored by q_severe.
    pub auc_severe: Option<f64>,
    /// Top-label expected calibration error over 10 equal-width confidence bins:
    /// sum over bins of (bin rows / rows) x |accuracy - mean confidence|.
    pub ece: f64,
    /// The reliability curve: one bin per equal-width confidence bin (10).
    pub reliability: Vec<Bin>,
}

/// Number of equal-width bins of the reliability curve and ECE.
pub const ECE_BINS: usize = 10;

/// Statistics over the scored rows `j` (indices into `joined.truth` / `joined.probs`) that `keep`
/// selects. None when no row is scored.
pub fn slice_stats(
    name: String,
    joined: &Joined,
    semantics: Semantics,
    keep: impl Fn(usize, LabelColumn) -> bool,
) -> Option<SliceStats> {
    let mut num = 0.0;
    let mut den = 0.0;
    let mut confusion = [[0u64; 3]; 3];
    let mut support = [0u64; 3];
    let mut mod_plus: Vec<(f64, bool)> = Vec::new();
    let mut severe: Vec<(f64, bool)> = Vec::new();
    let mut bins = vec![(0u64, 0.0f64, 0u64); ECE_BINS];
    for (j, truth) in joined.truth.iter().enumerate() {
        let Some(t) = *truth else { continue };
        let column = LabelColumn::from_index(j % 25).expect("index < 25");
        if !keep(j / 25, column) {
            continue;
        }
        let q = row_probs(&joined.probs[j], semantics);
        let w = t.weight();
        num += w * discus_core::metric::row_loss(&joined.probs[j], t, semantics);
        den += w;
        support[t.index()] += 1;
        let pred = argmax(&q);
        confusion[t.index()][pred] += 1;
        mod_plus.push((q[1] + q[2], t >= Severity::Moderate));
        severe.push((q[2], t == Severity::Severe));
        // Top-label confidence of the normalised probabilities (so bins are in [0, 1]).
        let total = q[0] + q[1] + q[2];
        let conf = (q[pred] / total).clamp(0.0, 1.0);
        let b = ((conf * ECE_BINS as f64) as usize).min(ECE_BINS - 1);
        bins[b].0 += 1;
        bins[b].1 += conf;
        bins[b].2 += (pred == t.index()) as u64;
    }
    let rows: u64 = support.iter().sum();
    if rows == 0 {
        return None;
    }
    let mut ece = 0.0;
    let reliability = bins
        .iter()
        .enumerate()
        .map(|(b, &(n, conf, correct))| {
            let (c, a) = if n > 0 {
                (conf / n as f64, correct as f64 / n as f64)
            } else {
                (f64::NAN, f64::NAN)
            };
            if n > 0 {
                ece += n as f64 / rows as f64 * (a - c).abs();
            }
            Bin {
                lo: b as f64 / ECE_BINS as f64,
                hi: (b + 1) as f64 / ECE_BINS as f64,
                count: n,
                confidence: c,
                accuracy: a,
            }
        })
        .collect();
    Some(SliceStats {
        name,
        rows,
        support,
        weighted_log_loss: num / den,
        confusion,
        auc_moderate_plus: auc(&mut mod_plus),
        auc_severe: auc(&mut severe),
        ece,
        reliability,
    })
}

fn argmax(q: &[f64; 3]) -> usize {
    let mut best = 0;
    for k in 1..3 {
        if q[k] > q[best] {
            best = k;
        }
    }
    best
}

/// Area under the ROC curve of (score, is_positive) pairs: the probability that a random positive
/// scores above a random negative, ties counting one half (Mann-Whitney U with average ranks).
/// None when there is no positive or no negative.
pub fn auc(pairs: &mut [(f64, bool)]) -> Option<f64> {
    let pos = pairs.iter().filter(|p| p.1).count();
    let neg = pairs.len() - pos;
    if pos == 0 || neg == 0 {
        return None;
    }
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < pairs.len() {
        let mut k = i;
        while k + 1 < pairs.len() && pairs[k + 1].0 == pairs[i].0 {
            k += 1;
        }
        // ranks i+1 ..= k+1 share their average
        let avg = (i + k + 2) as f64 / 2.0;
        rank_sum += avg * pairs[i..=k].iter().filter(|p| p.1).count() as f64;
        i = k + 1;
    }
    let u = rank_sum - (pos * (pos + 1)) as f64 / 2.0;
    Some(u / (pos as f64 * neg as f64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use discus_core::formats::{StudyLabels, SubmissionRow};
    use discus_core::metric::Joined;
    use discus_core::{RowId, StudyId};

    #[test]
    fn auc_by_hand() {
        // positives 0.8, 0.4; negatives 0.5, 0.1: pairs (0.8>0.5, 0.8>0.1, 0.4<0.5, 0.4>0.1) = 3/4
        let mut v = vec![(0.8, true), (0.4, true), (0.5, false), (0.1, false)];
        assert_eq!(auc(&mut v), Some(0.75));
        // a tie counts one half: (0.5 vs 0.5) = 1/2
        let mut v = vec![(0.5, true), (0.5, false)];
        assert_eq!(auc(&mut v), Some(0.5));
        let mut v = vec![(0.5, true)];
        assert_eq!(auc(&mut v), None);
    }

    #[test]
    fn percentile_like_numpy() {
        // numpy.percentile([1, 2, 3, 4], [2.5, 97.5]) = [1.075, 3.925]
        let v = [1.0, 2.0, 3.0, 4.0];
        assert!((percentile(&v, 2.5) - 1.075).abs() < 1e-12);
        assert!((percentile(&v, 97.5) - 3.925).abs() < 1e-12);
    }

    fn joined(n: usize) -> Joined {
        let mut labels = Vec::new();
        let mut rows = Vec::new();
        for s in 0..n {
            let mut l = StudyLabels::empty(StudyId(s as u64));
            for c in 0..25 {
                l.grades[c] = Severity::from_index((s + c) % 3);
            }
            labels.push(l);
            for column in LabelColumn::all() {
                let t = (s + column.index()) % 3;
                let mut p = [0.2, 0.2, 0.2];
                p[(t + s % 2) % 3] = 0.6; // right on even studies, wrong on odd ones
                rows.push(SubmissionRow {
                    row_id: RowId {
                        study: StudyId(s as u64),
                        column,
                    },
                    probs: p,
                });
            }
        }
        Joined::new(&labels, &rows, None).unwrap()
    }

    #[test]
    fn slice_confusion_and_ece() {
        let j = joined(4);
        let s = slice_stats("all".into(), &j, Semantics::Renormalize, |_, _| true).unwrap();
        assert_eq!(s.rows, 100);
        // Even studies predicted right, odd ones one grade up (mod 3).
        let diag: u64 = (0..3).map(|k| s.confusion[k][k]).sum();
        assert_eq!(diag, 50);
        // Every row has confidence 0.6; half right: ECE = |0.5 - 0.6| = 0.1.
        assert!((s.ece - 0.1).abs() < 1e-12, "{}", s.ece);
        assert!(s.reliability.iter().any(|b| b.count == 100));
        // Loss: right rows -ln 0.6, wrong rows -ln 0.2, weights by grade.
        let w: f64 = j.truth.iter().map(|t| t.unwrap().weight()).sum();
        let mut num = 0.0;
        for (i, t) in j.truth.iter().enumerate() {
            let right = (i / 25) % 2 == 0;
            num += t.unwrap().weight() * -(if right { 0.6f64 } else { 0.2 }).ln();
        }
        assert!((s.weighted_log_loss - num / w).abs() < 1e-12);
        let none = slice_stats("none".into(), &j, Semantics::Renormalize, |_, _| false);
        assert!(none.is_none());
    }

    #[test]
    fn bootstrap_is_seeded_and_brackets_the_score() {
        let j = joined(40);
        let t = j.study_terms(Semantics::Renormalize);
        let all: Vec<usize> = (0..40).collect();
        let (p, a) = bootstrap(&t, &all, 200, 7);
        let (_, b) = bootstrap(&t, &all, 200, 7);
        assert_eq!(a, b);
        assert_eq!(a.samples, b.samples);
        let (_, c) = bootstrap(&t, &all, 200, 8);
        assert_ne!(a.samples, c.samples);
        assert!(
            a.score[0] < p.score && p.score < a.score[1],
            "{a:?} {}",
            p.score
        );
        assert_eq!(a.resamples, 200);
    }
}

//! Simulated readers and the Bayes limit of the competition score on their labels.
//!
//! ## Reader model
//! Reader `r` perceives each true degree `g` (see [`crate::anatomy`]) with its own bias and noise,
//! `g' = g + b_r + sigma_r * k_condition * k_level * e`, `e ~ N(0, 1)` independent per finding, and
//! grades `g'` with the same 1/3 and 2/3 thresholds. Confusions are therefore between adjacent grades,
//! foraminal findings (k = 1.45) and L5/S1 (k = 1.3) are noisier, and
//! `P(label = k | g) = Phi((t_{k+1} - g - b_r) / s) - Phi((t_k - g - b_r) / s)` with
//! `t = (-inf, 1/3, 2/3, +inf)` and `s = sigma_r k_c k_l`. Points are jittered in-plane by a
//! reader-specific standard deviation (mm).
//!
//! ## Bayes limit
//! The competition scores a prediction `q` of a label `y` (reader 0's grade, as in train.csv) with the
//! weighted log loss `sum_i w_{y_i} (-ln q_{i,y_i}) / sum_i w_{y_i}` per condition group, `w = 1, 2, 4`.
//! The best any model can know about a finding is its true degree, so the best prediction is a function
//! of `p_k = P(y = k | g)`. For one row, minimising the expected numerator `sum_k p_k w_k (-ln q_k)`
//! under `sum_k q_k = 1` gives `q_k = w_k p_k / sum_j w_j p_j` (the weights tilt the optimum towards
//! severe grades; the denominator does not depend on `q`). Over a cohort the group loss is a ratio of
//! sums; for many rows its expectation is the ratio of expectations,
//! `L_group = sum_i sum_k p_ik w_k (-ln q_ik) / sum_i sum_k p_ik w_k` (rows with a missing label are
//! not scored and left out).
//!
//! The `any_severe_spinal` term couples the spinal rows of a study: with independent reader noise,
//! `P(y=1) = 1 - prod_l (1 - p_l,severe)`, the study weight `v` is 4 if any label is Severe, 2 if the
//! worst is Moderate, 1 otherwise, and the prediction is `p = max_l q_l,severe` (raw severe values).
//! Its expected contribution is `4 P(S)(-ln p) + (2 P(M) + P(N)) (-ln(1-p))` over `E[v]`. We report:
//! - `score`: the expected score of the submission `q` above (achievable: a model that knew the true
//!   degrees would submit it), with the any_severe term evaluated at `p = max_l q_l,severe`;
//! - `lower_bound`: the same with the any_severe term at its own per-study optimum
//!   `p* = 4 P(S) / E[v]`, which the spinal rows' `q` need not allow; the true optimum lies between.

use crate::anatomy::norm_cdf;
use discus_core::{Condition, Level, Severity};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// One simulated reader.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reader {
    /// Position of the reader (0 is the designated reader whose reads are train.csv).
    pub index: usize,
    /// Bias added to every perceived degree.
    pub bias: f64,
    /// Base noise of the perceived degree.
    pub sigma: f64,
    /// In-plane point jitter, mm.
    pub point_sigma_mm: f64,
}

const THRESHOLDS: [f64; 2] = [1.0 / 3.0, 2.0 / 3.0];

impl Reader {
    /// Draws `count` readers with their own bias, noise and point jitter.
    pub fn make(count: usize, rng: &mut ChaCha8Rng) -> Vec<Reader> {
        (0..count)
            .map(|index| Reader {
                index,
                bias: rng.gen_range(-0.03..0.03),
                sigma: rng.gen_range(0.06..0.09),
                point_sigma_mm: rng.gen_range(1.0..2.5),
            })
            .collect()
    }

    /// Noise standard deviation for a finding.
    pub fn noise_sd(&self, condition: Condition, level: Level) -> f64 {
        let kc = match condition.group() {
            discus_core::ConditionGroup::Spinal => 1.0,
            discus_core::ConditionGroup::Foraminal => 1.45,
            discus_core::ConditionGroup::Subarticular => 1.2,
        };
        let kl = if level == Level::L5S1 { 1.3 } else { 1.0 };
        self.sigma * kc * kl
    }

    /// `P(label = k | true degree)` for k = Normal/Mild, Moderate, Severe.
    pub fn label_probs(&self, degree: f64, condition: Condition, level: Level) -> [f64; 3] {
        let s = self.noise_sd(condition, level);
        let m = degree + self.bias;
        let c0 = norm_cdf((THRESHOLDS[0] - m) / s);
        let c1 = norm_cdf((THRESHOLDS[1] - m) / s);
        [c0, (c1 - c0).max(0.0), (1.0 - c1).max(0.0)]
    }

    /// One read of a finding.
    pub fn grade(&self, degree: f64, condition: Condition, level: Level, e: f64) -> Severity {
        crate::anatomy::grade_of_degree(degree + self.bias + self.noise_sd(condition, level) * e)
    }
}

/// Expected competition score terms of the Bayes-optimal prediction.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BayesLimit {
    /// Expected competition score of the Bayes-optimal submission (see the module docs).
    pub score: f64,
    /// The same with the any_severe term at its per-study optimum; the true optimum lies between.
    pub lower_bound: f64,
    /// Expected spinal term.
    pub spinal: f64,
    /// Expected foraminal term.
    pub foraminal: f64,
    /// Expected subarticular term.
    pub subarticular: f64,
    /// Expected any_severe term at `p = max_l q_l,severe`.
    pub any_severe: f64,
    /// Expected any_severe term at its per-study optimum.
    pub any_severe_lower: f64,
}

/// One scored finding: its label probabilities under the designated reader.
#[derive(Debug, Clone, Copy)]
pub struct ScoredFinding {
    /// Index of the study in the cohort.
    pub study: usize,
    /// The graded condition.
    pub condition: Condition,
    /// The disc level.
    pub level: Level,
    /// Probabilities of the designated reader's label being Normal/Mild, Moderate, Severe.
    pub probs: [f64; 3],
}

const W: [f64; 3] = [1.0, 2.0, 4.0];
const EPS: f64 = 2.220446049250313e-16;

/// The weighted-optimal prediction for label probabilities `p`.
pub fn optimal_prediction(p: [f64; 3]) -> [f64; 3] {
    let z: f64 = (0..3).map(|k| W[k] * p[k]).sum();
    std::array::from_fn(|k| W[k] * p[k] / z)
}

/// The expected score (see the module doc) over findings; `studies` is the number of studies.
pub fn bayes_limit(findings: &[ScoredFinding], studies: usize) -> BayesLimit {
    let mut num = [0.0; 3];
    let mut den = [0.0; 3];
    let mut spinal: Vec<Vec<[f64; 3]>> = vec![Vec::new(); studies];
    for f in findings {
        let q = optimal_prediction(f.probs);
        let g = f.condition.group() as usize;
        for k in 0..3 {
            num[g] += f.probs[k] * W[k] * -(q[k].clamp(EPS, 1.0 - EPS)).ln();
            den[g] += f.probs[k] * W[k];
        }
        if f.condition == Condition::SpinalCanalStenosis {
            spinal[f.study].push(f.probs);
        }
    }
    let (mut an, mut an_lo, mut ad) = (0.0, 0.0, 0.0);
    for rows in spinal.iter().filter(|r| !r.is_empty()) {
        let p_none_severe: f64 = rows.iter().map(|p| 1.0 - p[2]).product();
        let p_all_normal: f64 = rows.iter().map(|p| p[0]).product();
        let ps = 1.0 - p_none_severe;
        let pm = p_none_severe - p_all_normal;
        let pn = p_all_normal;
        let pred = rows
            .iter()
            .map(|p| optimal_prediction(*p)[2])
            .fold(0.0, f64::max)
            .clamp(EPS, 1.0 - EPS);
        let ev = 4.0 * ps + 2.0 * pm + pn;
        let term = |p: f64| 4.0 * ps * -p.ln() + (2.0 * pm + pn) * -(1.0 - p).ln();
        an += term(pred);
        an_lo += term((4.0 * ps / ev).clamp(EPS, 1.0 - EPS));
        ad += ev;
    }
    let r = |n: f64, d: f64| if d > 0.0 { n / d } else { 0.0 };
    let (sp, fo, su) = (r(num[0], den[0]), r(num[1], den[1]), r(num[2], den[2]));
    let (any, any_lo) = (r(an, ad), r(an_lo, ad));
    BayesLimit {
        score: (sp + fo + su + any) / 4.0,
        lower_bound: (sp + fo + su + any_lo) / 4.0,
        spinal: sp,
        foraminal: fo,
        subarticular: su,
        any_severe: any,
        any_severe_lower: any_lo,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn optimal_prediction_minimises_weighted_loss() {
        // Brute force over a grid of predictions: no q beats the closed form.
        let p = [0.6, 0.3, 0.1];
        let loss = |q: [f64; 3]| -> f64 { (0..3).map(|k| p[k] * W[k] * -q[k].ln()).sum() };
        let best = loss(optimal_prediction(p));
        for a in 1..100 {
            for b in 1..(100 - a) {
                let q = [
                    a as f64 / 100.0,
                    b as f64 / 100.0,
                    (100 - a - b) as f64 / 100.0,
                ];
                assert!(loss(q) >= best - 1e-12, "{q:?}");
            }
        }
    }

    #[test]
    fn perfect_readers_score_zero_any_severe_ok() {
        // A reader with no noise on a finding far from a threshold: the limit is ~0.
        let f = ScoredFinding {
            study: 0,
            condition: Condition::SpinalCanalStenosis,
            level: Level::L1L2,
            probs: [1.0, 0.0, 0.0],
        };
        let b = bayes_limit(&[f], 1);
        assert!(b.score < 1e-9, "{b:?}");
        // A coin flip between Normal/Mild and Moderate: spinal term = ln 3 weighted... check closed form:
        // q = (1/3, 2/3, 0); loss = (0.5*1*ln3 + 0.5*2*ln(3/2)) / 1.5.
        let f2 = ScoredFinding {
            probs: [0.5, 0.5, 0.0],
            ..f
        };
        let b2 = bayes_limit(&[f2], 1);
        let want = (0.5 * 3f64.ln() + 1.0 * 1.5f64.ln()) / 1.5;
        assert!((b2.spinal - want).abs() < 1e-12);
    }
}

//! Temperature scaling (Guo et al., 2017): one scalar `T > 0` per condition group divides the
//! grader's logits before the softmax. It is fitted after training on the held-out fold (fold 0 of
//! `--folds`, studies never trained on) by minimising the severity-weighted negative
//! log-likelihood (the weights 1/2/4 of the competition metric) over `log T` with a golden-section
//! search on `[1/20, 20]`; it is stored in `model.toml` (`temperatures`, by group name) and applied
//! by `predict`. Without a held-out fold every temperature is 1. Temperature scaling keeps the
//! arg-max, so grades do not change; only the probabilities do.
//!
//! **Fitted where prediction grades** ([`fit_on_predictions`]): the graders are trained and
//! their best epoch chosen on crops at the labelled points, but prediction grades crops at the
//! localised ones, a slice or a few mm off for some findings. Temperatures fitted on the held-out
//! fold's crops at the labelled points came out near 1, while on the benchmark's held-out studies
//! the best scale of the logits was 0.80-0.89 (seed-20261206 `model_g`, by group), so training
//! fits them on the held-out fold's *predictions* (the whole pipeline, localisers included), and
//! `discus model calibrate` refits a model on any labelled studies, e.g. a site's own.

use crate::predict::predict_study;
use crate::{Model, ModelError};
use discus_core::governance::{load_card, Provenance};
use discus_core::{ConditionGroup, LabelColumn, StudyId};
use discus_data::dataset::Dataset;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Softmax of `logits / t`.
pub fn softmax_t(logits: &[f64; 3], t: f64) -> [f64; 3] {
    let z = logits.map(|v| v / t);
    let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e = z.map(|v| (v - m).exp());
    let s: f64 = e.iter().sum();
    e.map(|v| v / s)
}

/// Weighted mean negative log-likelihood of `labels` under `softmax(logits / t)`.
pub fn nll(logits: &[[f64; 3]], labels: &[usize], weights: &[f64], t: f64) -> f64 {
    let (mut s, mut w) = (0.0, 0.0);
    for ((z, &y), &wi) in logits.iter().zip(labels).zip(weights) {
        let p = softmax_t(z, t)[y].max(1e-15);
        s -= wi * p.ln();
        w += wi;
    }
    if w > 0.0 {
        s / w
    } else {
        0.0
    }
}

/// Expected calibration error of the top-label confidence, `bins` equal-width bins on [0, 1]:
/// `sum_b |B_b| / N * |accuracy(B_b) - mean confidence(B_b)|`.
pub fn ece(probs: &[[f64; 3]], labels: &[usize], bins: usize) -> f64 {
    let bins = bins.max(1);
    let mut n = vec![0usize; bins];
    let mut acc = vec![0.0f64; bins];
    let mut conf = vec![0.0f64; bins];
    for (p, &y) in probs.iter().zip(labels) {
        let k = (0..3).max_by(|a, b| p[*a].total_cmp(&p[*b])).unwrap_or(0);
        let b = ((p[k] * bins as f64) as usize).min(bins - 1);
        n[b] += 1;
        conf[b] += p[k];
        if k == y {
            acc[b] += 1.0;
        }
    }
    let total = probs.len().max(1) as f64;
    (0..bins)
        .filter(|b| n[*b] > 0)
        .map(|b| (acc[b] - conf[b]).abs() / total)
        .sum()
}

/// The temperature minimising [`nll`] (golden-section search over `ln T` in `[ln 1/20, ln 20]`,
/// to a relative precision of about 1e-6). Returns 1 for no data.
pub fn fit_temperature(logits: &[[f64; 3]], labels: &[usize], weights: &[f64]) -> f64 {
    if logits.is_empty() || weights.iter().sum::<f64>() <= 0.0 {
        return 1.0;
    }
    let f = |u: f64| nll(logits, labels, weights, u.exp());
    let g = (5f64.sqrt() - 1.0) / 2.0;
    let (mut a, mut b) = ((1.0f64 / 20.0).ln(), 20f64.ln());
    let mut c = b - g * (b - a);
    let mut d = a + g * (b - a);
    let (mut fc, mut fd) = (f(c), f(d));
    while b - a > 1e-6 {
        if fc < fd {
            b = d;
            d = c;
            fd = fc;
            c = b - g * (b - a);
            fc = f(c);
        } else {
            a = c;
            c = d;
            fc = fd;
            d = a + g * (b - a);
            fd = f(d);
        }
    }
    ((a + b) / 2.0).exp()
}

/// One condition group's refit by [`fit_on_predictions`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupFit {
    /// Labelled findings predicted.
    pub findings: usize,
    /// The model's temperature before.
    pub before: f64,
    /// The fitted temperature.
    pub after: f64,
    /// Severity-weighted NLL of those findings with the temperature before.
    pub nll_before: f64,
    /// The same with the fitted temperature.
    pub nll_after: f64,
}

/// What [`fit_on_predictions`] found.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PredictionFit {
    /// Studies predicted.
    pub studies: usize,
    /// Studies that could not be predicted, with the reason (they are left out).
    pub skipped: Vec<(StudyId, String)>,
    /// By group name; a group without labelled findings is absent.
    pub groups: BTreeMap<String, GroupFit>,
}

impl PredictionFit {
    /// The fitted temperatures by group name.
    pub fn temperatures(&self) -> BTreeMap<String, f64> {
        self.groups
            .iter()
            .map(|(g, f)| (g.clone(), f.after))
            .collect()
    }
}

/// Fits each group's temperature on `model`'s predictions of the labelled studies of `datasets`
/// that `select` keeps: every labelled finding whose point came from the localisers or the canal
/// offset (findings that fell back to the training prior carry no grader output and are left
/// out). The logits are recovered from the predicted probabilities as `T ln p` (the model's
/// temperature `T`; a softmax is unchanged by a constant added to every logit). A study that
/// cannot be predicted is reported in [`PredictionFit::skipped`] and left out.
pub fn fit_on_predictions(
    model: &Model,
    datasets: &[PathBuf],
    select: &dyn Fn(StudyId) -> bool,
    progress: &dyn Fn(usize, usize),
) -> Result<PredictionFit, ModelError> {
    let mut by_group: BTreeMap<ConditionGroup, GroupLogits> = BTreeMap::new();
    let mut fit = PredictionFit::default();
    let mut todo = Vec::new();
    for root in datasets {
        let ds = Dataset::open(root)?;
        let labels = ds.labels()?;
        todo.push((
            ds,
            labels
                .into_iter()
                .filter(|l| select(l.study))
                .collect::<Vec<_>>(),
        ));
    }
    let total: usize = todo.iter().map(|(_, l)| l.len()).sum();
    let mut done = 0;
    for (ds, labels) in &todo {
        for l in labels {
            done += 1;
            progress(done, total);
            let p = match predict_study(model, ds, l.study) {
                Ok(p) => p,
                Err(e) => {
                    fit.skipped.push((l.study, e.to_string()));
                    continue;
                }
            };
            fit.studies += 1;
            for f in &p.findings {
                if f.point.is_none() {
                    continue;
                }
                let column = LabelColumn {
                    condition: f.condition,
                    level: f.level,
                };
                let Some(y) = l.grades[column.index()] else {
                    continue;
                };
                let group = f.condition.group();
                let t = model.card.temperature_of(group);
                let z = f.probabilities.map(|q| t * q.max(1e-30).ln());
                let e = by_group.entry(group).or_default();
                e.0.push(z);
                e.1.push(y.index());
                e.2.push(y.weight());
            }
        }
    }
    for (group, (z, y, w)) in by_group {
        let before = model.card.temperature_of(group);
        let after = fit_temperature(&z, &y, &w);
        fit.groups.insert(
            group.as_str().to_string(),
            GroupFit {
                findings: z.len(),
                before,
                after,
                nll_before: nll(&z, &y, &w, before),
                nll_after: nll(&z, &y, &w, after),
            },
        );
    }
    Ok(fit)
}

/// `discus model calibrate`: refits `model`'s temperatures on its predictions of the labelled
/// studies of `datasets` that `select` keeps ([`fit_on_predictions`]) and records the calibration
/// data in its card: the datasets' cards (their licences apply) with the model's own provenance as
/// an input. Refused when no labelled finding was predicted. The caller saves the model.
pub fn recalibrate(
    model: &mut Model,
    datasets: &[PathBuf],
    select: &dyn Fn(StudyId) -> bool,
    progress: &dyn Fn(usize, usize),
) -> Result<PredictionFit, ModelError> {
    let mut cards = Vec::new();
    for d in datasets {
        cards.extend(load_card(d)?);
    }
    let fit = fit_on_predictions(model, datasets, select, progress)?;
    if fit.groups.is_empty() {
        return Err(ModelError::Request(format!(
            "no labelled finding was predicted ({} studies, {} could not be predicted): nothing \
             to fit the temperatures on",
            fit.studies,
            fit.skipped.len()
        )));
    }
    model.card.temperatures.extend(fit.temperatures());
    let mut provenance = Provenance::new(
        format!("discus {} model calibrate", env!("CARGO_PKG_VERSION")),
        cards,
    );
    provenance.inputs.push(model.card.provenance.clone());
    model.card.provenance = provenance;
    Ok(fit)
}

/// Logits, grade indices and severity weights of one group's findings.
type GroupLogits = (Vec<[f64; 3]>, Vec<usize>, Vec<f64>);

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// A toy problem with a known answer: labels drawn from `softmax(z)`, the "model" reports `3 z`
    /// (over-confident by a factor 3), so the NLL-optimal temperature is 3 (up to sampling noise).
    fn toy(n: usize, seed: u64) -> (Vec<[f64; 3]>, Vec<usize>) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut logits = Vec::with_capacity(n);
        let mut labels = Vec::with_capacity(n);
        for _ in 0..n {
            let z = [
                rng.gen_range(-2.0..2.0),
                rng.gen_range(-2.0..2.0),
                rng.gen_range(-2.0..2.0),
            ];
            let p = softmax_t(&z, 1.0);
            let u: f64 = rng.gen();
            let y = if u < p[0] {
                0
            } else if u < p[0] + p[1] {
                1
            } else {
                2
            };
            logits.push(z.map(|v| 3.0 * v));
            labels.push(y);
        }
        (logits, labels)
    }

    #[test]
    fn the_fitted_temperature_undoes_a_known_overconfidence() {
        let (fit_l, fit_y) = toy(20_000, 1);
        let w = vec![1.0; fit_l.len()];
        let t = fit_temperature(&fit_l, &fit_y, &w);
        assert!((t - 3.0).abs() < 0.15, "fitted T = {t}, generated with 3");
        // On held-out draws (another seed) it lowers both NLL and ECE against T = 1.
        let (l, y) = toy(20_000, 2);
        let w = vec![1.0; l.len()];
        let (n1, nt) = (nll(&l, &y, &w, 1.0), nll(&l, &y, &w, t));
        assert!(nt < n1 - 0.1, "NLL {nt} with T, {n1} without");
        let p1: Vec<[f64; 3]> = l.iter().map(|z| softmax_t(z, 1.0)).collect();
        let pt: Vec<[f64; 3]> = l.iter().map(|z| softmax_t(z, t)).collect();
        let (e1, et) = (ece(&p1, &y, 10), ece(&pt, &y, 10));
        assert!(et < 0.02 && e1 > 0.1, "ECE {et} with T, {e1} without");
        // An under-confident model (logits / 2) gets T < 1.
        let half: Vec<[f64; 3]> = fit_l.iter().map(|z| z.map(|v| v / 6.0)).collect();
        let t2 = fit_temperature(&half, &fit_y, &vec![1.0; half.len()]);
        assert!((t2 - 0.5).abs() < 0.03, "T = {t2}, expected 0.5");
    }

    #[test]
    fn ece_matches_a_hand_computed_case() {
        // Two bins used: 0.9-confident (2 of 2 right: |1 - 0.9| = 0.1) and 0.6-confident (1 of 2
        // right: |0.5 - 0.6| = 0.1); each bin half the samples: ECE = 0.5*0.1 + 0.5*0.1 = 0.1.
        let p = [
            [0.9, 0.05, 0.05],
            [0.05, 0.9, 0.05],
            [0.6, 0.3, 0.1],
            [0.6, 0.3, 0.1],
        ];
        let y = [0, 1, 0, 2];
        assert!((ece(&p, &y, 10) - 0.1).abs() < 1e-12);
        assert_eq!(fit_temperature(&[], &[], &[]), 1.0);
    }
}

//! How much reading the labelling assistant saves: a simulation on a synthetic cohort.
//!
//! # The cohort and the readers
//! A cohort is planned with discus-synth ([`CohortPlan::new`]: anatomy, degeneration and true grades,
//! no pixels). Each finding has a true degree of narrowing `g`; its true grade is
//! [`grade_of_degree`]`(g)`. The readers are discus-synth's simulated readers
//! ([`discus_synth::readers::Reader`]): reader `r` perceives `g + b_r + s_r e` (`e ~ N(0,1)`, one
//! draw per reader and finding; `s_r` grows for foraminal findings and L5/S1) and grades what it
//! perceives.
//!
//! # The model and its proposals
//! The model perceives `m = g + s_m e_m` (the same condition and level factors, base noise
//! [`SimConfig::model_sigma`]) and predicts the grade probabilities of a reader-like grader centred
//! on `m` with noise `sqrt(s_m^2 + s_reader^2)` (so it is roughly calibrated). Its proposal is the
//! most probable grade; its uncertainty per study is the sum of the findings' entropies, as the
//! queue orders studies ([`crate::queue::uncertainty_priority`]).
//!
//! An *assisted* reader sees the proposal and **accepts it when it agrees within the reader's
//! noise**: when the perceived degree lies inside the proposed grade's interval, or within
//! [`SimConfig::accept_within_sd`] of the reader's own noise standard deviation of it; otherwise the
//! reader keeps their own grade. Acceptance pulls borderline reads towards the model.
//!
//! # Protocols compared
//! - **Unassisted, k readers per study** (the baseline, k = 1..=[`SimConfig::readers`]): every study
//!   is read blind by readers `0..k`; the consensus of a finding is the median grade (the lower
//!   median for even k). Reads: `k N` study reads.
//! - **Assisted**: reader 0 reads every study with the proposals; then the queue hands the studies in
//!   order of model uncertainty to readers `1..k` for blinded (unassisted) reads, study by study,
//!   until the consensus error reaches the baseline's with k readers. A study read by several
//!   readers takes the median; one read only, that read. Reads: `N + (k - 1) M` for the first `M`
//!   studies of the queue.
//! - **Assisted, random order**: the same with the queue in a random order (the value of ordering by
//!   uncertainty).
//! - **Unassisted first read, uncertainty order**: reader 0 reads without proposals (the value of
//!   the proposals).
//!
//! The *consensus error* is the fraction of labelled findings whose consensus grade differs from
//! the true grade. *Reads saved* is `k N` minus the study reads a protocol needs to reach an error no
//! higher than the k-reader baseline's (none saved when it never does). Every draw is seeded.

use crate::queue::entropy;
use discus_core::stats::SplitMix64;
use discus_core::{Condition, LabelColumn, Level, Severity};
use discus_synth::anatomy::grade_of_degree;
use discus_synth::readers::Reader;
use discus_synth::{CohortPlan, SynthConfig, SynthError};
use serde::{Deserialize, Serialize};

/// Simulation settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimConfig {
    /// Studies per replicate cohort.
    pub studies: usize,
    /// Readers per study in the baseline protocol (and readers available).
    pub readers: usize,
    /// Seed of the first replicate (replicate `i` uses `seed + i`).
    pub seed: u64,
    /// Replicate cohorts.
    pub replicates: usize,
    /// The model's base noise on the degree scale (the synthetic readers' is 0.06 to 0.09).
    pub model_sigma: f64,
    /// A proposal is accepted when the perceived degree is within this many of the reader's noise
    /// standard deviations of the proposed grade's interval.
    pub accept_within_sd: f64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            studies: 200,
            readers: 3,
            seed: 1,
            replicates: 5,
            model_sigma: 0.1,
            accept_within_sd: 1.0,
        }
    }
}

/// One protocol's cost to reach the baseline error in one replicate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProtocolResult {
    /// The protocol: `assisted_uncertainty`, `assisted_random`, `unassisted_uncertainty`.
    pub protocol: String,
    /// The consensus error with one (first) read per study and no further reads.
    pub first_read_error: f64,
    /// Studies of the queue that needed further reads to reach the target; `None` when the target
    /// was not reached.
    pub studies_reread: Option<usize>,
    /// Study reads needed; `None` when the target was not reached.
    pub reads: Option<usize>,
    /// The error reached with those reads (or with every study re-read, when not reached).
    pub error: f64,
    /// Baseline reads minus `reads` (0 when the target was not reached).
    pub reads_saved: usize,
}

/// One replicate cohort's results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Replicate {
    /// The cohort's seed.
    pub seed: u64,
    /// Studies.
    pub studies: usize,
    /// Labelled findings.
    pub findings: usize,
    /// Consensus error of the unassisted protocol with k = 1, 2, ... readers per study.
    pub unassisted_error: Vec<f64>,
    /// The target: the unassisted error with [`SimConfig::readers`] readers.
    pub target_error: f64,
    /// The baseline's study reads (`readers * studies`).
    pub baseline_reads: usize,
    /// Share of proposals the assisted first reader accepted.
    pub acceptance: f64,
    /// Share of proposals whose grade was the true grade.
    pub proposal_accuracy: f64,
    /// Each protocol's cost.
    pub protocols: Vec<ProtocolResult>,
}

/// A protocol's results over the replicates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProtocolSummary {
    /// The protocol.
    pub protocol: String,
    /// Replicates that reached the target error.
    pub reached: usize,
    /// Mean share of the baseline's reads saved (0 for a replicate that did not reach the target).
    pub mean_saved_fraction: f64,
    /// Smallest share saved over the replicates.
    pub min_saved_fraction: f64,
    /// Largest share saved over the replicates.
    pub max_saved_fraction: f64,
}

/// The simulation's report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimReport {
    /// The settings.
    pub config: SimConfig,
    /// Per replicate.
    pub replicates: Vec<Replicate>,
    /// Per protocol, over the replicates.
    pub summary: Vec<ProtocolSummary>,
}

/// Simulation errors.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The settings are unusable.
    #[error("simulation settings: {0}")]
    Config(String),
    /// The synthetic cohort could not be planned.
    #[error("planning the synthetic cohort: {0}")]
    Synth(#[from] SynthError),
}

struct Finding {
    study: usize,
    condition: Condition,
    level: Level,
    degree: f64,
    truth: Severity,
}

/// A standard normal draw (Box-Muller).
fn normal(rng: &mut SplitMix64) -> f64 {
    let u1 = 1.0 - rng.unit();
    let u2 = rng.unit();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// The degree interval of a grade.
fn interval(g: Severity) -> (f64, f64) {
    match g {
        Severity::NormalMild => (f64::NEG_INFINITY, 1.0 / 3.0),
        Severity::Moderate => (1.0 / 3.0, 2.0 / 3.0),
        Severity::Severe => (2.0 / 3.0, f64::INFINITY),
    }
}

fn median(mut g: Vec<Severity>) -> Severity {
    g.sort();
    g[(g.len() - 1) / 2]
}

fn error_of(findings: &[Finding], consensus: &[Severity]) -> f64 {
    let wrong = findings
        .iter()
        .zip(consensus)
        .filter(|(f, c)| f.truth != **c)
        .count();
    wrong as f64 / findings.len().max(1) as f64
}

/// Runs the simulation (see the module docs).
pub fn simulate(cfg: &SimConfig) -> Result<SimReport, SimError> {
    if cfg.studies == 0 || cfg.readers < 2 || cfg.replicates == 0 {
        return Err(SimError::Config(
            "need at least 1 study, 2 readers and 1 replicate".into(),
        ));
    }
    if !(cfg.model_sigma > 0.0 && cfg.accept_within_sd >= 0.0) {
        return Err(SimError::Config(
            "the model's noise must be positive and the acceptance width not negative".into(),
        ));
    }
    let replicates = (0..cfg.replicates)
        .map(|i| replicate(cfg, cfg.seed.wrapping_add(i as u64)))
        .collect::<Result<Vec<_>, _>>()?;
    let names = [
        "assisted_uncertainty",
        "assisted_random",
        "unassisted_uncertainty",
    ];
    let summary = names
        .iter()
        .map(|name| {
            let fr: Vec<(bool, f64)> = replicates
                .iter()
                .filter_map(|r| {
                    let p = r.protocols.iter().find(|p| p.protocol == *name)?;
                    Some((
                        p.reads.is_some(),
                        p.reads_saved as f64 / r.baseline_reads as f64,
                    ))
                })
                .collect();
            let n = fr.len().max(1) as f64;
            ProtocolSummary {
                protocol: name.to_string(),
                reached: fr.iter().filter(|(r, _)| *r).count(),
                mean_saved_fraction: fr.iter().map(|(_, f)| f).sum::<f64>() / n,
                min_saved_fraction: fr.iter().map(|(_, f)| *f).fold(f64::INFINITY, f64::min),
                max_saved_fraction: fr.iter().map(|(_, f)| *f).fold(0.0, f64::max),
            }
        })
        .collect();
    Ok(SimReport {
        config: cfg.clone(),
        replicates,
        summary,
    })
}

fn replicate(cfg: &SimConfig, seed: u64) -> Result<Replicate, SimError> {
    let plan = CohortPlan::new(&SynthConfig {
        studies: cfg.studies,
        sites: 3,
        seed,
        readers: cfg.readers,
        quirk_rate: 0.0,
        matrix_scale: 0.25,
        rescan: false,
        masks: false,
    })?;
    let readers: &[Reader] = &plan.readers;
    let mut findings = Vec::new();
    for (si, st) in plan.studies.iter().enumerate() {
        for col in LabelColumn::all() {
            if st.true_grades[col.index()].is_none() {
                continue;
            }
            let degree = st
                .anatomy
                .degeneration
                .degree(col.condition.index(), col.level.index());
            findings.push(Finding {
                study: si,
                condition: col.condition,
                level: col.level,
                degree,
                truth: grade_of_degree(degree),
            });
        }
    }
    let n = plan.studies.len();
    let k = cfg.readers;
    let mut rng = SplitMix64(seed ^ 0xA551_57ED_5EED_0001);
    // perceived[r][f]: reader r's perceived degree of finding f.
    let perceived: Vec<Vec<f64>> = readers
        .iter()
        .map(|rd| {
            findings
                .iter()
                .map(|f| f.degree + rd.bias + rd.noise_sd(f.condition, f.level) * normal(&mut rng))
                .collect()
        })
        .collect();
    let blind: Vec<Vec<Severity>> = perceived
        .iter()
        .map(|p| p.iter().map(|d| grade_of_degree(*d)).collect())
        .collect();
    // The model.
    let mean_sigma = readers.iter().map(|r| r.sigma).sum::<f64>() / readers.len() as f64;
    let noise = Reader {
        index: 0,
        bias: 0.0,
        sigma: cfg.model_sigma,
        point_sigma_mm: 0.0,
    };
    let grader = Reader {
        sigma: (cfg.model_sigma.powi(2) + mean_sigma.powi(2)).sqrt(),
        ..noise.clone()
    };
    let mut study_entropy = vec![0.0; n];
    let proposals: Vec<Severity> = findings
        .iter()
        .map(|f| {
            let m = f.degree + noise.noise_sd(f.condition, f.level) * normal(&mut rng);
            let p = grader.label_probs(m, f.condition, f.level);
            study_entropy[f.study] += entropy(p);
            let i = (0..3).max_by(|a, b| p[*a].total_cmp(&p[*b])).unwrap_or(0);
            Severity::ALL[i]
        })
        .collect();
    // Reader 0 with the proposals.
    let mut accepted = 0usize;
    let assisted: Vec<Severity> = findings
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let p = perceived[0][i];
            let (lo, hi) = interval(proposals[i]);
            let gap = if p < lo {
                lo - p
            } else if p >= hi {
                p - hi
            } else {
                0.0
            };
            if gap <= cfg.accept_within_sd * readers[0].noise_sd(f.condition, f.level) {
                accepted += 1;
                proposals[i]
            } else {
                blind[0][i]
            }
        })
        .collect();
    let proposal_accuracy = findings
        .iter()
        .zip(&proposals)
        .filter(|(f, p)| f.truth == **p)
        .count() as f64
        / findings.len().max(1) as f64;
    // The baseline.
    let unassisted_error: Vec<f64> = (1..=k)
        .map(|kk| {
            let cons: Vec<Severity> = (0..findings.len())
                .map(|i| median((0..kk).map(|r| blind[r][i]).collect()))
                .collect();
            error_of(&findings, &cons)
        })
        .collect();
    let target = unassisted_error[k - 1];
    let baseline_reads = k * n;
    // Queue orders.
    let mut by_uncertainty: Vec<usize> = (0..n).collect();
    by_uncertainty.sort_by(|a, b| {
        study_entropy[*b]
            .total_cmp(&study_entropy[*a])
            .then(a.cmp(b))
    });
    let mut random: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = rng.below(i + 1);
        random.swap(i, j);
    }
    let mut findings_of: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, f) in findings.iter().enumerate() {
        findings_of[f.study].push(i);
    }
    let run = |name: &str, first: &[Severity], order: &[usize]| -> ProtocolResult {
        let mut cons: Vec<Severity> = first.to_vec();
        let first_read_error = error_of(&findings, &cons);
        let mut wrong = findings
            .iter()
            .zip(&cons)
            .filter(|(f, c)| f.truth != **c)
            .count();
        let total = findings.len().max(1);
        let mut reached = (wrong as f64 / total as f64 <= target).then_some(0);
        for (m, &s) in order.iter().enumerate() {
            if reached.is_some() {
                break;
            }
            for &i in &findings_of[s] {
                let mut g = vec![first[i]];
                g.extend((1..k).map(|r| blind[r][i]));
                let new = median(g);
                wrong = wrong + usize::from(new != findings[i].truth)
                    - usize::from(cons[i] != findings[i].truth);
                cons[i] = new;
            }
            if wrong as f64 / total as f64 <= target {
                reached = Some(m + 1);
            }
        }
        let reads = reached.map(|m| n + (k - 1) * m);
        ProtocolResult {
            protocol: name.into(),
            first_read_error,
            studies_reread: reached,
            reads,
            error: wrong as f64 / total as f64,
            reads_saved: reads.map_or(0, |r| baseline_reads.saturating_sub(r)),
        }
    };
    let protocols = vec![
        run("assisted_uncertainty", &assisted, &by_uncertainty),
        run("assisted_random", &assisted, &random),
        run("unassisted_uncertainty", &blind[0], &by_uncertainty),
    ];
    Ok(Replicate {
        seed,
        studies: n,
        findings: findings.len(),
        unassisted_error,
        target_error: target,
        baseline_reads,
        acceptance: accepted as f64 / findings.len().max(1) as f64,
        proposal_accuracy,
        protocols,
    })
}

impl SimReport {
    /// Writes the summary `discus reads simulate` prints: the cohorts, the unassisted consensus
    /// error by number of readers, the model's proposals, and per protocol the first-read error and
    /// the reads saved.
    pub fn write_text(&self, w: &mut impl std::io::Write) -> std::io::Result<()> {
        let cfg = &self.config;
        let mean = |f: &dyn Fn(&Replicate) -> f64| {
            self.replicates.iter().map(f).sum::<f64>() / self.replicates.len() as f64
        };
        writeln!(
            w,
            "{} cohorts x {} studies ({} labelled findings each on average), {} readers per study in the baseline",
            self.replicates.len(),
            cfg.studies,
            mean(&|r| r.findings as f64).round(),
            cfg.readers
        )?;
        let errs: Vec<String> = (0..cfg.readers)
            .map(|k| {
                format!(
                    "{} reader{}: {:.2}%",
                    k + 1,
                    if k == 0 { "" } else { "s" },
                    100.0 * mean(&|r| r.unassisted_error[k])
                )
            })
            .collect();
        writeln!(w, "unassisted consensus error: {}", errs.join(", "))?;
        writeln!(
            w,
            "model proposals: {:.1}% correct, {:.1}% accepted by the assisted first reader",
            100.0 * mean(&|r| r.proposal_accuracy),
            100.0 * mean(&|r| r.acceptance)
        )?;
        for s in &self.summary {
            let first = mean(&|r| {
                r.protocols
                    .iter()
                    .find(|p| p.protocol == s.protocol)
                    .map_or(0.0, |p| p.first_read_error)
            });
            writeln!(
                w,
                "{:<24} first-read error {:.2}%; target reached in {}/{}; reads saved {:.1}% (range {:.1}% to {:.1}%)",
                s.protocol,
                100.0 * first,
                s.reached,
                self.replicates.len(),
                100.0 * s.mean_saved_fraction,
                100.0 * s.min_saved_fraction,
                100.0 * s.max_saved_fraction
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_draws_have_unit_variance() {
        let mut rng = SplitMix64(3);
        let v: Vec<f64> = (0..200_000).map(|_| normal(&mut rng)).collect();
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64;
        assert!(
            mean.abs() < 0.01 && (var - 1.0).abs() < 0.01,
            "{mean} {var}"
        );
    }

    #[test]
    fn simulation_is_deterministic_and_consistent() {
        let cfg = SimConfig {
            studies: 30,
            replicates: 2,
            ..SimConfig::default()
        };
        let a = simulate(&cfg).unwrap();
        let b = simulate(&cfg).unwrap();
        assert_eq!(a, b);
        for r in &a.replicates {
            assert_eq!(r.findings, r.findings.min(25 * r.studies));
            assert_eq!(r.unassisted_error.len(), 3);
            assert_eq!(r.target_error, r.unassisted_error[2]);
            for p in &r.protocols {
                match p.reads {
                    // Reaching the target means an error no higher than it, with the reads
                    // counted as one first read per study plus the re-reads.
                    Some(reads) => {
                        assert!(p.error <= r.target_error + 1e-12, "{p:?}");
                        assert_eq!(reads, r.studies + 2 * p.studies_reread.unwrap());
                        assert_eq!(p.reads_saved, r.baseline_reads - reads);
                    }
                    None => assert_eq!(p.reads_saved, 0),
                }
            }
            // Without proposals the first read is reader 0's blind read: the baseline with k = 1.
            let un = r
                .protocols
                .iter()
                .find(|p| p.protocol == "unassisted_uncertainty")
                .unwrap();
            assert_eq!(un.first_read_error, r.unassisted_error[0]);
            // Re-reading every study in any order gives the baseline's 3-reader consensus, so the
            // unassisted first read always reaches the target.
            assert!(un.reads.is_some());
        }
        assert!(simulate(&SimConfig {
            readers: 1,
            ..cfg.clone()
        })
        .is_err());
    }
}

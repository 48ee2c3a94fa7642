//! `discus synth` as a library call: a typed request, a typed outcome, and its text and JSON
//! renderings (what the command prints), written to any [`Write`].

use crate::cohort::{generate, CohortPlan, SynthConfig, SynthError, SynthSummary};
use crate::readers::BayesLimit;
use discus_core::progress::Progress;
use std::io::{self, Write};
use std::path::PathBuf;
use std::time::Instant;

/// What to synthesise.
#[derive(Debug, Clone)]
pub struct SynthRequest {
    /// The output folder (created; empty or holding an earlier run of the same request).
    pub out: PathBuf,
    /// The cohort's configuration.
    pub config: SynthConfig,
    /// Only plan the cohort (no files).
    pub dry_run: bool,
}

/// A planned cohort (`--dry-run`).
#[derive(Debug, Clone, PartialEq)]
pub struct PlanSummary {
    /// Studies planned.
    pub studies: usize,
    /// DICOM instances planned.
    pub instances: usize,
    /// The expected score of the Bayes-optimal prediction.
    pub bayes_limit: BayesLimit,
}

/// What a synth call did.
#[derive(Debug, Clone)]
pub enum SynthOutcome {
    /// The cohort was only planned.
    Planned(PlanSummary),
    /// The cohort was written.
    Written {
        /// What was written.
        summary: SynthSummary,
        /// Wall-clock seconds the writing took.
        seconds: f64,
    },
}

/// Studies the request writes (twice the studies with `rescan`): the progress stage's total.
pub fn study_count(config: &SynthConfig) -> u64 {
    (config.studies * if config.rescan { 2 } else { 1 }) as u64
}

/// Plans, or plans and writes, the cohort of `req`. Progress is reported as one stage, `synth`,
/// counting studies written.
pub fn synth(req: &SynthRequest, progress: &Progress) -> Result<SynthOutcome, SynthError> {
    if req.dry_run {
        let plan = CohortPlan::new(&req.config)?;
        return Ok(SynthOutcome::Planned(PlanSummary {
            studies: plan.studies.len(),
            instances: plan.studies.iter().map(|s| s.instance_count()).sum(),
            bayes_limit: plan.bayes_limit(),
        }));
    }
    progress.stage("synth", study_count(&req.config));
    let t0 = Instant::now();
    let summary = generate(&req.out, &req.config, &|n| progress.set_done(n as u64))?;
    Ok(SynthOutcome::Written {
        summary,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// Writes the outcome as `discus synth` prints it.
pub fn write_text(outcome: &SynthOutcome, w: &mut impl Write) -> io::Result<()> {
    match outcome {
        SynthOutcome::Planned(p) => writeln!(
            w,
            "{} studies, {} DICOM files planned; Bayes limit {:.4}",
            p.studies, p.instances, p.bayes_limit.score
        ),
        SynthOutcome::Written { summary, seconds } => {
            writeln!(
                w,
                "wrote {} studies ({} DICOM files, {:.1} MB; {} resumed) to {} in {:.1} s",
                summary.studies,
                summary.instances,
                summary.bytes_written as f64 / 1e6,
                summary.studies_skipped_done,
                summary.out.display(),
                seconds
            )?;
            writeln!(
                w,
                "injected quirks: {} (listed in truth.json)",
                summary.quirks
            )?;
            let b = &summary.bayes_limit;
            writeln!(
                w,
                "Bayes limit of the competition score on train.csv's reader: {:.4} (spinal {:.4}, foraminal {:.4}, subarticular {:.4}, any_severe {:.4}; lower bound {:.4})",
                b.score, b.spinal, b.foraminal, b.subarticular, b.any_severe, b.lower_bound
            )
        }
    }
}

/// Writes the outcome as `discus synth --json` prints it: one line for a plan, the pretty-printed
/// summary with `seconds` for a written cohort.
pub fn write_json(outcome: &SynthOutcome, w: &mut impl Write) -> io::Result<()> {
    match outcome {
        SynthOutcome::Planned(p) => writeln!(
            w,
            "{}",
            serde_json::json!({"studies": p.studies, "instances": p.instances, "bayes_limit": p.bayes_limit})
        ),
        SynthOutcome::Written { summary, seconds } => {
            let mut v = serde_json::to_value(summary).map_err(io::Error::other)?;
            v["seconds"] = serde_json::json!(seconds);
            let s = serde_json::to_string_pretty(&v).map_err(io::Error::other)?;
            writeln!(w, "{s}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> SynthConfig {
        SynthConfig {
            studies: 2,
            sites: 1,
            seed: 7,
            readers: 1,
            quirk_rate: 0.0,
            matrix_scale: 0.25,
            rescan: false,
            masks: false,
        }
    }

    #[test]
    fn dry_run_counts_the_plan_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("cohort");
        let req = SynthRequest {
            out: out.clone(),
            config: config(),
            dry_run: true,
        };
        let SynthOutcome::Planned(p) = synth(&req, &Progress::new()).unwrap() else {
            panic!("a dry run plans");
        };
        assert_eq!(p.studies, 2);
        let plan = CohortPlan::new(&config()).unwrap();
        let expected: usize = plan.studies.iter().map(|s| s.instance_count()).sum();
        assert_eq!(p.instances, expected);
        assert!(p.instances > 0);
        assert!(!out.exists());
        let mut text = Vec::new();
        write_text(&SynthOutcome::Planned(p.clone()), &mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(text.starts_with(&format!("2 studies, {expected} DICOM files planned; ")));
        let mut json = Vec::new();
        write_json(&SynthOutcome::Planned(p), &mut json).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(v["instances"], expected);
    }
}

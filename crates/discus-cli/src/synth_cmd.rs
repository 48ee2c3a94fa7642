//! `discus synth` and `discus render`: a synthetic cohort with known truth, and contact sheets.

use anyhow::{Context, Result};
use clap::Args;
use discus_core::progress::Progress;
use discus_synth::cohort::SynthConfig;
use discus_synth::sheet::render_contact_sheet;
use discus_synth::workflow::{study_count, synth, write_json, write_text, SynthRequest};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::process::ExitCode;

/// Write a synthetic lumbar MRI cohort with known truth in the LumbarDISC layout.
///
/// Writes `OUT/train_images/<study>/<series>/<instance>.dcm`, train.csv (reader 0's grades),
/// train_label_coordinates.csv, train_series_descriptions.csv (LF line endings),
/// `readers/<r>/train.csv` and `readers/<r>/train_label_coordinates.csv` for every reader, and
/// truth.json (true degrees and grades, every reader's reads, injected quirks, the Bayes limit).
/// Same seed, same bytes. An interrupted run resumes: rerun the same command.
#[derive(Debug, Args)]
pub struct SynthArgs {
    /// Output folder (created; must be empty or hold an earlier run of the same command).
    #[arg(long)]
    pub out: PathBuf,
    /// Number of studies.
    #[arg(long, default_value_t = 12)]
    pub studies: usize,
    /// Number of sites (scanners with their own vendor, field strength, protocol).
    #[arg(long, default_value_t = 3)]
    pub sites: usize,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Number of simulated readers (reader 0's reads are train.csv).
    #[arg(long, default_value_t = 3)]
    pub readers: usize,
    /// Probability (0..1) that a study carries one injected quirk of the real data (spec section 4).
    #[arg(long, default_value_t = 0.0)]
    pub quirks: f64,
    /// Scale every image matrix by this factor (1 = realistic sizes; e.g. 0.5 for a quick look).
    #[arg(long, default_value_t = 1.0)]
    pub matrix_scale: f64,
    /// Scan every patient a second time at another site: twice the studies, the second scans with
    /// new study ids, linked to the first in truth.json (`patient`, `rescan_of`). Needs 2+ sites.
    #[arg(long)]
    pub rescan: bool,
    /// Also write per-series label volumes (vertebrae, discs, thecal sac, roots, foramina by level)
    /// as NIfTI-1 under `OUT/masks/<study>/<series>.nii.gz`, with OUT/masks/labels.json.
    #[arg(long)]
    pub masks: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// Only plan the cohort and print its summary (no files).
    #[arg(long)]
    pub dry_run: bool,
}

/// Draw a contact sheet (PNG) of one study folder, with label points and grades overlaid.
///
/// Shows sagittal mid and lateral slices and the slices carrying label points, and axial slices per
/// level. Labels come from train.csv, train_label_coordinates.csv and the series descriptions in the
/// dataset root above STUDY_DIR (`<root>/train_images/<study>`), when present.
#[derive(Debug, Args)]
pub struct RenderArgs {
    /// The study folder (e.g. DATA/train_images/<study_id>).
    pub study_dir: PathBuf,
    /// Output PNG.
    #[arg(long)]
    pub out: PathBuf,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run_synth(a: SynthArgs) -> Result<ExitCode> {
    let req = SynthRequest {
        out: a.out.clone(),
        config: SynthConfig {
            studies: a.studies,
            sites: a.sites,
            seed: a.seed,
            readers: a.readers,
            quirk_rate: a.quirks,
            matrix_scale: a.matrix_scale,
            rescan: a.rescan,
            masks: a.masks,
        },
        dry_run: a.dry_run,
    };
    let bar = ProgressBar::new(study_count(&req.config));
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} synth [{bar:30}] {pos}/{len} studies {elapsed} eta {eta}",
        )
        .unwrap()
        .progress_chars("=> "),
    );
    if a.json || a.dry_run {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let progress = {
        let bar = bar.clone();
        Progress::with_observer(move |s| bar.set_position(s.done))
    };
    let outcome = if a.dry_run {
        synth(&req, &progress)?
    } else {
        synth(&req, &progress)
            .with_context(|| format!("writing the synthetic cohort to {}", a.out.display()))?
    };
    bar.finish_and_clear();
    let mut out = std::io::stdout().lock();
    if a.json {
        write_json(&outcome, &mut out)?;
    } else {
        write_text(&outcome, &mut out)?;
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run_render(a: RenderArgs) -> Result<ExitCode> {
    let s = render_contact_sheet(&a.study_dir, &a.out)
        .with_context(|| format!("rendering {}", a.study_dir.display()))?;
    if a.json {
        s.write_json(&mut std::io::stdout().lock())?;
    } else {
        s.write_text(&mut std::io::stdout().lock())?;
        s.write_skipped(&mut std::io::stderr().lock())?;
    }
    Ok(ExitCode::SUCCESS)
}

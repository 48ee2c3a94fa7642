//! `discus synth` and `discus render`: a synthetic cohort with known truth, and contact sheets.

use anyhow::{Context, Result};
use clap::Args;
use discus_synth::cohort::{generate, CohortPlan, SynthConfig};
use discus_synth::sheet::render_contact_sheet;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// Write a synthetic lumbar MRI cohort with known truth in the LumbarDISC layout.
///
/// Writes OUT/train_images/<study>/<series>/<instance>.dcm, train.csv (reader 0's grades),
/// train_label_coordinates.csv, train_series_descriptions.csv (LF line endings),
/// readers/<r>/train.csv and readers/<r>/train_label_coordinates.csv for every reader, and
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
    /// as NIfTI-1 under OUT/masks/<study>/<series>.nii.gz, with OUT/masks/labels.json.
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
/// dataset root above STUDY_DIR (<root>/train_images/<study>), when present.
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
    let config = SynthConfig {
        studies: a.studies,
        sites: a.sites,
        seed: a.seed,
        readers: a.readers,
        quirk_rate: a.quirks,
        matrix_scale: a.matrix_scale,
        rescan: a.rescan,
        masks: a.masks,
    };
    if a.dry_run {
        let plan = CohortPlan::new(&config)?;
        let b = plan.bayes_limit();
        let files: usize = plan.studies.iter().map(|s| s.instance_count()).sum();
        if a.json {
            println!(
                "{}",
                serde_json::json!({"studies": plan.studies.len(), "instances": files, "bayes_limit": b})
            );
        } else {
            println!(
                "{} studies, {files} DICOM files planned; Bayes limit {:.4}",
                plan.studies.len(),
                b.score
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let bar = ProgressBar::new((a.studies * if a.rescan { 2 } else { 1 }) as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} synth [{bar:30}] {pos}/{len} studies {elapsed} eta {eta}",
        )
        .unwrap()
        .progress_chars("=> "),
    );
    if a.json {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let t0 = Instant::now();
    let summary = generate(&a.out, &config, &|n| bar.set_position(n as u64))
        .with_context(|| format!("writing the synthetic cohort to {}", a.out.display()))?;
    bar.finish_and_clear();
    let secs = t0.elapsed().as_secs_f64();
    if a.json {
        let mut v = serde_json::to_value(&summary)?;
        v["seconds"] = serde_json::json!(secs);
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!(
            "wrote {} studies ({} DICOM files, {:.1} MB; {} resumed) to {} in {:.1} s",
            summary.studies,
            summary.instances,
            summary.bytes_written as f64 / 1e6,
            summary.studies_skipped_done,
            summary.out.display(),
            secs
        );
        println!("injected quirks: {} (listed in truth.json)", summary.quirks);
        let b = &summary.bayes_limit;
        println!(
            "Bayes limit of the competition score on train.csv's reader: {:.4} (spinal {:.4}, foraminal {:.4}, subarticular {:.4}, any_severe {:.4}; lower bound {:.4})",
            b.score, b.spinal, b.foraminal, b.subarticular, b.any_severe, b.lower_bound
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run_render(a: RenderArgs) -> Result<ExitCode> {
    let s = render_contact_sheet(&a.study_dir, &a.out)
        .with_context(|| format!("rendering {}", a.study_dir.display()))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        println!(
            "wrote {} ({}x{}, {} panels, {} points)",
            s.out.display(),
            s.width,
            s.height,
            s.panels,
            s.points_drawn
        );
        for f in &s.skipped_files {
            eprintln!("skipped {f}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

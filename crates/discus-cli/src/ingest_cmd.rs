//! `discus ingest`: a hospital's PACS export becomes a LumbarDISC-layout dataset.

use anyhow::Context;
use clap::Args;
use discus_core::progress::Progress;
use discus_data::ingest::{ingest, IngestRequest, InstanceRewriter};
use discus_deid::{Deidentifier, Key, Options};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

/// Turn a PACS export (any folder tree, any file names, studies mixed, DICOMDIR or not) into a
/// dataset in the LumbarDISC layout: `OUT/test_images/<study_id>/<series_id>/<instance>.dcm`,
/// OUT/test_series_descriptions.csv and OUT/dataset.toml.
///
/// Series are classified Sagittal T1, Sagittal T2/STIR, Axial T2 or other from the slice
/// orientation and TR/TE/TI (the series description is only a hint); other series are reported and
/// not written. Scouts, non-MR objects, duplicates (same SOP Instance UID), unreadable or truncated
/// files, DICOMDIRs and files that are not DICOM are reported, by kind, and skipped. Study and
/// series ids are derived from the UIDs (top 53 bits of SHA-256, or the UID itself when it is a
/// plain number); the UID<->id map is written outside the dataset. Re-running resumes: identical
/// files are not rewritten.
///
/// With --deid every file is de-identified on the way in (DICOM PS3.15 E.1 basic profile, keyed
/// UIDs as `discus deid` makes them); the ids then come from the new UIDs.
///
/// Exit status: 0 when every file was written or rightly skipped, 1 when a file could not be
/// written (id collision, de-identification or write failure) or the run failed, 2 on usage errors.
#[derive(Args, Debug)]
pub struct IngestArgs {
    /// The PACS export folder (searched recursively).
    pub source: PathBuf,
    /// The dataset folder to write (must not be inside SOURCE).
    #[arg(long, value_name = "DATASET")]
    pub out: PathBuf,
    /// De-identify every file on the way in (basic profile).
    #[arg(long)]
    pub deid: bool,
    /// With --deid: the secret key file (64 hex digits), created when absent; keep it at the site.
    /// [default: DATASET.deid-key]
    #[arg(long, value_name = "K", requires = "deid")]
    pub key: Option<PathBuf>,
    /// The UID<->id map (CSV), outside the dataset. [default: DATASET.ingest-map.csv, or
    /// K.ingest-map.csv beside the key with --deid]
    #[arg(long, value_name = "M")]
    pub map: Option<PathBuf>,
    /// Print the report as JSON on stdout (no progress bar).
    #[arg(long)]
    pub json: bool,
    /// How many skipped files of each kind to list (all are in --json).
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub show: usize,
}

fn beside(path: &std::path::Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

pub fn run(args: IngestArgs) -> anyhow::Result<ExitCode> {
    if !args.source.is_dir() {
        eprintln!("error: {}: not a folder", args.source.display());
        return Ok(ExitCode::from(2));
    }
    let key_path = args
        .key
        .clone()
        .unwrap_or_else(|| beside(&args.out, ".deid-key"));
    let map_path = match (&args.map, args.deid) {
        (Some(m), _) => m.clone(),
        (None, true) => beside(&key_path, ".ingest-map.csv"),
        (None, false) => beside(&args.out, ".ingest-map.csv"),
    };
    let deidentifier = if args.deid {
        let (key, created) = Key::load_or_create(&key_path)
            .with_context(|| format!("key {}", key_path.display()))?;
        if created && !args.json {
            eprintln!(
                "created a new key in {} (keep it at the site: it re-creates the same UIDs and ids)",
                key_path.display()
            );
        }
        Some(Deidentifier::new(key, Options::default()))
    } else {
        None
    };
    let request = IngestRequest {
        source: args.source.clone(),
        out: args.out.clone(),
        map_path,
    };

    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    if args.json || !std::io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    let styles = [
        "{spinner} reading headers {bar:40} {pos}/{len} files {per_sec} eta {eta}",
        "{spinner} writing         {bar:40} {pos}/{len} files {per_sec} eta {eta}",
    ]
    .map(|t| ProgressStyle::with_template(t).expect("a valid template"));
    bar.set_style(styles[0].clone());
    let shown = bar.clone();
    let progress = Progress::with_observer(move |p| {
        let writing = p.stage == "writing";
        if shown.message() != p.stage {
            shown.set_style(styles[usize::from(writing)].clone());
            shown.reset();
            shown.set_message(p.stage.clone());
        }
        shown.set_length(p.total);
        shown.set_position(p.done);
    });
    let rewriter = deidentifier.as_ref().map(|d| d as &dyn InstanceRewriter);
    let report = ingest(&request, rewriter, &progress)
        .with_context(|| format!("ingesting {}", args.source.display()))?;
    bar.finish_and_clear();

    let mut out = std::io::stdout().lock();
    if args.json {
        report.write_json(&mut out)?;
    } else {
        report.write_text(args.show, &mut out)?;
    }
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

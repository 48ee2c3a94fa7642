//! `discus validate`: check a LumbarDISC-layout dataset and print its findings and shape.

use anyhow::Context;
use clap::Args;
use discus_data::validate::{validate, Progress, ValidateOptions};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

/// Check a dataset in the LumbarDISC layout: the CSV files and every DICOM header.
///
/// Reports every finding (unreadable files, ids that disagree with their folders, missing series,
/// points on the wrong series or outside the image, labels without points, stacks of mixed
/// orientation, ...) with its kind, severity and study/series/instance, and the dataset's shape.
/// Leaves an index of the dataset (SQLite) that makes the next run and later commands fast: files
/// whose size and modification time are unchanged are not read again.
///
/// Exit status: 0 when there is no error-level finding, 1 otherwise, 2 on usage errors.
#[derive(Args, Debug)]
pub struct ValidateArgs {
    /// The dataset root (holding train_images/, train.csv, ...).
    pub root: PathBuf,
    /// Print the full report as JSON on stdout (no progress bar).
    #[arg(long)]
    pub json: bool,
    /// Also write the report folder DIR: report.json (everything) and a self-contained index.html.
    /// A name ending in .html, .htm or .json is refused (exit 2) before anything is read: a report
    /// is a folder.
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathBuf>,
    /// Where to keep the index [default: ROOT/.discus/index.sqlite].
    #[arg(long, value_name = "FILE")]
    pub index: Option<PathBuf>,
    /// How many findings of each kind to list in the text summary (all are in --json / --report).
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub show: usize,
}

pub fn run(args: ValidateArgs) -> anyhow::Result<ExitCode> {
    if !args.root.is_dir() {
        eprintln!(
            "error: {}: not a folder (expected a dataset root holding {}/ and the CSV files)",
            args.root.display(),
            discus_core::layout::Split::Train
        );
        return Ok(ExitCode::from(2));
    }
    if let Some(dir) = &args.report {
        if let Err(e) = discus_report::check_report_dir(dir) {
            eprintln!("error: --report {e}");
            return Ok(ExitCode::from(2));
        }
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    if args.json || !std::io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} reading headers {bar:40} {pos}/{len} files {per_sec} eta {eta}",
        )
        .expect("a valid template"),
    );
    let progress = |p: Progress| {
        bar.set_length(p.files_total);
        bar.set_position(p.files_done);
    };
    let options = ValidateOptions {
        index_path: args.index.clone(),
    };
    let report = validate(&args.root, &options, &progress)
        .with_context(|| format!("validating {}", args.root.display()))?;
    bar.finish_and_clear();

    let written = match &args.report {
        Some(dir) => Some(discus_data::validate::report::write_report(dir, &report)?),
        None => None,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        discus_data::validate::text::write_text(&report, args.show, &mut std::io::stdout().lock())?;
        if let Some(files) = &written {
            println!("report: {}", files.html.display());
        }
    }
    Ok(if report.has_errors() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

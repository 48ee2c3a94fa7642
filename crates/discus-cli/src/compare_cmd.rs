//! `discus compare`: how representative dataset B is of dataset A.

use anyhow::Context;
use clap::Args;
use discus_core::layout::Layout;
use discus_eval::compare::{compare, dataset_facts, write_report, write_text};
use std::path::PathBuf;
use std::process::ExitCode;

/// How representative dataset B is of dataset A: scanners, protocols, labels; divergences and flags.
///
/// Compares dataset B with dataset A (the reference), side by side: vendors (Manufacturer), field
/// strengths, matrices (rows x columns), slice thickness and series kinds (over series), and the
/// label distribution (Normal/Mild, Moderate, Severe) per condition x level (over studies).
///
/// Each facet gets its total variation distance and Jensen-Shannon divergence (base 2, bits), and
/// a plain-language flag where B is outside A's range: a category B has and A lacks (a vendor, a
/// matrix, a grade at a level), a field strength or slice thickness outside A's min-max, or a
/// Jensen-Shannon divergence above 0.05 bits.
///
/// Facts come from each dataset's index (ROOT/.discus/index.sqlite); a dataset without one is
/// scanned first, as `discus validate` does (run `discus validate` to refresh a stale index).
/// Exit status: 0 whether or not anything is flagged, 1 when a dataset cannot be read, 2 on usage
/// errors.
#[derive(Args, Debug)]
pub struct CompareArgs {
    /// The reference dataset root (for example LumbarDISC).
    pub a: PathBuf,
    /// The dataset to compare with it (for example a hospital's ingested data).
    pub b: PathBuf,
    /// Write the report folder DIR: report.json and a self-contained index.html with bar plots.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Print the whole comparison as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: CompareArgs) -> anyhow::Result<ExitCode> {
    for root in [&args.a, &args.b] {
        if !root.is_dir() {
            eprintln!(
                "error: {}: not a folder (expected a dataset root holding {}/ and the CSV files)",
                root.display(),
                discus_core::layout::Split::Train
            );
            return Ok(ExitCode::from(2));
        }
    }
    if let Some(dir) = &args.out {
        if let Err(e) = discus_report::check_report_dir(dir) {
            eprintln!("error: --out {e}");
            return Ok(ExitCode::from(2));
        }
    }
    let facts = |root: &PathBuf| {
        if !Layout::new(root).index().is_file() {
            eprintln!("{}: no index yet, scanning the dataset", root.display());
        }
        dataset_facts(root, &|_| {}).with_context(|| format!("reading {}", root.display()))
    };
    let a = facts(&args.a)?;
    let b = facts(&args.b)?;
    let c = compare(&a, &b);
    let written = match &args.out {
        Some(dir) => Some(write_report(dir, &c)?),
        None => None,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&c)?);
    } else {
        let mut out = std::io::stdout().lock();
        write_text(&c, &mut out)?;
        if let Some(files) = &written {
            use std::io::Write;
            writeln!(out, "report: {}", files.html.display())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

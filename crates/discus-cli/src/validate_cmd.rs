//! `discus validate`: check a LumbarDISC-layout dataset and print its findings and shape.

use anyhow::Context;
use clap::Args;
use discus_data::validate::{
    validate, FindingKind, FindingSeverity, Progress, Report, ValidateOptions,
};
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
            "error: {}: not a folder (expected a dataset root holding train_images/ and the CSV files)",
            args.root.display()
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
        Some(dir) => Some(discus_data::validate_report::write_report(dir, &report)?),
        None => None,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_summary(&report, args.show);
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

fn join_counts<'a>(m: impl IntoIterator<Item = (&'a String, &'a u64)>) -> String {
    let v: Vec<String> = m.into_iter().map(|(k, n)| format!("{k} {n}")).collect();
    if v.is_empty() {
        "-".into()
    } else {
        v.join(", ")
    }
}

/// The "dataset card" section: what `ROOT/dataset.toml` says about source, licence and uses.
fn print_card(r: &Report) {
    use discus_core::governance::CARD_FILE;
    let Some(card) = &r.card else {
        if r.findings
            .iter()
            .any(|f| f.kind == FindingKind::BadDatasetCard)
        {
            println!("dataset card: unreadable {CARD_FILE} (see the bad_dataset_card finding)");
        } else {
            println!("warning: no {CARD_FILE}: licence and permitted uses unknown");
        }
        return;
    };
    println!("dataset card ({CARD_FILE})");
    println!("  name:            {}", card.name);
    println!("  source:          {}", card.source);
    if let Some(date) = &card.date {
        println!("  date:            {date}");
    }
    if !card.sites.is_empty() {
        println!("  sites:           {}", card.sites.join(", "));
    }
    println!("  licence:         {}", card.licence.name);
    if let Some(url) = &card.licence.url {
        println!("  licence url:     {url}");
    }
    let uses: Vec<&str> = card
        .licence
        .permitted_uses
        .iter()
        .map(|u| u.as_str())
        .collect();
    println!(
        "  permitted uses:  {}",
        if uses.is_empty() {
            "none".to_string()
        } else {
            uses.join(", ")
        }
    );
    println!(
        "  citation required: {}",
        if card.licence.citation_required {
            "yes"
        } else {
            "no"
        }
    );
    for c in card.citations() {
        println!("    cite: {c}");
    }
    let d = &card.deidentification;
    println!(
        "  de-identification: {}{}",
        if d.applied { "applied" } else { "not applied" },
        d.method
            .as_ref()
            .map(|m| format!(" ({m})"))
            .unwrap_or_default()
    );
    if !card.derived_from.is_empty() {
        let names: Vec<&str> = card.derived_from.iter().map(|c| c.name.as_str()).collect();
        println!("  derived from:    {}", names.join(", "));
    }
}

fn print_summary(r: &Report, show: usize) {
    let s = &r.shape;
    let scan = &r.scan;
    println!("dataset {}", r.root.display());
    println!(
        "  {} files in {} series of {} studies; {} headers read, {} from the index ({}), {:.1} s",
        scan.files,
        scan.series,
        s.studies,
        scan.files_read,
        scan.files_reused,
        r.index.display(),
        scan.seconds
    );
    print_card(r);
    println!("shape");
    println!("  series per type:    {}", join_counts(&s.series_per_kind));
    println!(
        "  series per study (T1,T2,Ax): {}",
        join_counts(&s.series_count_patterns)
    );
    let slices: Vec<String> = s
        .slices_per_series
        .iter()
        .map(|(k, m)| format!("{k} {}/{}/{}", m.min, m.median, m.max))
        .collect();
    println!(
        "  slices per series (min/median/max): {}",
        slices.join(", ")
    );
    for (kind, sizes) in &s.matrix_sizes {
        let mut v: Vec<(&String, &u64)> = sizes.iter().collect();
        v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        println!(
            "  matrix sizes (rows x columns), {kind}: {}",
            join_counts(v.into_iter().take(8))
        );
    }
    println!("  vendors:            {}", join_counts(&s.vendors));
    println!("  field strengths (T): {}", join_counts(&s.field_strengths));
    println!(
        "  transfer syntaxes:  {}",
        join_counts(&s.transfer_syntaxes)
    );
    if !s.labels.is_empty() {
        println!(
            "  labels: {} studies, {} points; Normal/Mild / Moderate / Severe / missing:",
            s.labelled_studies, s.points
        );
        println!(
            "    {:<6} {:>17} {:>17} {:>17} {:>17} {:>17}",
            "level", "spinal", "L foraminal", "R foraminal", "L subarticular", "R subarticular"
        );
        for lv in discus_core::Level::ALL {
            let cells: Vec<String> = discus_core::Condition::ALL
                .iter()
                .map(|c| {
                    let x = &s.labels[c.index() * 5 + lv.index()];
                    format!(
                        "{}/{}/{}/{}",
                        x.normal_mild, x.moderate, x.severe, x.missing
                    )
                })
                .collect();
            println!(
                "    {:<6} {:>17} {:>17} {:>17} {:>17} {:>17}",
                lv.key(),
                cells[0],
                cells[1],
                cells[2],
                cells[3],
                cells[4]
            );
        }
        if let Some(share) = s.severe_spinal_share {
            println!(
                "  studies with a Severe spinal level: {:.1}%",
                share * 100.0
            );
        }
    }
    println!(
        "findings: {} errors, {} warnings, {} info",
        r.count(FindingSeverity::Error),
        r.count(FindingSeverity::Warning),
        r.count(FindingSeverity::Info)
    );
    let mut groups: Vec<_> = r.by_kind().into_iter().collect();
    groups.sort_by_key(|(k, _)| (k.severity(), *k));
    for (kind, list) in groups {
        println!(
            "  {:<7} {} ({})",
            kind.severity().as_str(),
            kind,
            list.len()
        );
        for f in list.iter().take(show) {
            println!("    {}", f.message);
        }
        if list.len() > show {
            println!("    ... and {} more", list.len() - show);
        }
    }
}

//! `discus deid`: de-identify a folder of DICOM files, and `discus deid verify`: prove it.

use clap::{Args, Subcommand, ValueEnum};
use discus_core::progress::Progress;
use discus_deid::run::RunConfig;
use discus_deid::text::{write_run_text, write_verify_text};
use discus_deid::Options;
use std::path::PathBuf;
use std::process::ExitCode;

/// De-identify DICOM files by the DICOM PS3.15 Annex E Basic Application Level Confidentiality
/// Profile (every attribute of Table E.1-1, at any depth, the file meta and private tags), with
/// consistent keyed UIDs and per-patient date shifts. Writes `OUT_DIR/<study>/<series>/<instance>.dcm`
/// (new UIDs) and OUT_DIR/dataset.toml (the card recording what was applied). The secret key and the
/// old-to-new map of patient ids and study/series UIDs stay with the site, outside OUT_DIR (by
/// default beside it: OUT_DIR.deid-key, OUT_DIR.deid-map.csv). Re-running resumes: finished files are
/// skipped. Exit 1 when any input could not be de-identified.
///
/// When IN_DIR is a dataset in the LumbarDISC layout (it holds train_images/ or test_images/), the
/// output keeps the layout: `OUT_DIR/<split>_images/<new study id>/<new series id>/<instance>.dcm`,
/// the new ids derived from the new UIDs as `discus ingest` derives them, and train.csv,
/// train_label_coordinates.csv, the *_series_descriptions.csv files and sample_submission.csv are
/// rewritten with the new ids. Other files at the top of IN_DIR are not copied (and are listed).
///
/// Then run `discus deid verify OUT_DIR --against IN_DIR`.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct DeidArgs {
    #[command(subcommand)]
    command: Option<DeidCommand>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand, Debug)]
enum DeidCommand {
    /// Scan every byte of every file under OUT_DIR for any identifying value of any input under
    /// IN_DIR (names, ids, dates, UIDs, free text; several spellings; UTF-8, Latin-1, UTF-16), and
    /// report each hit with its file and element. Exit 1 on any hit or unreadable output.
    Verify(VerifyArgs),
}

#[derive(Args, Debug)]
struct VerifyArgs {
    /// The de-identified folder.
    out_dir: PathBuf,
    /// The original folder the output was made from.
    #[arg(long)]
    against: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Profile {
    /// Basic Application Level Confidentiality Profile (PS3.15 E.1).
    Basic,
}

#[derive(Args, Debug)]
struct RunArgs {
    /// Folder of DICOM files to de-identify (searched recursively).
    #[arg(required = true)]
    in_dir: Option<PathBuf>,
    /// Folder to write the de-identified files into (must not be inside IN_DIR).
    #[arg(required = true)]
    out_dir: Option<PathBuf>,
    /// The confidentiality profile.
    #[arg(long, value_enum, default_value = "basic")]
    profile: Profile,
    /// Retain Longitudinal Temporal Information with Modified Dates: shift every date by a keyed
    /// per-patient offset (1 to 10 years back), keeping intervals, instead of removing dates.
    #[arg(long)]
    retain_longitudinal_modified_dates: bool,
    /// Retain Patient Characteristics Option (sex, age, size, weight, ...).
    #[arg(long)]
    retain_patient_characteristics: bool,
    /// Retain Device Identity Option (device serial numbers, station names, ...).
    #[arg(long)]
    retain_device_identity: bool,
    /// Retain UIDs Option: keep every UID unchanged.
    #[arg(long)]
    retain_uids: bool,
    /// Clean Descriptors Option: keep descriptions with the object's identifying words removed.
    #[arg(long)]
    clean_descriptors: bool,
    /// Keep the few private attributes of discus's safe list (diffusion parameters); every other
    /// private attribute is removed either way.
    #[arg(long)]
    keep_safe_private: bool,
    /// Secret key file (64 hex digits); created with a random key if absent. Same key, same output
    /// UIDs, pseudonyms and date shifts. Keep it at the site. [default: OUT_DIR.deid-key]
    #[arg(long)]
    key: Option<PathBuf>,
    /// Where to write the old-to-new map (CSV: kind,original,deidentified). Keep it at the site.
    /// [default: OUT_DIR.deid-map.csv]
    #[arg(long)]
    map: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: DeidArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        Some(DeidCommand::Verify(v)) => run_verify(v),
        None => run_deid(args.run),
    }
}

fn run_deid(a: RunArgs) -> anyhow::Result<ExitCode> {
    let (Some(in_dir), Some(out_dir)) = (a.in_dir, a.out_dir) else {
        anyhow::bail!("IN_DIR and OUT_DIR are required");
    };
    let Profile::Basic = a.profile;
    let options = Options {
        retain_longitudinal_modified_dates: a.retain_longitudinal_modified_dates,
        retain_patient_characteristics: a.retain_patient_characteristics,
        retain_device_identity: a.retain_device_identity,
        retain_uids: a.retain_uids,
        clean_descriptors: a.clean_descriptors,
        keep_safe_private: a.keep_safe_private,
    };
    let mut config = RunConfig::with_defaults(in_dir.clone(), out_dir, options);
    if let Some(k) = a.key {
        config.key_path = k;
    }
    if let Some(m) = a.map {
        config.map_path = m;
    }
    let bar = if a.json {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(0)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} de-identifying [{bar:40}] {pos}/{len} files ({per_sec}, {eta} left)",
        )
        .unwrap()
        .progress_chars("=> "),
    );
    let shown = bar.clone();
    let progress = Progress::with_observer(move |p| {
        shown.set_length(p.total);
        shown.set_position(p.done);
    });
    let report = discus_deid::run(&config, &progress)?;
    bar.finish_and_clear();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        write_run_text(&report, &mut std::io::stdout(), &mut std::io::stderr())?;
    }
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn run_verify(v: VerifyArgs) -> anyhow::Result<ExitCode> {
    let report = discus_deid::verify(&v.out_dir, &v.against)?;
    if v.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        write_verify_text(&report, &mut std::io::stdout())?;
    }
    Ok(if report.clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

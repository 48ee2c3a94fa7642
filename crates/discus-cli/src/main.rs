//! The `discus` binary: parses arguments, calls the libraries, prints. No logic of its own.
//!
//! Exit status: 0 on success, 1 when the work found errors (or failed), 2 on usage errors.
//! Each command lives in its own module; its clap doc comments are its help text.

use clap::{Parser, Subcommand};

mod compare_cmd;
mod deid_cmd;
mod demo;
mod dicom_cmd;
mod eval;
mod ingest_cmd;
mod model_cmd;
mod reads_cmd;
mod reads_qualify_cmd;
mod serve_cmd;
mod synth_cmd;
mod validate_cmd;
use std::process::ExitCode;

/// discus: lumbar spine MRI diagnostic-assist toolkit for data in the RSNA LumbarDISC layout.
///
/// Start with `discus demo`, which builds a small synthetic cohort and runs every step on it.
#[derive(Parser)]
#[command(name = "discus", version, about, long_about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    // One variant per command area; each module owns its arguments and its `run`.
    /// Run the whole path on a small synthetic cohort and print where everything went.
    Demo(demo::DemoArgs),
    /// Multi-reader protocol: import reads, agreement, disagreements, adjudication, consensus.
    Reads(reads_cmd::ReadsArgs),
    /// Score a submission with the competition metric (four terms and the score).
    Score(eval::ScoreArgs),
    /// Constant baselines (uniform, loss-optimal prior): the floor every model must beat.
    Baseline(eval::BaselineArgs),
    /// Evaluation report: bootstrap interval, per-condition/level/site breakdowns, calibration (JSON + HTML).
    Evaluate(eval::EvaluateArgs),
    /// Train a localise-then-grade model (burn, CPU by default) on a labelled dataset.
    Train(model_cmd::TrainArgs),
    /// Predict all 25 findings per study with a trained model: submission CSV and findings.json.
    Predict(model_cmd::PredictArgs),
    /// Model tools: `model export --onnx MODEL --out DIR` writes one ONNX file per network.
    Model(model_cmd::ModelArgs),
    /// Study-level K-fold split stratified by site and severe disease.
    Split(eval::SplitArgs),
    // Its help (short and long) is the doc comment of CompareArgs.
    Compare(compare_cmd::CompareArgs),
    /// Write a synthetic lumbar MRI cohort with known truth (LumbarDISC layout, DICOM + CSVs + truth.json).
    Synth(synth_cmd::SynthArgs),
    /// Draw a contact sheet (PNG) of one study with its label points and grades.
    Render(synth_cmd::RenderArgs),
    /// Look inside one DICOM file: header summary (`info`), stored pixels to NumPy .npy (`decode`).
    Dicom(dicom_cmd::DicomArgs),
    /// Check a LumbarDISC-layout dataset (CSVs and every DICOM header): findings, shape, and an index.
    Validate(validate_cmd::ValidateArgs),
    /// De-identify DICOM files (PS3.15 E.1 basic profile and options); `deid verify` proves no identifier survives.
    Deid(deid_cmd::DeidArgs),
    /// Turn a PACS export into a LumbarDISC-layout dataset: series classified, odd files reported, ids from UIDs.
    Ingest(ingest_cmd::IngestArgs),
    /// Run the PACS node: DICOM C-STORE and STOW-RS in, jobs, results back (serve.toml).
    Serve(serve_cmd::ServeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Runs one command (also used by `discus demo` for each of its steps).
fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Demo(a) => demo::run(a),
        Command::Reads(a) => reads_cmd::run(a),
        Command::Score(a) => eval::run_score(a),
        Command::Baseline(a) => eval::run_baseline(a),
        Command::Evaluate(a) => eval::run_evaluate(a),
        Command::Split(a) => eval::run_split(a),
        Command::Compare(a) => compare_cmd::run(a),
        Command::Train(a) => model_cmd::run_train(a),
        Command::Predict(a) => model_cmd::run_predict(a),
        Command::Model(a) => model_cmd::run_model(a),
        Command::Synth(a) => synth_cmd::run_synth(a),
        Command::Render(a) => synth_cmd::run_render(a),
        Command::Dicom(a) => dicom_cmd::run(a),
        Command::Validate(a) => validate_cmd::run(a),
        Command::Deid(a) => deid_cmd::run(a),
        Command::Ingest(a) => ingest_cmd::run(a),
        Command::Serve(a) => serve_cmd::run(a),
    }
}

//! The `discus` binary: parses arguments, calls the libraries, prints. No logic of its own.
//!
//! Exit status: 0 on success, 1 when the work found errors (or failed), 2 on usage errors.
//! Each command lives in its own module; its clap doc comments are its help text.

use clap::{Parser, Subcommand};
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result: anyhow::Result<ExitCode> = match cli.command {};
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

//! `discus serve --config serve.toml`: the PACS node (see discus-serve and the README's serve
//! section).

use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

/// Run the PACS node: Storage SCP and STOW-RS in, jobs in SQLite, results back to the PACS.
///
/// Every setting is in serve.toml (documented in the README). Binds to 127.0.0.1 unless told
/// otherwise. Prints the HTTP and DICOM addresses, then runs until killed.
#[derive(Args)]
pub struct ServeArgs {
    /// The configuration file.
    #[arg(long)]
    config: PathBuf,
}

/// Starts the node and blocks.
pub fn run(a: ServeArgs) -> Result<ExitCode> {
    let config = discus_serve::config::ServeConfig::read(&a.config)?;
    let running = discus_serve::start(config).context("starting discus serve")?;
    println!("http {}", running.http_addr);
    println!("dicom {}", running.dicom_addr);
    println!(
        "model version {}; {} interrupted job(s) queued again",
        running.node.model_version, running.recovered
    );
    use std::io::Write;
    let _ = std::io::stdout().flush();
    running.wait();
    Ok(ExitCode::SUCCESS)
}

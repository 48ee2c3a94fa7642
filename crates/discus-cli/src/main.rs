//! The `discus` binary: parses arguments, calls the libraries, prints.

use clap::Parser;

/// discus: lumbar spine MRI diagnostic-assist toolkit (RSNA LumbarDISC layout).
#[derive(Parser)]
#[command(name = "discus", version, about, long_about = None)]
struct Cli {}

fn main() {
    let _ = Cli::parse();
}

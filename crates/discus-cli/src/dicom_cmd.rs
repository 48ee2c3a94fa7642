//! `discus dicom ...`: look inside single DICOM files.

use anyhow::Context;
use clap::{Args, Subcommand};
use discus_data::dicom;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `discus dicom`.
#[derive(Args)]
pub struct DicomArgs {
    #[command(subcommand)]
    command: DicomCommand,
}

#[derive(Subcommand)]
enum DicomCommand {
    /// Print the header fields discus uses (geometry, pixel format, acquisition); no patient identity.
    ///
    /// Pixel data is not read. With --json, prints the fields as one JSON object.
    Info {
        /// The DICOM file.
        file: PathBuf,
        /// Print JSON (the InstanceHeader fields) instead of a readable summary.
        #[arg(long)]
        json: bool,
    },
    /// Decode the stored pixel values (before rescale and windowing) and write them as a NumPy .npy.
    ///
    /// The array has shape (frames, rows, columns), or (frames, rows, columns, samples) for colour,
    /// and the dtype that Bits Allocated and Pixel Representation give (uint8 ... int32).
    Decode {
        /// The DICOM file.
        file: PathBuf,
        /// Where to write the .npy file.
        #[arg(long, value_name = "OUT.npy")]
        npy: PathBuf,
        /// Print shape and dtype as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Prints to stdout; a closed pipe (`discus dicom info f | head`) is not an error.
fn out(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    match o.write_all(text.as_bytes()).and_then(|_| o.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => Ok(r?),
    }
}

/// Runs `discus dicom`.
pub fn run(args: DicomArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        DicomCommand::Info { file, json } => {
            let h = dicom::read_header(&file)?;
            if json {
                out(&format!("{}\n", serde_json::to_string_pretty(&h)?))?;
            } else {
                let mut text = Vec::new();
                h.write_text(&mut text)?;
                out(&String::from_utf8_lossy(&text))?;
            }
        }
        DicomCommand::Decode { file, npy, json } => {
            let px = dicom::decode_pixels(&file)?;
            dicom::write_npy(&npy, &px).with_context(|| format!("writing {}", npy.display()))?;
            let mut text = Vec::new();
            if json {
                px.write_json(&npy, &mut text)?;
            } else {
                px.write_text(&npy, &mut text)?;
            }
            out(&String::from_utf8_lossy(&text))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

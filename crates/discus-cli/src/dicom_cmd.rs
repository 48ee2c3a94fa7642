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
                out(&summary(&h))?;
            }
        }
        DicomCommand::Decode { file, npy, json } => {
            let px = dicom::decode_pixels(&file)?;
            dicom::write_npy(&npy, &px).with_context(|| format!("writing {}", npy.display()))?;
            let shape = px.shape();
            if json {
                let v = serde_json::json!({
                    "shape": shape,
                    "dtype": px.dtype(),
                    "photometric_interpretation": px.photometric_interpretation,
                    "npy": npy,
                });
                out(&format!("{}\n", serde_json::to_string_pretty(&v)?))?;
            } else {
                let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
                out(&format!(
                    "shape ({}) dtype {} ({}) -> {}\n",
                    dims.join(", "),
                    px.dtype(),
                    px.photometric_interpretation,
                    npy.display()
                ))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn summary(h: &discus_data::InstanceHeader) -> String {
    fn opt<T: std::fmt::Display>(v: &Option<T>) -> String {
        v.as_ref().map_or("-".into(), |x| x.to_string())
    }
    fn list(v: Option<&[f64]>) -> String {
        v.map_or("-".into(), |xs| {
            xs.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        })
    }
    let mut s = String::new();
    let mut line = |k: &str, v: String| s.push_str(&format!("{k:<24}{v}\n"));
    line("transfer syntax", h.transfer_syntax.clone());
    line("SOP class", h.sop_class_uid.clone());
    line("SOP instance", h.sop_instance_uid.clone());
    line("study", h.study_instance_uid.clone());
    line("series", h.series_instance_uid.clone());
    line("frame of reference", opt(&h.frame_of_reference_uid));
    line("modality", opt(&h.modality));
    line("series number", opt(&h.series_number));
    line("instance number", opt(&h.instance_number));
    line("series description", opt(&h.series_description));
    line(
        "image size",
        format!(
            "{} x {} (rows x columns), {} frame(s), {} sample(s)/pixel",
            h.rows, h.columns, h.number_of_frames, h.samples_per_pixel
        ),
    );
    line(
        "pixel format",
        format!(
            "{} allocated, {} stored, high bit {}, {}",
            h.bits_allocated,
            h.bits_stored,
            opt(&h.high_bit),
            if h.pixel_representation == 1 {
                "signed"
            } else {
                "unsigned"
            }
        ),
    );
    line("photometric", opt(&h.photometric_interpretation));
    line(
        "position (mm)",
        list(h.image_position_patient.as_ref().map(|v| &v[..])),
    );
    line(
        "orientation",
        list(h.image_orientation_patient.as_ref().map(|v| &v[..])),
    );
    line(
        "pixel spacing (mm)",
        list(h.pixel_spacing.as_ref().map(|v| &v[..])),
    );
    line("slice thickness (mm)", opt(&h.slice_thickness));
    line("slice spacing (mm)", opt(&h.spacing_between_slices));
    line(
        "rescale",
        format!(
            "slope {} intercept {}",
            opt(&h.rescale_slope),
            opt(&h.rescale_intercept)
        ),
    );
    line(
        "window",
        format!(
            "centre {} width {}",
            opt(&h.window_center),
            opt(&h.window_width)
        ),
    );
    line(
        "scanner",
        format!(
            "{} {} {} T",
            opt(&h.manufacturer),
            opt(&h.manufacturer_model_name),
            opt(&h.magnetic_field_strength)
        ),
    );
    line("institution", opt(&h.institution_name));
    line(
        "TR / TE / TI (ms)",
        format!(
            "{} / {} / {}",
            opt(&h.repetition_time),
            opt(&h.echo_time),
            opt(&h.inversion_time)
        ),
    );
    line("scanning sequence", opt(&h.scanning_sequence));
    line("burned-in annotation", opt(&h.burned_in_annotation));
    s
}

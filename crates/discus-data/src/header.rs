//! The header fields of one DICOM instance that a lumbar pipeline needs.
//!
//! This is deliberately free of patient identity: no names, ids, birth dates or accession numbers are
//! read into it, so nothing downstream (logs, errors, the index) can leak them.

use serde::{Deserialize, Serialize};

/// What discus reads from one DICOM file's header (see `dicom::read_header`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct InstanceHeader {
    /// Transfer syntax UID from the file meta group.
    pub transfer_syntax: String,
    /// SOP Class UID (0008,0016).
    pub sop_class_uid: String,
    /// SOP Instance UID (0008,0018).
    pub sop_instance_uid: String,
    /// Study Instance UID (0020,000D).
    pub study_instance_uid: String,
    /// Series Instance UID (0020,000E).
    pub series_instance_uid: String,
    /// Frame of Reference UID (0020,0052).
    pub frame_of_reference_uid: Option<String>,
    /// Modality (0008,0060), e.g. `MR`.
    pub modality: Option<String>,
    /// Series Number (0020,0011).
    pub series_number: Option<i64>,
    /// Instance Number (0020,0013).
    pub instance_number: Option<i64>,
    /// (0020,0032) x, y, z of the centre of the first transmitted pixel, in mm (patient LPS frame).
    pub image_position_patient: Option<[f64; 3]>,
    /// (0020,0037) row direction cosines then column direction cosines.
    pub image_orientation_patient: Option<[f64; 6]>,
    /// (0028,0030) spacing between rows then between columns, in mm.
    pub pixel_spacing: Option<[f64; 2]>,
    /// Slice Thickness (0018,0050), mm.
    pub slice_thickness: Option<f64>,
    /// Spacing Between Slices (0018,0088), mm.
    pub spacing_between_slices: Option<f64>,
    /// Rows (0028,0010).
    pub rows: u16,
    /// Columns (0028,0011).
    pub columns: u16,
    /// Number of Frames (0028,0008); when absent, 1 for an image (Rows > 0), else 0.
    pub number_of_frames: u32,
    /// Samples per Pixel (0028,0002); when absent, 1 for an image (Rows > 0), else 0.
    pub samples_per_pixel: u16,
    /// Photometric Interpretation (0028,0004), e.g. `MONOCHROME2`.
    pub photometric_interpretation: Option<String>,
    /// Bits Allocated (0028,0100).
    pub bits_allocated: u16,
    /// Bits Stored (0028,0101).
    pub bits_stored: u16,
    /// High Bit (0028,0102).
    pub high_bit: Option<u16>,
    /// Pixel Representation (0028,0103): 0 unsigned, 1 two's complement.
    pub pixel_representation: u16,
    /// Rescale Slope (0028,1053).
    pub rescale_slope: Option<f64>,
    /// Rescale Intercept (0028,1052).
    pub rescale_intercept: Option<f64>,
    /// Window Center (0028,1050), the first value.
    pub window_center: Option<f64>,
    /// Window Width (0028,1051), the first value.
    pub window_width: Option<f64>,
    /// Manufacturer (0008,0070).
    pub manufacturer: Option<String>,
    /// Manufacturer's Model Name (0008,1090).
    pub manufacturer_model_name: Option<String>,
    /// Magnetic Field Strength (0018,0087), tesla.
    pub magnetic_field_strength: Option<f64>,
    /// Institution Name (0008,0080).
    pub institution_name: Option<String>,
    /// Series Description (0008,103E).
    pub series_description: Option<String>,
    /// Repetition Time (0018,0080), ms.
    pub repetition_time: Option<f64>,
    /// Echo Time (0018,0081), ms.
    pub echo_time: Option<f64>,
    /// Inversion Time (0018,0082), ms.
    pub inversion_time: Option<f64>,
    /// Scanning Sequence (0018,0020), e.g. `SE` or `IR`.
    pub scanning_sequence: Option<String>,
    /// Burned In Annotation (0028,0301), `YES` or `NO`.
    pub burned_in_annotation: Option<String>,
    /// (0008,0008) Image Type, values joined with `\` (e.g. `ORIGINAL\PRIMARY\LOCALIZER`).
    #[serde(default)]
    pub image_type: Option<String>,
}

impl InstanceHeader {
    /// Writes the readable summary `discus dicom info` prints: one `field  value` line per header
    /// field discus uses (`-` where absent); no patient identity.
    pub fn write_text(&self, w: &mut impl std::io::Write) -> std::io::Result<()> {
        let h = self;
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
        w.write_all(s.as_bytes())
    }
}

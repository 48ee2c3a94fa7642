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
    pub sop_class_uid: String,
    pub sop_instance_uid: String,
    pub study_instance_uid: String,
    pub series_instance_uid: String,
    pub frame_of_reference_uid: Option<String>,
    pub modality: Option<String>,
    pub series_number: Option<i64>,
    pub instance_number: Option<i64>,
    /// (0020,0032) x, y, z of the centre of the first transmitted pixel, in mm (patient LPS frame).
    pub image_position_patient: Option<[f64; 3]>,
    /// (0020,0037) row direction cosines then column direction cosines.
    pub image_orientation_patient: Option<[f64; 6]>,
    /// (0028,0030) spacing between rows then between columns, in mm.
    pub pixel_spacing: Option<[f64; 2]>,
    pub slice_thickness: Option<f64>,
    pub spacing_between_slices: Option<f64>,
    pub rows: u16,
    pub columns: u16,
    pub number_of_frames: u32,
    pub samples_per_pixel: u16,
    pub photometric_interpretation: Option<String>,
    pub bits_allocated: u16,
    pub bits_stored: u16,
    pub high_bit: Option<u16>,
    pub pixel_representation: u16,
    pub rescale_slope: Option<f64>,
    pub rescale_intercept: Option<f64>,
    pub window_center: Option<f64>,
    pub window_width: Option<f64>,
    pub manufacturer: Option<String>,
    pub manufacturer_model_name: Option<String>,
    pub magnetic_field_strength: Option<f64>,
    pub institution_name: Option<String>,
    pub series_description: Option<String>,
    pub repetition_time: Option<f64>,
    pub echo_time: Option<f64>,
    pub inversion_time: Option<f64>,
    pub scanning_sequence: Option<String>,
    pub burned_in_annotation: Option<String>,
    /// (0008,0008) Image Type, values joined with `\` (e.g. `ORIGINAL\PRIMARY\LOCALIZER`).
    #[serde(default)]
    pub image_type: Option<String>,
}

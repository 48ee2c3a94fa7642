//! Header fields from a parsed object (dicom-object) or from the fast scanner's elements.

use super::open::{open_bytes, open_object};
use super::{fast, DicomError};
use crate::header::InstanceHeader;
use dicom_core::value::{PrimitiveValue, Value};
use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, InMemDicomObject};
use std::path::Path;

/// Reads the header fields discus needs from the DICOM file at `path`, without reading pixel data.
///
/// Lenient by design, for scanning datasets: absent UIDs become empty strings, absent optional fields
/// `None`, absent image attributes 0 (Number of Frames and Samples per Pixel default to 1 when the
/// instance has rows). A multi-valued decimal string (IPP, IOP, Pixel Spacing) that does not parse
/// into the expected number of values is `None`. Structural problems (not DICOM, truncated before
/// Pixel Data, bad file meta group) are errors.
pub fn read_header(path: &Path) -> Result<InstanceHeader, DicomError> {
    if let Some(h) = fast::read_header(path) {
        return h;
    }
    read_header_full(path)
}

/// [`read_header`] through dicom-object only (no fast scanner): the reference the scanner is
/// tested against, and the path that produces the errors.
pub fn read_header_full(path: &Path) -> Result<InstanceHeader, DicomError> {
    let obj = open_object(path, Some(tags::PIXEL_DATA))?;
    Ok(header_from_object(&obj))
}

/// [`read_header`] for a file already in memory; `path` is only used in error messages.
pub fn read_header_bytes(bytes: &[u8], path: &Path) -> Result<InstanceHeader, DicomError> {
    if let Some(h) = fast::read_header_bytes(path, bytes) {
        return h;
    }
    read_header_full_bytes(bytes, path)
}

/// [`read_header_full`] for a file already in memory; `path` is only used in error messages.
pub fn read_header_full_bytes(bytes: &[u8], path: &Path) -> Result<InstanceHeader, DicomError> {
    let obj = open_bytes(path, bytes, Some(tags::PIXEL_DATA))?;
    Ok(header_from_object(&obj))
}

/// Reads a whole DICOM file in memory the way discus reads every file: with or without the
/// preamble or the file meta group, lengths checked against the file before anything is allocated,
/// the lenient second try for non-conformant meta groups, and dicom-rs panics caught. `path` is
/// only used in error messages. (De-identification reads its inputs with this.)
pub fn open_dicom_bytes(bytes: &[u8], path: &Path) -> Result<DefaultDicomObject, DicomError> {
    open_bytes(path, bytes, None)
}

/// The header of a whole file already in memory, after checking that the file is complete: every
/// top-level element, native Pixel Data included, must fit in `bytes`, so a truncated file is a
/// [`DicomError::Parse`] here (where [`read_header`], which stops before the pixels, would accept
/// it). Encapsulated (compressed) pixel data is checked only as far as its start; its fragments are
/// the codec's business. Uses the fast scanner, falling back to dicom-object as [`read_header`] does.
pub fn read_header_complete(bytes: &[u8], path: &Path) -> Result<InstanceHeader, DicomError> {
    super::fast::check(path, bytes)?;
    match super::fast::scan_complete(path, bytes) {
        Some(h) => Ok(h),
        None => read_header_bytes(bytes, path),
    }
}

pub(super) fn header_from_object(obj: &DefaultDicomObject) -> InstanceHeader {
    let o: &InMemDicomObject = obj;
    build_header(obj.meta().transfer_syntax(), o)
}

/// Where header values come from: a parsed dicom-object, or the fast scanner's few elements.
pub(super) trait Fields {
    /// The value as text, multiple values joined with `\`, padding trimmed; `None` when absent or
    /// empty.
    fn text(&self, tag: Tag) -> Option<String>;
    /// The values of a numeric attribute (decimal/integer strings or binary numbers).
    fn numbers(&self, tag: Tag) -> Option<Vec<f64>>;
}

impl Fields for InMemDicomObject {
    fn text(&self, tag: Tag) -> Option<String> {
        text_of(self, tag)
    }
    fn numbers(&self, tag: Tag) -> Option<Vec<f64>> {
        numbers_of(self, tag)
    }
}

pub(super) fn build_header<F: Fields + ?Sized>(transfer_syntax: &str, o: &F) -> InstanceHeader {
    let text = |tag| o.text(tag);
    let rows = int_of(o, tags::ROWS).unwrap_or(0).clamp(0, u16::MAX as i64) as u16;
    let columns = int_of(o, tags::COLUMNS)
        .unwrap_or(0)
        .clamp(0, u16::MAX as i64) as u16;
    let default_one = if rows > 0 { 1 } else { 0 };
    let u16_of = |tag| int_of(o, tag).and_then(|v| u16::try_from(v).ok());
    InstanceHeader {
        transfer_syntax: trim_value(transfer_syntax).to_string(),
        sop_class_uid: text(tags::SOP_CLASS_UID).unwrap_or_default(),
        sop_instance_uid: text(tags::SOP_INSTANCE_UID).unwrap_or_default(),
        study_instance_uid: text(tags::STUDY_INSTANCE_UID).unwrap_or_default(),
        series_instance_uid: text(tags::SERIES_INSTANCE_UID).unwrap_or_default(),
        frame_of_reference_uid: text(tags::FRAME_OF_REFERENCE_UID),
        modality: text(tags::MODALITY),
        series_number: int_of(o, tags::SERIES_NUMBER),
        instance_number: int_of(o, tags::INSTANCE_NUMBER),
        image_position_patient: fixed_floats(o, tags::IMAGE_POSITION_PATIENT),
        image_orientation_patient: fixed_floats(o, tags::IMAGE_ORIENTATION_PATIENT),
        pixel_spacing: fixed_floats(o, tags::PIXEL_SPACING),
        slice_thickness: first_float(o, tags::SLICE_THICKNESS),
        spacing_between_slices: first_float(o, tags::SPACING_BETWEEN_SLICES),
        rows,
        columns,
        number_of_frames: int_of(o, tags::NUMBER_OF_FRAMES)
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(default_one),
        samples_per_pixel: u16_of(tags::SAMPLES_PER_PIXEL).unwrap_or(default_one as u16),
        photometric_interpretation: text(tags::PHOTOMETRIC_INTERPRETATION),
        bits_allocated: u16_of(tags::BITS_ALLOCATED).unwrap_or(0),
        bits_stored: u16_of(tags::BITS_STORED).unwrap_or(0),
        high_bit: u16_of(tags::HIGH_BIT),
        pixel_representation: u16_of(tags::PIXEL_REPRESENTATION).unwrap_or(0),
        rescale_slope: first_float(o, tags::RESCALE_SLOPE),
        rescale_intercept: first_float(o, tags::RESCALE_INTERCEPT),
        window_center: first_float(o, tags::WINDOW_CENTER),
        window_width: first_float(o, tags::WINDOW_WIDTH),
        manufacturer: text(tags::MANUFACTURER),
        manufacturer_model_name: text(tags::MANUFACTURER_MODEL_NAME),
        magnetic_field_strength: first_float(o, tags::MAGNETIC_FIELD_STRENGTH),
        institution_name: text(tags::INSTITUTION_NAME),
        series_description: text(tags::SERIES_DESCRIPTION),
        repetition_time: first_float(o, tags::REPETITION_TIME),
        echo_time: first_float(o, tags::ECHO_TIME),
        inversion_time: first_float(o, tags::INVERSION_TIME),
        scanning_sequence: text(tags::SCANNING_SEQUENCE),
        burned_in_annotation: text(tags::BURNED_IN_ANNOTATION),
        image_type: text(tags::IMAGE_TYPE),
    }
}

/// Trims DICOM padding (spaces and NULs) from both ends.
pub(super) fn trim_value(s: &str) -> &str {
    s.trim_matches(|c: char| c == '\0' || c.is_whitespace())
}

pub(super) fn primitive(o: &InMemDicomObject, tag: Tag) -> Option<&PrimitiveValue> {
    match o.get(tag)?.value() {
        Value::Primitive(p) => Some(p),
        _ => None,
    }
}

/// The value as text, multiple values joined with `\`, padding trimmed; `None` when absent or empty.
pub(super) fn text_of(o: &InMemDicomObject, tag: Tag) -> Option<String> {
    let s = match primitive(o, tag)? {
        PrimitiveValue::Str(s) => trim_value(s).to_string(),
        PrimitiveValue::Strs(v) => v
            .iter()
            .map(|s| trim_value(s))
            .collect::<Vec<_>>()
            .join("\\"),
        // Unknown VR (UN) holds raw bytes; text attributes are ASCII-compatible.
        PrimitiveValue::U8(b) => trim_value(&String::from_utf8_lossy(b)).to_string(),
        other => trim_value(&other.to_str()).to_string(),
    };
    (!s.is_empty()).then_some(s)
}

/// The individual values of a numeric attribute as strings (DS/IS) or numbers (binary VRs).
/// Parses backslash-separated decimal strings; empty parts are skipped, any other bad part gives
/// `None`.
pub(super) fn parse_numbers<'a>(parts: impl Iterator<Item = &'a str>) -> Option<Vec<f64>> {
    let mut out = Vec::new();
    for part in parts {
        let t = trim_value(part);
        if t.is_empty() {
            continue;
        }
        let v: f64 = t.parse().ok()?;
        if !v.is_finite() {
            return None;
        }
        out.push(v);
    }
    Some(out)
}

/// The individual values of a numeric attribute as strings (DS/IS) or numbers (binary VRs).
pub(super) fn numbers_of(o: &InMemDicomObject, tag: Tag) -> Option<Vec<f64>> {
    let p = primitive(o, tag)?;
    let values = match p {
        PrimitiveValue::Empty => return None,
        PrimitiveValue::Str(s) => parse_numbers(s.split('\\'))?,
        PrimitiveValue::Strs(v) => parse_numbers(v.iter().flat_map(|s| s.split('\\')))?,
        PrimitiveValue::U8(b) => {
            // UN: the text of a DS/IS value.
            let s = String::from_utf8_lossy(b);
            parse_numbers(s.split('\\'))?
        }
        other => other.to_multi_float64().ok()?,
    };
    (!values.is_empty()).then_some(values)
}

pub(super) fn fixed_floats<const N: usize, F: Fields + ?Sized>(
    o: &F,
    tag: Tag,
) -> Option<[f64; N]> {
    let v = o.numbers(tag)?;
    <[f64; N]>::try_from(v.as_slice()).ok()
}

pub(super) fn first_float<F: Fields + ?Sized>(o: &F, tag: Tag) -> Option<f64> {
    o.numbers(tag)?.first().copied()
}

/// An integer attribute (IS, US, SS, UL, ...); a decimal string must hold an integral value.
pub(super) fn int_of<F: Fields + ?Sized>(o: &F, tag: Tag) -> Option<i64> {
    let v = first_float(o, tag)?;
    (v.fract() == 0.0 && v.abs() < 9.0e15).then_some(v as i64)
}

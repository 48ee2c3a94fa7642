//! Writing one synthetic slice as a DICOM MR Image Storage object (Explicit VR Little Endian,
//! 16-bit unsigned MONOCHROME2), following the LumbarDISC conventions: StudyInstanceUID is the
//! study id, SeriesInstanceUID the series id, PatientName/PatientID the study id.

use crate::protocol::{SeriesPlan, Site, SliceGeom};
use crate::raster::{SeriesSignal, GAMMA_MHZ_T};
use dicom_core::value::{PrimitiveValue, C};
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use discus_core::StudyId;

/// The UID root of the generated instance UIDs (the pydicom-style root used for generated test data).
pub const UID_ROOT: &str = "1.2.826.0.1.3680043.8.498";

/// SplitMix64: a strong 64-bit mixer, used to derive seeds and UIDs deterministically.
pub fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Mixes several values into one.
pub fn mix_all(parts: &[u64]) -> u64 {
    parts.iter().fold(0x5EED_u64, |h, &p| mix(h ^ mix(p)))
}

/// A decimal string for a DS element (at most 16 characters).
pub fn ds(v: f64) -> String {
    for prec in (0..=8).rev() {
        let s = format!("{v:.prec$}");
        let s = if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        };
        let s = if s == "-0" { "0".to_string() } else { s };
        if s.len() <= 16 {
            return s;
        }
    }
    format!("{v:.0}")
}

fn strs(v: impl IntoIterator<Item = String>) -> PrimitiveValue {
    PrimitiveValue::Strs(v.into_iter().collect())
}

/// Everything that identifies one instance.
pub struct InstanceInfo<'a> {
    /// The study.
    pub study: StudyId,
    /// The series the instance belongs to.
    pub series: &'a SeriesPlan,
    /// The site whose scanner acquired it (Manufacturer, model, field strength, InstitutionName).
    pub site: &'a Site,
    /// The slice geometry (position, orientation, matrix, spacing).
    pub geom: &'a SliceGeom,
    /// The series' signal model (acquisition matrix, phase direction, stored value range).
    pub signal: &'a SeriesSignal,
    /// InstanceNumber (0020,0013).
    pub instance_number: u32,
    /// SOPInstanceUID (0008,0018).
    pub sop_instance_uid: String,
    /// FrameOfReferenceUID (0020,0052).
    pub frame_of_reference_uid: String,
}

/// Encodes one instance to the bytes of a DICOM file (preamble, meta group, data set).
pub fn encode_instance(info: &InstanceInfo, pixels: &[u16]) -> Result<Vec<u8>, String> {
    let g = info.geom;
    let s = info.series;
    let study = info.study.to_string();
    let mut obj = InMemDicomObject::new_empty();
    let mut put = |tag, vr, v: PrimitiveValue| {
        obj.put(DataElement::new(tag, vr, v));
    };
    put(tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 100".into());
    put(
        tags::IMAGE_TYPE,
        VR::CS,
        strs(["ORIGINAL".into(), "PRIMARY".into(), "M".into()]),
    );
    put(tags::SOP_CLASS_UID, VR::UI, uids::MR_IMAGE_STORAGE.into());
    put(
        tags::SOP_INSTANCE_UID,
        VR::UI,
        info.sop_instance_uid.clone().into(),
    );
    put(tags::STUDY_DATE, VR::DA, PrimitiveValue::Empty);
    put(tags::STUDY_TIME, VR::TM, PrimitiveValue::Empty);
    put(tags::ACCESSION_NUMBER, VR::SH, PrimitiveValue::Empty);
    put(tags::MODALITY, VR::CS, "MR".into());
    put(
        tags::MANUFACTURER,
        VR::LO,
        info.site.manufacturer.clone().into(),
    );
    put(
        tags::INSTITUTION_NAME,
        VR::LO,
        info.site.name.clone().into(),
    );
    put(
        tags::REFERRING_PHYSICIAN_NAME,
        VR::PN,
        PrimitiveValue::Empty,
    );
    put(tags::SERIES_DESCRIPTION, VR::LO, s.kind.as_str().into());
    put(
        tags::MANUFACTURER_MODEL_NAME,
        VR::LO,
        info.site.model.clone().into(),
    );
    put(tags::PATIENT_NAME, VR::PN, study.clone().into());
    put(tags::PATIENT_ID, VR::LO, study.clone().into());
    put(tags::PATIENT_BIRTH_DATE, VR::DA, PrimitiveValue::Empty);
    put(tags::PATIENT_SEX, VR::CS, PrimitiveValue::Empty);
    let (scanning, variant) = match s.sequence.ti() {
        Some(_) => ("IR\\SE", "SK\\SP"),
        None => ("SE", "SK\\SP"),
    };
    let options = if s.sequence.fat_sat().is_some() {
        "FS"
    } else {
        ""
    };
    put(
        tags::SCANNING_SEQUENCE,
        VR::CS,
        strs(scanning.split('\\').map(String::from)),
    );
    put(
        tags::SEQUENCE_VARIANT,
        VR::CS,
        strs(variant.split('\\').map(String::from)),
    );
    put(
        tags::SCAN_OPTIONS,
        VR::CS,
        if options.is_empty() {
            PrimitiveValue::Empty
        } else {
            options.into()
        },
    );
    put(tags::MR_ACQUISITION_TYPE, VR::CS, "2D".into());
    put(tags::SLICE_THICKNESS, VR::DS, ds(g.thickness).into());
    put(tags::REPETITION_TIME, VR::DS, ds(s.sequence.tr()).into());
    put(tags::ECHO_TIME, VR::DS, ds(s.sequence.te()).into());
    if let Some(ti) = s.sequence.ti() {
        put(tags::INVERSION_TIME, VR::DS, ds(ti).into());
    }
    put(
        tags::IMAGING_FREQUENCY,
        VR::DS,
        ds(GAMMA_MHZ_T * info.site.field_t).into(),
    );
    put(
        tags::MAGNETIC_FIELD_STRENGTH,
        VR::DS,
        ds(info.site.field_t).into(),
    );
    put(
        tags::ECHO_TRAIN_LENGTH,
        VR::IS,
        s.sequence.etl().to_string().into(),
    );
    put(
        tags::PIXEL_BANDWIDTH,
        VR::DS,
        ds(info.site.bandwidth_hz_px.round()).into(),
    );
    let spacing_between = s
        .slices
        .windows(2)
        .map(|w| {
            let n = w[0].normal();
            crate::protocol::dot(
                [
                    w[1].ipp[0] - w[0].ipp[0],
                    w[1].ipp[1] - w[0].ipp[1],
                    w[1].ipp[2] - w[0].ipp[2],
                ],
                n,
            )
            .abs()
        })
        .find(|d| *d > 1e-3)
        .unwrap_or(g.thickness);
    put(
        tags::SPACING_BETWEEN_SLICES,
        VR::DS,
        ds(spacing_between).into(),
    );
    put(
        tags::ACQUISITION_MATRIX,
        VR::US,
        PrimitiveValue::U16(C::from_slice(&info.signal.acquisition_matrix(g))),
    );
    put(
        tags::IN_PLANE_PHASE_ENCODING_DIRECTION,
        VR::CS,
        info.signal.phase_dir.dicom().into(),
    );
    put(tags::STUDY_INSTANCE_UID, VR::UI, study.clone().into());
    put(
        tags::SERIES_INSTANCE_UID,
        VR::UI,
        s.series_id.to_string().into(),
    );
    put(tags::STUDY_ID, VR::SH, PrimitiveValue::Empty);
    put(
        tags::SERIES_NUMBER,
        VR::IS,
        s.series_number.to_string().into(),
    );
    put(
        tags::INSTANCE_NUMBER,
        VR::IS,
        info.instance_number.to_string().into(),
    );
    put(
        tags::IMAGE_POSITION_PATIENT,
        VR::DS,
        strs(g.ipp.iter().map(|&v| ds(v))),
    );
    put(
        tags::IMAGE_ORIENTATION_PATIENT,
        VR::DS,
        strs(g.row_dir.iter().chain(g.col_dir.iter()).map(|&v| ds(v))),
    );
    put(
        tags::FRAME_OF_REFERENCE_UID,
        VR::UI,
        info.frame_of_reference_uid.clone().into(),
    );
    put(tags::SAMPLES_PER_PIXEL, VR::US, PrimitiveValue::from(1u16));
    put(
        tags::PHOTOMETRIC_INTERPRETATION,
        VR::CS,
        "MONOCHROME2".into(),
    );
    put(tags::ROWS, VR::US, PrimitiveValue::from(g.rows));
    put(tags::COLUMNS, VR::US, PrimitiveValue::from(g.cols));
    put(
        tags::PIXEL_SPACING,
        VR::DS,
        strs(g.spacing.iter().map(|&v| ds(v))),
    );
    put(tags::BITS_ALLOCATED, VR::US, PrimitiveValue::from(16u16));
    let bits = info.site.bits_stored.clamp(8, 16);
    put(tags::BITS_STORED, VR::US, PrimitiveValue::from(bits));
    put(tags::HIGH_BIT, VR::US, PrimitiveValue::from(bits - 1));
    put(
        tags::PIXEL_REPRESENTATION,
        VR::US,
        PrimitiveValue::from(0u16),
    );
    let slope = info.site.rescale_slope;
    if let Some(m) = slope {
        put(
            tags::RESCALE_INTERCEPT,
            VR::DS,
            ds(info.site.rescale_intercept).into(),
        );
        put(tags::RESCALE_SLOPE, VR::DS, ds(m).into());
        put(tags::RESCALE_TYPE, VR::LO, "US".into());
    }
    // Window in real-world values (after the rescale).
    let max = pixels.iter().copied().max().unwrap_or(0) as f64 * slope.unwrap_or(1.0)
        + if slope.is_some() {
            info.site.rescale_intercept
        } else {
            0.0
        };
    put(tags::WINDOW_CENTER, VR::DS, ds((max * 0.45).round()).into());
    put(
        tags::WINDOW_WIDTH,
        VR::DS,
        ds((max * 0.9).round().max(1.0)).into(),
    );
    put(
        tags::PIXEL_DATA,
        VR::OW,
        PrimitiveValue::U16(C::from_slice(pixels)),
    );
    let file = obj
        .with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)
                .implementation_class_uid(format!("{UID_ROOT}.1.1"))
                .implementation_version_name("DISCUS_SYNTH"),
        )
        .map_err(|e| e.to_string())?;
    let mut bytes = Vec::with_capacity(pixels.len() * 2 + 2048);
    file.write_all(&mut bytes).map_err(|e| e.to_string())?;
    Ok(bytes)
}

/// A deterministic UID under [`UID_ROOT`] from a list of seeds.
pub fn uid(parts: &[u64], tail: u32) -> String {
    format!("{UID_ROOT}.{}.{}", mix_all(parts).max(1), tail)
}

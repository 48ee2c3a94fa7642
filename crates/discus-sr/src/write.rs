//! Writing the report: a Comprehensive SR (1.2.840.10008.5.1.4.1.1.88.33) whose content tree is
//! TID 1500 "Measurement Report".
//!
//! ```text
//! CONTAINER (126000, DCM, "Imaging Measurement Report")            TID 1500
//!  +-HAS CONCEPT MOD CODE Language = en-US                         TID 1204
//!  +-HAS OBS CONTEXT CODE Observer Type = Device                   TID 1001/1002
//!  +-HAS OBS CONTEXT UIDREF Device Observer UID, TEXT Name, TEXT Manufacturer   TID 1004
//!  +-HAS CONCEPT MOD CODE Procedure reported = MRI
//!  +-CONTAINS CONTAINER Image Library                              TID 1600
//!  |  +-CONTAINS CONTAINER Image Library Group (one per source series)
//!  |     +-HAS ACQ CONTEXT CODE Modality = MR
//!  |     +-CONTAINS IMAGE Source (one per referenced slice)
//!  +-CONTAINS CONTAINER Imaging Measurements
//!  |  +-CONTAINS CONTAINER Measurement Group (one per finding)      TID 1410 (with a point) or 1501
//!  |     +-HAS OBS CONTEXT TEXT Tracking Identifier, UIDREF Tracking Unique Identifier
//!  |     +-CONTAINS CODE Finding = Stenosis
//!  |     +-HAS CONCEPT MOD CODE Finding Site = Lx/Ly disc
//!  |     |  +-HAS CONCEPT MOD CODE Laterality = Left|Right (paired conditions only)
//!  |     |  +-HAS CONCEPT MOD CODE Topographical modifier = Central|Neural foramen|Subarticular recess
//!  |     +-HAS CONCEPT MOD TEXT Algorithm Name, TEXT Algorithm Version      TID 4019
//!  |     +-CONTAINS SCOORD Image Region POINT (column, row)
//!  |     |  +-SELECTED FROM IMAGE Source (the slice)
//!  |     +-CONTAINS NUM Probability of Normal/Mild, of Moderate, of Severe (UCUM "1")
//!  |     +-CONTAINS CODE Severity = Normal/Mild | Moderate | Severe
//!  +-CONTAINS CONTAINER Qualitative Evaluations
//!     +-CONTAINS TEXT Model licence; TEXT Comment = not for diagnostic use unless cleared
//! ```
//!
//! **Identifiers.** The report goes into a new series of the source study: Study Instance UID and
//! the Patient and General Study modules are copied from a source instance. The Series Instance UID
//! is derived from (Study Instance UID, algorithm name, algorithm version), so every revision written
//! by one algorithm version lands in one series; each write gets a fresh SOP Instance UID (random,
//! `2.25.` form) unless the caller fixes one. The tracking UID of a finding is derived from (Study
//! Instance UID, condition, level); the condition names the side, so this is the (study, condition,
//! level, side) key: the same finding keeps its tracking UID across revisions and algorithm versions.
//! Derived UIDs are `2.25.` followed by the decimal value of a 128-bit UUID of version 8 (RFC 9562)
//! made from the first 16 bytes of SHA-256 over the NUL-separated parts, prefixed with a purpose
//! word (`discus-sr/tracking`, `discus-sr/series`, `discus-sr/device`).
//!
//! **Points.** discus and LumbarDISC give a point as (column x, row y) with the centre of the first
//! pixel at (0, 0), as Image Position (Patient) places it. SCOORD Graphic Data puts the top left
//! corner of the first pixel at (0, 0) (PS3.3 C.18.6.1.2), so the report holds (x + 0.5, y + 0.5).

use crate::codes::{self, Code};
use crate::SrError;
use dicom_core::value::{DataSetSequence, PrimitiveValue};
use dicom_core::{DataElement, Length, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileDicomObject, FileMetaTableBuilder, InMemDicomObject};
use discus_core::{Condition, Level, Severity};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;

/// SOP Class UID of Comprehensive SR Storage.
pub const COMPREHENSIVE_SR: &str = "1.2.840.10008.5.1.4.1.1.88.33";
/// Explicit VR Little Endian, the transfer syntax of written reports.
const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";
/// The text of the safety statement (text item and, abridged, the series description).
pub const NOT_FOR_DIAGNOSTIC_USE: &str = "Not for diagnostic use unless cleared by the regulator of the place of use; AI output to be confirmed by a radiologist.";
/// Series Description (0008,103E) of every report (a LO value, at most 64 characters).
pub const SERIES_DESCRIPTION: &str = "AI stenosis grades - not for diagnostic use unless cleared";
/// The offset added to discus pixel coordinates to get SCOORD Graphic Data (see the module docs).
pub const PIXEL_ORIGIN_SHIFT: f64 = 0.5;

/// The source slice a finding's point lies on.
#[derive(Debug, Clone, PartialEq)]
pub struct SrPoint {
    /// Series Instance UID of the slice.
    pub series_instance_uid: String,
    /// SOP Instance UID of the slice.
    pub sop_instance_uid: String,
    /// SOP Class UID of the slice (e.g. MR Image Storage).
    pub sop_class_uid: String,
    /// (column x, row y) in pixels, the centre of the first pixel at (0, 0) (the discus and
    /// LumbarDISC convention).
    pub pixel_xy: [f64; 2],
}

/// One finding to report, as the model gives it.
#[derive(Debug, Clone, PartialEq)]
pub struct SrFinding {
    /// The condition (it names the side of paired conditions).
    pub condition: Condition,
    /// The disc level.
    pub level: Level,
    /// Probabilities of Normal/Mild, Moderate, Severe.
    pub probabilities: [f64; 3],
    /// The reported grade.
    pub grade: Severity,
    /// Where the grader looked; `None` for a prior without a point (then the group is TID 1501,
    /// without an image region).
    pub point: Option<SrPoint>,
    /// The human-readable Tracking Identifier, e.g. the LumbarDISC row id
    /// `<study>_<condition>_<level>`; see [`SrFinding::tracking_key`].
    pub tracking_key: String,
}

impl SrFinding {
    /// The conventional tracking key `<study>_<condition>_<level>` (the LumbarDISC row id).
    pub fn tracking_key(study: discus_core::StudyId, condition: Condition, level: Level) -> String {
        discus_core::RowId::new(study, condition, level).to_string()
    }
}

/// The algorithm that produced the findings.
#[derive(Debug, Clone, PartialEq)]
pub struct Algorithm {
    /// Algorithm name (TID 4019), e.g. `discus localise-then-grade`.
    pub name: String,
    /// Algorithm version (TID 4019), e.g. the model's version or weights hash.
    pub version: String,
    /// The model's licence, in words (training data and weights).
    pub licence: String,
    /// Manufacturer (0008,0070) and Device Observer Manufacturer.
    pub manufacturer: String,
}

/// The Patient and General Study modules of the source study, copied into the report.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StudyContext {
    /// (0010,0010) Patient's Name.
    pub patient_name: String,
    /// (0010,0020) Patient ID.
    pub patient_id: String,
    /// (0010,0030) Patient's Birth Date.
    pub patient_birth_date: String,
    /// (0010,0040) Patient's Sex.
    pub patient_sex: String,
    /// (0020,000D) Study Instance UID.
    pub study_instance_uid: String,
    /// (0008,0020) Study Date.
    pub study_date: String,
    /// (0008,0030) Study Time.
    pub study_time: String,
    /// (0020,0010) Study ID.
    pub study_id: String,
    /// (0008,0050) Accession Number.
    pub accession_number: String,
    /// (0008,0090) Referring Physician's Name.
    pub referring_physician_name: String,
}

fn text_of(obj: &InMemDicomObject, tag: Tag) -> String {
    obj.get(tag)
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim_matches([' ', '\0']).to_string())
        .unwrap_or_default()
}

impl StudyContext {
    /// Copies the patient and study attributes of a source instance.
    pub fn from_object(obj: &InMemDicomObject) -> StudyContext {
        StudyContext {
            patient_name: text_of(obj, tags::PATIENT_NAME),
            patient_id: text_of(obj, tags::PATIENT_ID),
            patient_birth_date: text_of(obj, tags::PATIENT_BIRTH_DATE),
            patient_sex: text_of(obj, tags::PATIENT_SEX),
            study_instance_uid: text_of(obj, tags::STUDY_INSTANCE_UID),
            study_date: text_of(obj, tags::STUDY_DATE),
            study_time: text_of(obj, tags::STUDY_TIME),
            study_id: text_of(obj, tags::STUDY_ID),
            accession_number: text_of(obj, tags::ACCESSION_NUMBER),
            referring_physician_name: text_of(obj, tags::REFERRING_PHYSICIAN_NAME),
        }
    }
}

/// A report to write: the study, the algorithm, the findings and the instance's numbering.
#[derive(Debug, Clone, PartialEq)]
pub struct SrDocument {
    /// The source study.
    pub study: StudyContext,
    /// The algorithm.
    pub algorithm: Algorithm,
    /// The findings, one measurement group each, in this order.
    pub findings: Vec<SrFinding>,
    /// Series Number (0020,0011) of the report series.
    pub series_number: i32,
    /// Instance Number (0020,0013): the revision.
    pub instance_number: i32,
    /// A fixed SOP Instance UID; `None` draws a fresh one per build (a new revision).
    pub sop_instance_uid: Option<String>,
    /// Content Date and Time (`YYYYMMDD`, `HHMMSS`); `None` takes the current UTC time.
    pub content_date_time: Option<(String, String)>,
}

/// What a build produced, besides the bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct SrIds {
    /// SOP Instance UID of the report.
    pub sop_instance_uid: String,
    /// Series Instance UID of the report series.
    pub series_instance_uid: String,
    /// Tracking UID of each finding, in the document's order.
    pub tracking_uids: Vec<String>,
}

/// A UID `2.25.<n>` where `n` is a version-8 UUID from SHA-256 over the purpose and the parts.
pub fn derived_uid(purpose: &str, parts: &[&str]) -> String {
    let mut h = Sha256::new();
    h.update(purpose.as_bytes());
    for p in parts {
        h.update([0u8]);
        h.update(p.as_bytes());
    }
    let d = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    uuid_uid(b, 8)
}

fn uuid_uid(mut b: [u8; 16], version: u8) -> String {
    b[6] = (b[6] & 0x0f) | (version << 4);
    b[8] = (b[8] & 0x3f) | 0x80;
    format!("2.25.{}", u128::from_be_bytes(b))
}

/// A fresh random UID `2.25.<n>` (a version-4 UUID).
pub fn random_uid() -> String {
    uuid_uid(rand::random::<[u8; 16]>(), 4)
}

/// The tracking UID of (study, condition, level): stable across revisions (see the module docs).
pub fn tracking_uid(study_instance_uid: &str, condition: Condition, level: Level) -> String {
    derived_uid(
        "discus-sr/tracking",
        &[study_instance_uid, condition.key(), level.key()],
    )
}

/// The Series Instance UID of the reports of one algorithm version on one study.
pub fn series_uid(study_instance_uid: &str, algorithm: &Algorithm) -> String {
    derived_uid(
        "discus-sr/series",
        &[study_instance_uid, &algorithm.name, &algorithm.version],
    )
}

/// Whether `s` is a valid UID (PS3.5 9.1): at most 64 characters, digits and dots, no empty
/// component, no leading zero in a component of more than one digit.
pub fn is_valid_uid(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.split('.').all(|c| {
            !c.is_empty()
                && c.bytes().all(|b| b.is_ascii_digit())
                && (c == "0" || !c.starts_with('0'))
        })
}

/// A decimal string (DS) of at most 16 characters for `v`.
pub fn ds(v: f64) -> String {
    for prec in (0..=14).rev() {
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

/// Current UTC date and time as (`YYYYMMDD`, `HHMMSS`).
pub fn now_utc() -> (String, String) {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let days = secs.div_euclid(86_400);
    let tod = secs.rem_euclid(86_400);
    // Days since 1970-01-01 to a civil date (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        format!("{y:04}{m:02}{d:02}"),
        format!("{:02}{:02}{:02}", tod / 3600, tod % 3600 / 60, tod % 60),
    )
}

// ---- content item construction ----

fn put_str(o: &mut InMemDicomObject, tag: Tag, vr: VR, v: &str) {
    let value = if v.is_empty() {
        PrimitiveValue::Empty
    } else {
        PrimitiveValue::from(v)
    };
    o.put(DataElement::new(tag, vr, value));
}

fn put_seq(o: &mut InMemDicomObject, tag: Tag, items: Vec<InMemDicomObject>) {
    o.put(DataElement::new(
        tag,
        VR::SQ,
        DataSetSequence::new(items, Length::UNDEFINED),
    ));
}

fn code_item(code: Code) -> InMemDicomObject {
    let mut o = InMemDicomObject::new_empty();
    put_str(&mut o, tags::CODE_VALUE, VR::SH, code.value);
    put_str(&mut o, tags::CODING_SCHEME_DESIGNATOR, VR::SH, code.scheme);
    put_str(&mut o, tags::CODE_MEANING, VR::LO, code.meaning);
    o
}

/// A content item with its relationship, value type and concept name.
fn item(rel: &str, value_type: &str, name: Code) -> InMemDicomObject {
    let mut o = InMemDicomObject::new_empty();
    put_str(&mut o, tags::RELATIONSHIP_TYPE, VR::CS, rel);
    put_str(&mut o, tags::VALUE_TYPE, VR::CS, value_type);
    put_seq(
        &mut o,
        tags::CONCEPT_NAME_CODE_SEQUENCE,
        vec![code_item(name)],
    );
    o
}

fn template(o: &mut InMemDicomObject, tid: &str) {
    let mut t = InMemDicomObject::new_empty();
    put_str(&mut t, tags::MAPPING_RESOURCE, VR::CS, "DCMR");
    put_str(&mut t, tags::TEMPLATE_IDENTIFIER, VR::CS, tid);
    put_seq(o, tags::CONTENT_TEMPLATE_SEQUENCE, vec![t]);
}

fn container(rel: &str, name: Code, children: Vec<InMemDicomObject>) -> InMemDicomObject {
    let mut o = item(rel, "CONTAINER", name);
    put_str(&mut o, tags::CONTINUITY_OF_CONTENT, VR::CS, "SEPARATE");
    put_seq(&mut o, tags::CONTENT_SEQUENCE, children);
    o
}

fn code(rel: &str, name: Code, value: Code) -> InMemDicomObject {
    let mut o = item(rel, "CODE", name);
    put_seq(&mut o, tags::CONCEPT_CODE_SEQUENCE, vec![code_item(value)]);
    o
}

fn text(rel: &str, name: Code, value: &str) -> InMemDicomObject {
    let mut o = item(rel, "TEXT", name);
    put_str(&mut o, tags::TEXT_VALUE, VR::UT, value);
    o
}

fn uidref(rel: &str, name: Code, value: &str) -> InMemDicomObject {
    let mut o = item(rel, "UIDREF", name);
    put_str(&mut o, tags::UID, VR::UI, value);
    o
}

fn num(rel: &str, name: Code, value: f64, unit: Code) -> InMemDicomObject {
    let mut o = item(rel, "NUM", name);
    let mut mv = InMemDicomObject::new_empty();
    put_str(&mut mv, tags::NUMERIC_VALUE, VR::DS, &ds(value));
    mv.put(DataElement::new(
        tags::FLOATING_POINT_VALUE,
        VR::FD,
        PrimitiveValue::from(value),
    ));
    put_seq(
        &mut mv,
        tags::MEASUREMENT_UNITS_CODE_SEQUENCE,
        vec![code_item(unit)],
    );
    put_seq(&mut o, tags::MEASURED_VALUE_SEQUENCE, vec![mv]);
    o
}

fn image(rel: &str, name: Code, sop_class: &str, sop_instance: &str) -> InMemDicomObject {
    let mut o = item(rel, "IMAGE", name);
    let mut r = InMemDicomObject::new_empty();
    put_str(&mut r, tags::REFERENCED_SOP_CLASS_UID, VR::UI, sop_class);
    put_str(
        &mut r,
        tags::REFERENCED_SOP_INSTANCE_UID,
        VR::UI,
        sop_instance,
    );
    put_seq(&mut o, tags::REFERENCED_SOP_SEQUENCE, vec![r]);
    o
}

fn scoord_point(rel: &str, name: Code, xy: [f64; 2], source: InMemDicomObject) -> InMemDicomObject {
    let mut o = item(rel, "SCOORD", name);
    put_str(&mut o, tags::GRAPHIC_TYPE, VR::CS, "POINT");
    o.put(DataElement::new(
        tags::GRAPHIC_DATA,
        VR::FL,
        PrimitiveValue::F32([xy[0] as f32, xy[1] as f32].into_iter().collect()),
    ));
    put_seq(&mut o, tags::CONTENT_SEQUENCE, vec![source]);
    o
}

impl SrDocument {
    fn validate(&self) -> Result<(), SrError> {
        let bad = |what: String| Err(SrError::Invalid { what });
        if !is_valid_uid(&self.study.study_instance_uid) {
            return bad(format!(
                "Study Instance UID {:?} is not a valid UID",
                self.study.study_instance_uid
            ));
        }
        if self.findings.is_empty() {
            return bad("no finding to report".into());
        }
        if self.algorithm.name.trim().is_empty() || self.algorithm.version.trim().is_empty() {
            return bad("the algorithm needs a name and a version".into());
        }
        let mut seen = std::collections::BTreeSet::new();
        for f in &self.findings {
            let key = format!("{} {}", f.condition.key(), f.level.key());
            if !seen.insert((f.condition, f.level)) {
                return bad(format!("{key}: reported twice"));
            }
            if f.tracking_key.trim().is_empty() {
                return bad(format!("{key}: empty tracking key"));
            }
            if f.probabilities
                .iter()
                .any(|p| !p.is_finite() || !(0.0..=1.0).contains(p))
            {
                return bad(format!(
                    "{key}: probabilities {:?} are not in [0, 1]",
                    f.probabilities
                ));
            }
            if let Some(p) = &f.point {
                if !p.pixel_xy.iter().all(|v| v.is_finite()) {
                    return bad(format!("{key}: point {:?} is not finite", p.pixel_xy));
                }
                for (what, uid) in [
                    ("SOP Instance UID", &p.sop_instance_uid),
                    ("SOP Class UID", &p.sop_class_uid),
                    ("Series Instance UID", &p.series_instance_uid),
                ] {
                    if !is_valid_uid(uid) {
                        return bad(format!(
                            "{key}: {what} {uid:?} of its point is not a valid UID"
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Builds the report as a DICOM file object (meta group included).
    pub fn build(&self) -> Result<(FileDicomObject<InMemDicomObject>, SrIds), SrError> {
        self.validate()?;
        let study_uid = self.study.study_instance_uid.as_str();
        let sop_uid = self.sop_instance_uid.clone().unwrap_or_else(random_uid);
        if !is_valid_uid(&sop_uid) {
            return Err(SrError::Invalid {
                what: format!("SOP Instance UID {sop_uid:?} is not a valid UID"),
            });
        }
        let series = series_uid(study_uid, &self.algorithm);
        let (cdate, ctime) = self.content_date_time.clone().unwrap_or_else(now_utc);
        let a = &self.algorithm;
        let mut o = InMemDicomObject::new_empty();
        // SOP Common
        put_str(&mut o, tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192");
        put_str(&mut o, tags::SOP_CLASS_UID, VR::UI, COMPREHENSIVE_SR);
        put_str(&mut o, tags::SOP_INSTANCE_UID, VR::UI, &sop_uid);
        // Coding Scheme Identification: the private scheme.
        let mut scheme = InMemDicomObject::new_empty();
        put_str(
            &mut scheme,
            tags::CODING_SCHEME_DESIGNATOR,
            VR::SH,
            codes::PRIVATE_SCHEME,
        );
        put_str(
            &mut scheme,
            tags::CODING_SCHEME_VERSION,
            VR::SH,
            codes::PRIVATE_SCHEME_VERSION,
        );
        put_str(
            &mut scheme,
            tags::CODING_SCHEME_NAME,
            VR::ST,
            codes::PRIVATE_SCHEME_NAME,
        );
        put_str(
            &mut scheme,
            tags::CODING_SCHEME_RESPONSIBLE_ORGANIZATION,
            VR::ST,
            codes::PRIVATE_SCHEME_ORGANIZATION,
        );
        put_seq(
            &mut o,
            tags::CODING_SCHEME_IDENTIFICATION_SEQUENCE,
            vec![scheme],
        );
        // General Study, Patient
        let s = &self.study;
        put_str(&mut o, tags::STUDY_DATE, VR::DA, &s.study_date);
        put_str(&mut o, tags::CONTENT_DATE, VR::DA, &cdate);
        put_str(&mut o, tags::STUDY_TIME, VR::TM, &s.study_time);
        put_str(&mut o, tags::CONTENT_TIME, VR::TM, &ctime);
        put_str(&mut o, tags::ACCESSION_NUMBER, VR::SH, &s.accession_number);
        put_str(&mut o, tags::MODALITY, VR::CS, "SR");
        put_str(&mut o, tags::MANUFACTURER, VR::LO, &a.manufacturer);
        put_str(
            &mut o,
            tags::REFERRING_PHYSICIAN_NAME,
            VR::PN,
            &s.referring_physician_name,
        );
        put_str(&mut o, tags::SERIES_DESCRIPTION, VR::LO, SERIES_DESCRIPTION);
        put_seq(
            &mut o,
            tags::REFERENCED_PERFORMED_PROCEDURE_STEP_SEQUENCE,
            vec![],
        );
        put_str(&mut o, tags::PATIENT_NAME, VR::PN, &s.patient_name);
        put_str(&mut o, tags::PATIENT_ID, VR::LO, &s.patient_id);
        put_str(
            &mut o,
            tags::PATIENT_BIRTH_DATE,
            VR::DA,
            &s.patient_birth_date,
        );
        put_str(&mut o, tags::PATIENT_SEX, VR::CS, &s.patient_sex);
        let software = format!("{} {}", a.name, a.version);
        put_str(&mut o, tags::SOFTWARE_VERSIONS, VR::LO, &software);
        put_str(&mut o, tags::STUDY_INSTANCE_UID, VR::UI, study_uid);
        put_str(&mut o, tags::SERIES_INSTANCE_UID, VR::UI, &series);
        put_str(&mut o, tags::STUDY_ID, VR::SH, &s.study_id);
        put_str(
            &mut o,
            tags::SERIES_NUMBER,
            VR::IS,
            &self.series_number.to_string(),
        );
        put_str(
            &mut o,
            tags::INSTANCE_NUMBER,
            VR::IS,
            &self.instance_number.to_string(),
        );

        // Evidence: every referenced slice, by series.
        let mut by_series: BTreeMap<&str, BTreeMap<&str, &str>> = BTreeMap::new();
        for p in self.findings.iter().filter_map(|f| f.point.as_ref()) {
            by_series
                .entry(p.series_instance_uid.as_str())
                .or_default()
                .insert(p.sop_instance_uid.as_str(), p.sop_class_uid.as_str());
        }
        let evidence_series: Vec<InMemDicomObject> = by_series
            .iter()
            .map(|(se, sops)| {
                let mut so = InMemDicomObject::new_empty();
                let refs = sops
                    .iter()
                    .map(|(inst, class)| {
                        let mut r = InMemDicomObject::new_empty();
                        put_str(&mut r, tags::REFERENCED_SOP_CLASS_UID, VR::UI, class);
                        put_str(&mut r, tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, inst);
                        r
                    })
                    .collect();
                put_seq(&mut so, tags::REFERENCED_SOP_SEQUENCE, refs);
                put_str(&mut so, tags::SERIES_INSTANCE_UID, VR::UI, se);
                so
            })
            .collect();
        // SR Document General
        put_str(&mut o, tags::COMPLETION_FLAG, VR::CS, "COMPLETE");
        put_str(&mut o, tags::VERIFICATION_FLAG, VR::CS, "UNVERIFIED");
        if !evidence_series.is_empty() {
            let mut ev = InMemDicomObject::new_empty();
            put_seq(&mut ev, tags::REFERENCED_SERIES_SEQUENCE, evidence_series);
            put_str(&mut ev, tags::STUDY_INSTANCE_UID, VR::UI, study_uid);
            put_seq(
                &mut o,
                tags::CURRENT_REQUESTED_PROCEDURE_EVIDENCE_SEQUENCE,
                vec![ev],
            );
        }
        put_seq(&mut o, tags::PERFORMED_PROCEDURE_CODE_SEQUENCE, vec![]);

        // SR Document Content: the TID 1500 tree.
        let mut root = Vec::new();
        root.push(code("HAS CONCEPT MOD", codes::LANGUAGE, codes::ENGLISH_US));
        root.push(code("HAS OBS CONTEXT", codes::OBSERVER_TYPE, codes::DEVICE));
        let device_uid = derived_uid("discus-sr/device", &[&a.name, &a.version]);
        root.push(uidref(
            "HAS OBS CONTEXT",
            codes::DEVICE_OBSERVER_UID,
            &device_uid,
        ));
        root.push(text(
            "HAS OBS CONTEXT",
            codes::DEVICE_OBSERVER_NAME,
            &a.name,
        ));
        if !a.manufacturer.is_empty() {
            root.push(text(
                "HAS OBS CONTEXT",
                codes::DEVICE_OBSERVER_MANUFACTURER,
                &a.manufacturer,
            ));
        }
        root.push(code(
            "HAS CONCEPT MOD",
            codes::PROCEDURE_REPORTED,
            codes::MRI_PROCEDURE,
        ));
        let groups: Vec<InMemDicomObject> = by_series
            .values()
            .map(|sops| {
                let mut children = vec![code(
                    "HAS ACQ CONTEXT",
                    codes::MODALITY,
                    codes::MAGNETIC_RESONANCE,
                )];
                children.extend(
                    sops.iter()
                        .map(|(inst, class)| image("CONTAINS", codes::SOURCE, class, inst)),
                );
                container("CONTAINS", codes::IMAGE_LIBRARY_GROUP, children)
            })
            .collect();
        root.push(container("CONTAINS", codes::IMAGE_LIBRARY, groups));
        let mut tracking_uids = Vec::new();
        let mut measurement_groups = Vec::new();
        for f in &self.findings {
            let tuid = tracking_uid(study_uid, f.condition, f.level);
            measurement_groups.push(self.group(f, &tuid));
            tracking_uids.push(tuid);
        }
        root.push(container(
            "CONTAINS",
            codes::IMAGING_MEASUREMENTS,
            measurement_groups,
        ));
        root.push(container(
            "CONTAINS",
            codes::QUALITATIVE_EVALUATIONS,
            vec![
                text("CONTAINS", codes::MODEL_LICENCE, &a.licence),
                text("CONTAINS", codes::COMMENT, NOT_FOR_DIAGNOSTIC_USE),
            ],
        ));
        put_str(&mut o, tags::VALUE_TYPE, VR::CS, "CONTAINER");
        put_seq(
            &mut o,
            tags::CONCEPT_NAME_CODE_SEQUENCE,
            vec![code_item(codes::IMAGING_MEASUREMENT_REPORT)],
        );
        put_str(&mut o, tags::CONTINUITY_OF_CONTENT, VR::CS, "SEPARATE");
        template(&mut o, "1500");
        put_seq(&mut o, tags::CONTENT_SEQUENCE, root);

        let file = o
            .with_meta(
                FileMetaTableBuilder::new()
                    .transfer_syntax(EXPLICIT_VR_LE)
                    .media_storage_sop_class_uid(COMPREHENSIVE_SR)
                    .media_storage_sop_instance_uid(sop_uid.clone())
                    .implementation_class_uid(derived_uid("discus-sr/implementation", &[]))
                    .implementation_version_name("DISCUS_SR"),
            )
            .map_err(|e| SrError::Encode {
                what: e.to_string(),
            })?;
        Ok((
            file,
            SrIds {
                sop_instance_uid: sop_uid,
                series_instance_uid: series,
                tracking_uids,
            },
        ))
    }

    fn group(&self, f: &SrFinding, tracking: &str) -> InMemDicomObject {
        let a = &self.algorithm;
        let mut ch = vec![
            text(
                "HAS OBS CONTEXT",
                codes::TRACKING_IDENTIFIER,
                &f.tracking_key,
            ),
            uidref("HAS OBS CONTEXT", codes::TRACKING_UID, tracking),
            code("CONTAINS", codes::FINDING, codes::STENOSIS),
        ];
        let mut site = code("HAS CONCEPT MOD", codes::FINDING_SITE, codes::disc(f.level));
        let mut mods = Vec::new();
        if let Some(side) = f.condition.side() {
            mods.push(code(
                "HAS CONCEPT MOD",
                codes::LATERALITY,
                codes::laterality(side),
            ));
        }
        mods.push(code(
            "HAS CONCEPT MOD",
            codes::TOPOGRAPHICAL_MODIFIER,
            codes::topography(f.condition),
        ));
        put_seq(&mut site, tags::CONTENT_SEQUENCE, mods);
        ch.push(site);
        ch.push(text("HAS CONCEPT MOD", codes::ALGORITHM_NAME, &a.name));
        ch.push(text(
            "HAS CONCEPT MOD",
            codes::ALGORITHM_VERSION,
            &a.version,
        ));
        if let Some(p) = &f.point {
            let src = image(
                "SELECTED FROM",
                codes::SOURCE,
                &p.sop_class_uid,
                &p.sop_instance_uid,
            );
            let xy = [
                p.pixel_xy[0] + PIXEL_ORIGIN_SHIFT,
                p.pixel_xy[1] + PIXEL_ORIGIN_SHIFT,
            ];
            ch.push(scoord_point("CONTAINS", codes::IMAGE_REGION, xy, src));
        }
        for (c, p) in codes::PROBABILITIES.iter().zip(f.probabilities) {
            ch.push(num("CONTAINS", *c, p, codes::NO_UNITS));
        }
        ch.push(code("CONTAINS", codes::SEVERITY, codes::severity(f.grade)));
        let mut g = container("CONTAINS", codes::MEASUREMENT_GROUP, ch);
        template(&mut g, if f.point.is_some() { "1410" } else { "1501" });
        g
    }

    /// The report as the bytes of a DICOM file (preamble, meta group, data set).
    pub fn to_bytes(&self) -> Result<(Vec<u8>, SrIds), SrError> {
        let (file, ids) = self.build()?;
        let mut bytes = Vec::new();
        file.write_all(&mut bytes).map_err(|e| SrError::Encode {
            what: e.to_string(),
        })?;
        Ok((bytes, ids))
    }

    /// Writes the report to `path` atomically (temporary file, then rename).
    pub fn write(&self, path: &Path) -> Result<SrIds, SrError> {
        let (bytes, ids) = self.to_bytes()?;
        discus_core::fsio::atomic_write(path, &bytes).map_err(|source| SrError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(ids)
    }
}

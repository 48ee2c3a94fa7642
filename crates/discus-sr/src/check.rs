//! Reading a report back and checking the structure discus relies on.
//!
//! [`check`] walks the whole content tree and reports every problem it finds (with the path of
//! the item, e.g. `1500/Imaging Measurements[1]/Measurement Group[3]`), so one run names all of
//! them:
//!
//! - **Every item**: a Value Type of PS3.3 C.17.3; a Relationship Type of C.17.3.2.4 (none at the
//!   root); a Concept Name (required but for SELECTED FROM image items); the attributes its value
//!   type needs (a code triplet for CODE, Text Value for TEXT, a valid UID for UIDREF, a measured
//!   value with a number and units for NUM, Graphic Type and a matching number of Graphic Data
//!   values for SCOORD plus a SELECTED FROM image, a referenced SOP for IMAGE, Continuity of Content
//!   for CONTAINER); every coding scheme designator starting with `99` declared in (0008,0110).
//! - **TID 1500**: SOP Class Comprehensive SR; the root CONTAINER (126000, DCM) with template
//!   1500 (DCMR); Language, Observer Type, Procedure reported, Image Library and Imaging
//!   Measurements present with their relationship types.
//! - **Each measurement group** (TID 1410 or 1501): one Tracking Identifier (TEXT, HAS OBS
//!   CONTEXT) and one Tracking Unique Identifier (UIDREF, HAS OBS CONTEXT), unique in the report;
//!   Finding (CODE, CONTAINS); Finding Site (CODE, HAS CONCEPT MOD) with at most one Laterality and
//!   one Topographical modifier; the three probabilities (NUM, CONTAINS); Severity (CODE,
//!   CONTAINS); TID 1410 groups exactly one Image Region (SCOORD, CONTAINS), TID 1501 none.

use crate::codes::{self, Code};
use crate::write::{is_valid_uid, COMPREHENSIVE_SR};
use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use std::collections::BTreeSet;
use std::path::Path;

/// A coded concept as read from a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeValue {
    /// Code Value.
    pub value: String,
    /// Coding Scheme Designator.
    pub scheme: String,
    /// Code Meaning.
    pub meaning: String,
}

impl CodeValue {
    /// Whether this is `code` (value and scheme; the meaning is free text).
    pub fn is(&self, code: Code) -> bool {
        self.value == code.value && self.scheme == code.scheme
    }
}

/// The image region of a group as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedPoint {
    /// Graphic Data (column, row) as stored (top left corner of the first pixel at (0, 0)).
    pub graphic_xy: [f32; 2],
    /// Referenced SOP Instance UID of the source slice.
    pub sop_instance_uid: String,
    /// Referenced SOP Class UID of the source slice.
    pub sop_class_uid: String,
}

/// One measurement group as read back.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedGroup {
    /// Template identifier of the group (`1410` or `1501`).
    pub template: String,
    /// Tracking Identifier.
    pub tracking_identifier: String,
    /// Tracking Unique Identifier.
    pub tracking_uid: String,
    /// Finding.
    pub finding: CodeValue,
    /// Finding Site.
    pub finding_site: CodeValue,
    /// Laterality of the finding site.
    pub laterality: Option<CodeValue>,
    /// Topographical modifier of the finding site.
    pub topography: Option<CodeValue>,
    /// Severity.
    pub severity: CodeValue,
    /// Probabilities of Normal/Mild, Moderate, Severe.
    pub probabilities: [f64; 3],
    /// The point (TID 1410 groups).
    pub point: Option<CheckedPoint>,
}

/// What a successful check read.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedReport {
    /// SOP Instance UID.
    pub sop_instance_uid: String,
    /// Series Instance UID.
    pub series_instance_uid: String,
    /// Study Instance UID.
    pub study_instance_uid: String,
    /// Series Description.
    pub series_description: String,
    /// The measurement groups in document order.
    pub groups: Vec<CheckedGroup>,
    /// The texts of the root's Qualitative Evaluations container (licence, safety statement).
    pub texts: Vec<String>,
}

/// Why a report was rejected: every problem found, each with the item's path.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{source_name}: not a valid discus TID 1500 report: {}", problems.join("; "))]
pub struct CheckError {
    /// The file (or `<memory>`).
    pub source_name: String,
    /// The problems, in document order.
    pub problems: Vec<String>,
}

const VALUE_TYPES: [&str; 15] = [
    "TEXT",
    "NUM",
    "CODE",
    "DATETIME",
    "DATE",
    "TIME",
    "UIDREF",
    "PNAME",
    "COMPOSITE",
    "IMAGE",
    "WAVEFORM",
    "SCOORD",
    "SCOORD3D",
    "TCOORD",
    "CONTAINER",
];
const RELATIONSHIPS: [&str; 7] = [
    "CONTAINS",
    "HAS PROPERTIES",
    "HAS CONCEPT MOD",
    "HAS OBS CONTEXT",
    "HAS ACQ CONTEXT",
    "INFERRED FROM",
    "SELECTED FROM",
];
const GRAPHIC_TYPES: [(&str, Option<usize>); 5] = [
    ("POINT", Some(2)),
    ("MULTIPOINT", None),
    ("POLYLINE", None),
    ("CIRCLE", Some(4)),
    ("ELLIPSE", Some(8)),
];

fn s(o: &InMemDicomObject, tag: Tag) -> Option<String> {
    o.get(tag)
        .and_then(|e| e.to_str().ok())
        .map(|v| v.trim_matches([' ', '\0']).to_string())
        .filter(|v| !v.is_empty())
}

fn items(o: &InMemDicomObject, tag: Tag) -> &[InMemDicomObject] {
    o.get(tag).and_then(|e| e.items()).unwrap_or(&[])
}

fn code_of(o: &InMemDicomObject) -> Option<CodeValue> {
    Some(CodeValue {
        value: s(o, tags::CODE_VALUE)
            .or_else(|| s(o, tags::LONG_CODE_VALUE))
            .or_else(|| s(o, tags::URN_CODE_VALUE))?,
        scheme: s(o, tags::CODING_SCHEME_DESIGNATOR)?,
        meaning: s(o, tags::CODE_MEANING)?,
    })
}

fn name_of(o: &InMemDicomObject) -> Option<CodeValue> {
    items(o, tags::CONCEPT_NAME_CODE_SEQUENCE)
        .first()
        .and_then(code_of)
}

fn template_of(o: &InMemDicomObject) -> Option<String> {
    items(o, tags::CONTENT_TEMPLATE_SEQUENCE)
        .first()
        .and_then(|t| s(t, tags::TEMPLATE_IDENTIFIER))
}

struct Checker {
    problems: Vec<String>,
    declared: BTreeSet<String>,
}

impl Checker {
    fn bad(&mut self, path: &str, what: impl std::fmt::Display) {
        self.problems.push(format!("{path}: {what}"));
    }

    fn check_code(&mut self, path: &str, o: &InMemDicomObject, what: &str) -> Option<CodeValue> {
        match code_of(o) {
            None => {
                self.bad(
                    path,
                    format!("{what} lacks a code value, scheme or meaning"),
                );
                None
            }
            Some(c) => {
                if c.scheme.starts_with("99") && !self.declared.contains(&c.scheme) {
                    self.bad(
                        path,
                        format!(
                            "private coding scheme {} is not declared in the Coding Scheme Identification Sequence",
                            c.scheme
                        ),
                    );
                }
                Some(c)
            }
        }
    }

    /// Generic checks of one content item and its descendants.
    fn item(&mut self, path: &str, o: &InMemDicomObject, root: bool) {
        let vt = s(o, tags::VALUE_TYPE);
        let vt = match vt {
            Some(v) if VALUE_TYPES.contains(&v.as_str()) => v,
            Some(v) => {
                self.bad(path, format!("unknown value type {v:?}"));
                return;
            }
            None => {
                self.bad(path, "no value type");
                return;
            }
        };
        let rel = s(o, tags::RELATIONSHIP_TYPE);
        match (&rel, root) {
            (Some(r), false) if !RELATIONSHIPS.contains(&r.as_str()) => {
                self.bad(path, format!("unknown relationship type {r:?}"))
            }
            (None, false) => self.bad(path, "no relationship type"),
            (Some(_), true) => self.bad(path, "the root item has a relationship type"),
            _ => {}
        }
        match items(o, tags::CONCEPT_NAME_CODE_SEQUENCE).first() {
            Some(n) => {
                self.check_code(path, n, "the concept name");
            }
            None if rel.as_deref() == Some("SELECTED FROM") => {}
            None => self.bad(path, "no concept name"),
        }
        match vt.as_str() {
            "CODE" => match items(o, tags::CONCEPT_CODE_SEQUENCE).first() {
                Some(c) => {
                    self.check_code(path, c, "the coded value");
                }
                None => self.bad(path, "CODE item without Concept Code Sequence"),
            },
            "TEXT" if o.get(tags::TEXT_VALUE).is_none() => {
                self.bad(path, "TEXT item without Text Value");
            }
            "UIDREF" => match s(o, tags::UID) {
                Some(u) if is_valid_uid(&u) => {}
                Some(u) => self.bad(path, format!("UIDREF value {u:?} is not a valid UID")),
                None => self.bad(path, "UIDREF item without UID"),
            },
            "NUM" => match items(o, tags::MEASURED_VALUE_SEQUENCE).first() {
                None => self.bad(path, "NUM item without a measured value"),
                Some(mv) => {
                    match s(mv, tags::NUMERIC_VALUE).map(|v| v.parse::<f64>()) {
                        Some(Ok(v)) if v.is_finite() => {}
                        _ => self.bad(path, "NUM item without a finite Numeric Value"),
                    }
                    match items(mv, tags::MEASUREMENT_UNITS_CODE_SEQUENCE).first() {
                        Some(u) => {
                            self.check_code(path, u, "the measurement unit");
                        }
                        None => self.bad(path, "NUM item without measurement units"),
                    }
                }
            },
            "SCOORD" => {
                let gt = s(o, tags::GRAPHIC_TYPE);
                let data = o
                    .get(tags::GRAPHIC_DATA)
                    .and_then(|e| e.to_multi_float32().ok());
                match (gt, data) {
                    (Some(gt), Some(d)) => match GRAPHIC_TYPES.iter().find(|(g, _)| *g == gt) {
                        None => self.bad(path, format!("unknown graphic type {gt:?}")),
                        Some((_, n)) => {
                            let ok = match n {
                                Some(n) => d.len() == *n,
                                None => d.len() >= 2 && d.len() % 2 == 0,
                            };
                            if !ok || d.iter().any(|v| !v.is_finite()) {
                                self.bad(
                                    path,
                                    format!("{gt} with {} graphic data values", d.len()),
                                );
                            }
                        }
                    },
                    _ => self.bad(path, "SCOORD item without Graphic Type or Graphic Data"),
                }
                let selected = items(o, tags::CONTENT_SEQUENCE).iter().any(|c| {
                    s(c, tags::RELATIONSHIP_TYPE).as_deref() == Some("SELECTED FROM")
                        && s(c, tags::VALUE_TYPE).as_deref() == Some("IMAGE")
                });
                if !selected {
                    self.bad(path, "SCOORD item is not SELECTED FROM an image");
                }
            }
            "IMAGE" | "COMPOSITE" => match items(o, tags::REFERENCED_SOP_SEQUENCE).first() {
                Some(r)
                    if s(r, tags::REFERENCED_SOP_CLASS_UID).is_some_and(|u| is_valid_uid(&u))
                        && s(r, tags::REFERENCED_SOP_INSTANCE_UID)
                            .is_some_and(|u| is_valid_uid(&u)) => {}
                _ => self.bad(path, format!("{vt} item without a valid referenced SOP")),
            },
            "CONTAINER" if s(o, tags::CONTINUITY_OF_CONTENT).is_none() => {
                self.bad(path, "CONTAINER without Continuity of Content");
            }
            _ => {}
        }
        for (i, c) in items(o, tags::CONTENT_SEQUENCE).iter().enumerate() {
            let label = name_of(c)
                .map(|n| n.meaning)
                .or_else(|| s(c, tags::VALUE_TYPE))
                .unwrap_or_else(|| "?".into());
            self.item(&format!("{path}/{label}[{}]", i + 1), c, false);
        }
    }
}

/// The children of `o` named `code`, with their value type and relationship.
fn children<'a>(
    o: &'a InMemDicomObject,
    code: Code,
) -> impl Iterator<Item = (&'a InMemDicomObject, String, String)> + 'a {
    items(o, tags::CONTENT_SEQUENCE)
        .iter()
        .filter_map(move |c| {
            let n = name_of(c)?;
            n.is(code).then(|| {
                (
                    c,
                    s(c, tags::VALUE_TYPE).unwrap_or_default(),
                    s(c, tags::RELATIONSHIP_TYPE).unwrap_or_default(),
                )
            })
        })
}

impl Checker {
    /// Exactly one child `code` with value type `vt` and relationship `rel` (`min` 0 allows none).
    fn one<'a>(
        &mut self,
        path: &str,
        o: &'a InMemDicomObject,
        code: Code,
        vt: &str,
        rel: &str,
        required: bool,
    ) -> Option<&'a InMemDicomObject> {
        let found: Vec<_> = children(o, code).collect();
        match found.as_slice() {
            [] => {
                if required {
                    self.bad(path, format!("missing {} ({vt}, {rel})", code.meaning));
                }
                None
            }
            [(c, v, r)] => {
                if v != vt || r != rel {
                    self.bad(
                        path,
                        format!("{} is {v} {r:?}, expected {vt} {rel:?}", code.meaning),
                    );
                    None
                } else {
                    Some(c)
                }
            }
            _ => {
                self.bad(
                    path,
                    format!("{} appears {} times", code.meaning, found.len()),
                );
                None
            }
        }
    }

    fn coded(&mut self, path: &str, o: Option<&InMemDicomObject>) -> Option<CodeValue> {
        let o = o?;
        let c = items(o, tags::CONCEPT_CODE_SEQUENCE).first()?;
        self.check_code(path, c, "the coded value")
    }

    fn group(&mut self, path: &str, g: &InMemDicomObject) -> Option<CheckedGroup> {
        let n0 = self.problems.len();
        let template = template_of(g).unwrap_or_default();
        if template != "1410" && template != "1501" {
            self.bad(
                path,
                format!("measurement group template {template:?}, expected 1410 or 1501"),
            );
        }
        let tid = self.one(
            path,
            g,
            codes::TRACKING_IDENTIFIER,
            "TEXT",
            "HAS OBS CONTEXT",
            true,
        );
        let tuid = self.one(
            path,
            g,
            codes::TRACKING_UID,
            "UIDREF",
            "HAS OBS CONTEXT",
            true,
        );
        let finding = self.one(path, g, codes::FINDING, "CODE", "CONTAINS", true);
        let finding = self.coded(path, finding);
        let site_item = self.one(
            path,
            g,
            codes::FINDING_SITE,
            "CODE",
            "HAS CONCEPT MOD",
            true,
        );
        let site = self.coded(path, site_item);
        let (mut laterality, mut topography) = (None, None);
        if let Some(si) = site_item {
            let lat = self.one(
                path,
                si,
                codes::LATERALITY,
                "CODE",
                "HAS CONCEPT MOD",
                false,
            );
            laterality = self.coded(path, lat);
            let top = self.one(
                path,
                si,
                codes::TOPOGRAPHICAL_MODIFIER,
                "CODE",
                "HAS CONCEPT MOD",
                false,
            );
            topography = self.coded(path, top);
        }
        let sev = self.one(path, g, codes::SEVERITY, "CODE", "CONTAINS", true);
        let severity = self.coded(path, sev);
        let mut probabilities = [f64::NAN; 3];
        for (k, c) in codes::PROBABILITIES.iter().enumerate() {
            if let Some(n) = self.one(path, g, *c, "NUM", "CONTAINS", true) {
                if let Some(v) = items(n, tags::MEASURED_VALUE_SEQUENCE)
                    .first()
                    .and_then(|mv| s(mv, tags::NUMERIC_VALUE))
                    .and_then(|v| v.parse::<f64>().ok())
                {
                    probabilities[k] = v;
                }
            }
        }
        let region = self.one(
            path,
            g,
            codes::IMAGE_REGION,
            "SCOORD",
            "CONTAINS",
            template == "1410",
        );
        if template == "1501" && region.is_some() {
            self.bad(path, "a TID 1501 group has an image region");
        }
        let point = region.and_then(|r| {
            let d = r.get(tags::GRAPHIC_DATA)?.to_multi_float32().ok()?;
            let img = items(r, tags::CONTENT_SEQUENCE)
                .iter()
                .find(|c| s(c, tags::VALUE_TYPE).as_deref() == Some("IMAGE"))?;
            let rf = items(img, tags::REFERENCED_SOP_SEQUENCE).first()?;
            Some(CheckedPoint {
                graphic_xy: [*d.first()?, *d.get(1)?],
                sop_instance_uid: s(rf, tags::REFERENCED_SOP_INSTANCE_UID)?,
                sop_class_uid: s(rf, tags::REFERENCED_SOP_CLASS_UID)?,
            })
        });
        if self.problems.len() > n0 {
            return None;
        }
        Some(CheckedGroup {
            template,
            tracking_identifier: s(tid?, tags::TEXT_VALUE).unwrap_or_default(),
            tracking_uid: s(tuid?, tags::UID)?,
            finding: finding?,
            finding_site: site?,
            laterality,
            topography,
            severity: severity?,
            probabilities,
            point,
        })
    }
}

/// Checks a report in memory; `source_name` names it in the error.
pub fn check(obj: &InMemDicomObject, source_name: &str) -> Result<CheckedReport, CheckError> {
    let declared = items(obj, tags::CODING_SCHEME_IDENTIFICATION_SEQUENCE)
        .iter()
        .filter_map(|i| s(i, tags::CODING_SCHEME_DESIGNATOR))
        .collect();
    let mut ck = Checker {
        problems: Vec::new(),
        declared,
    };
    let root = "1500";
    if s(obj, tags::SOP_CLASS_UID).as_deref() != Some(COMPREHENSIVE_SR) {
        ck.bad(root, "SOP Class UID is not Comprehensive SR");
    }
    for (tag, what) in [
        (tags::SOP_INSTANCE_UID, "SOP Instance UID"),
        (tags::STUDY_INSTANCE_UID, "Study Instance UID"),
        (tags::SERIES_INSTANCE_UID, "Series Instance UID"),
    ] {
        if !s(obj, tag).is_some_and(|u| is_valid_uid(&u)) {
            ck.bad(root, format!("no valid {what}"));
        }
    }
    if s(obj, tags::MODALITY).as_deref() != Some("SR") {
        ck.bad(root, "Modality is not SR");
    }
    match name_of(obj) {
        Some(n) if n.is(codes::IMAGING_MEASUREMENT_REPORT) => {}
        _ => ck.bad(
            root,
            "the root concept is not (126000, DCM) Imaging Measurement Report",
        ),
    }
    let tmpl = items(obj, tags::CONTENT_TEMPLATE_SEQUENCE).first();
    if tmpl
        .and_then(|t| s(t, tags::TEMPLATE_IDENTIFIER))
        .as_deref()
        != Some("1500")
        || tmpl.and_then(|t| s(t, tags::MAPPING_RESOURCE)).as_deref() != Some("DCMR")
    {
        ck.bad(root, "the root does not identify template 1500 (DCMR)");
    }
    if s(obj, tags::VALUE_TYPE).as_deref() != Some("CONTAINER") {
        ck.bad(root, "the root is not a CONTAINER");
    }
    ck.item(root, obj, true);
    ck.one(root, obj, codes::LANGUAGE, "CODE", "HAS CONCEPT MOD", true);
    ck.one(
        root,
        obj,
        codes::OBSERVER_TYPE,
        "CODE",
        "HAS OBS CONTEXT",
        true,
    );
    if children(obj, codes::PROCEDURE_REPORTED)
        .filter(|(_, v, r)| v == "CODE" && r == "HAS CONCEPT MOD")
        .count()
        == 0
    {
        ck.bad(root, "missing Procedure reported (CODE, HAS CONCEPT MOD)");
    }
    ck.one(
        root,
        obj,
        codes::IMAGE_LIBRARY,
        "CONTAINER",
        "CONTAINS",
        true,
    );
    let mut groups = Vec::new();
    if let Some(m) = ck.one(
        root,
        obj,
        codes::IMAGING_MEASUREMENTS,
        "CONTAINER",
        "CONTAINS",
        true,
    ) {
        let gs: Vec<_> = children(m, codes::MEASUREMENT_GROUP).collect();
        if gs.is_empty() {
            ck.bad(root, "Imaging Measurements holds no Measurement Group");
        }
        let mut uids = BTreeSet::new();
        for (i, (g, vt, rel)) in gs.into_iter().enumerate() {
            let path = format!("{root}/Imaging Measurements/Measurement Group[{}]", i + 1);
            if vt != "CONTAINER" || rel != "CONTAINS" {
                ck.bad(&path, "not a CONTAINER in a CONTAINS relationship");
                continue;
            }
            if let Some(cg) = ck.group(&path, g) {
                if !uids.insert(cg.tracking_uid.clone()) {
                    ck.bad(&path, "tracking UID used by another group");
                }
                groups.push(cg);
            }
        }
    }
    let texts = children(obj, codes::QUALITATIVE_EVALUATIONS)
        .flat_map(|(q, _, _)| items(q, tags::CONTENT_SEQUENCE).iter())
        .filter_map(|t| s(t, tags::TEXT_VALUE))
        .collect();
    if !ck.problems.is_empty() {
        return Err(CheckError {
            source_name: source_name.to_string(),
            problems: ck.problems,
        });
    }
    Ok(CheckedReport {
        sop_instance_uid: s(obj, tags::SOP_INSTANCE_UID).unwrap_or_default(),
        series_instance_uid: s(obj, tags::SERIES_INSTANCE_UID).unwrap_or_default(),
        study_instance_uid: s(obj, tags::STUDY_INSTANCE_UID).unwrap_or_default(),
        series_description: s(obj, tags::SERIES_DESCRIPTION).unwrap_or_default(),
        groups,
        texts,
    })
}

/// Reads and checks the report at `path`.
pub fn check_file(path: &Path) -> Result<CheckedReport, crate::SrError> {
    let bytes = std::fs::read(path).map_err(|source| crate::SrError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let obj = discus_data::dicom::open_dicom_bytes(&bytes, path)?;
    Ok(check(&obj, &path.display().to_string())?)
}

//! The coded concepts of the report, each with its source.
//!
//! Standard codes (DICOM PS3.16 and its SNOMED CT / UCUM / RFC 5646 subsets, as tabulated in
//! pydicom's `sr/_cid_dict.py` and `sr/_concepts_dict.py` and used by highdicom's
//! `highdicom/sr/templates.py`):
//!
//! | concept | code | source |
//! |---|---|---|
//! | Imaging Measurement Report | (126000, DCM) | TID 1500 root, CID 7021 |
//! | Language of Content Item and Descendants | (121049, DCM) | TID 1204 |
//! | English (United States) | (en-US, RFC5646) | CID 5000 |
//! | Observer Type / Device | (121005, DCM) / (121007, DCM) | TID 1002, CID 270 |
//! | Device Observer UID / Name / Manufacturer | (121012 / 121013 / 121014, DCM) | TID 1004 |
//! | Procedure reported | (121058, DCM) | TID 1500 row 4 |
//! | MRI unspecified body region | (25056-3, LN) | CID 100 |
//! | Image Library / Image Library Group | (111028 / 126200, DCM) | TID 1600 |
//! | Source | (260753009, SCT) | TID 1601 (image library entry; image region source) |
//! | Modality / Magnetic Resonance | (121139, DCM) / (MR, DCM) | TID 1602, CID 29 |
//! | Imaging Measurements | (126010, DCM) | TID 1500 row 6 |
//! | Measurement Group | (125007, DCM) | TID 1410 / TID 1501 |
//! | Tracking Identifier / Tracking Unique Identifier | (112039 / 112040, DCM) | TID 1410 rows 2-3 |
//! | Finding | (121071, DCM) | TID 1410 |
//! | Stenosis | (415582006, SCT) | CID 3810 family (morphologic abnormality) |
//! | Finding Site | (363698007, SCT) | TID 1410 |
//! | L1/L2 .. L5/S1 disc | (80064006, 67459009, 62551000, 84020006, 715056000; SCT) | CID 7604 "Intervertebral Disc" |
//! | Laterality / Left / Right | (272741003, SCT) / (7771000, SCT) / (24028007, SCT) | CID 244 |
//! | Topographical modifier / Central | (106233006, SCT) / (26216008, SCT) | CID 2 "Anatomic Modifier" |
//! | Algorithm Name / Algorithm Version | (111001 / 111003, DCM) | TID 4019 |
//! | Image Region | (111030, DCM) | TID 1410 |
//! | Severity | (246112005, SCT) | qualitative evaluation concept name |
//! | Mild / Moderate / Severe | (255604002 / 6736007 / 24484000, SCT) | CID 3832 "Stenosis Grade" |
//! | no units | (1, UCUM) | CID 7181 |
//! | Qualitative Evaluations | (C0034375, UMLS) | TID 1500 row 9 |
//! | Comment | (121106, DCM) | TID 1500 row 10 text evaluation |
//!
//! Where no standard code exists, the private coding scheme [`PRIVATE_SCHEME`] (`99DISCUS`,
//! declared in the Coding Scheme Identification Sequence (0008,0110) of every report):
//!
//! | code | meaning | why private |
//! |---|---|---|
//! | `NM` | Normal/Mild | CID 3832 has Mild but no grade pooling normal and mild (the LumbarDISC grade) |
//! | `NF` | Neural foramen | CID 2 has no topographical modifier for the neural foramen of a disc level |
//! | `SR` | Subarticular recess | CID 2 has no topographical modifier for the subarticular (lateral) recess |
//! | `P-NM`, `P-MO`, `P-SE` | Probability of Normal/Mild, Moderate, Severe | one concept per grade, so the three probabilities of a finding are told apart by name |
//! | `LIC` | Model licence | no standard concept names the licence of a model |

/// A coded concept: (value, scheme designator, meaning).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Code {
    /// Code Value (0008,0100).
    pub value: &'static str,
    /// Coding Scheme Designator (0008,0102).
    pub scheme: &'static str,
    /// Code Meaning (0008,0104).
    pub meaning: &'static str,
}

const fn c(value: &'static str, scheme: &'static str, meaning: &'static str) -> Code {
    Code {
        value,
        scheme,
        meaning,
    }
}

/// The private coding scheme designator of discus (PS3.3 8.2: private designators start with `99`).
pub const PRIVATE_SCHEME: &str = "99DISCUS";
/// Coding Scheme Name (0008,0115) of [`PRIVATE_SCHEME`].
pub const PRIVATE_SCHEME_NAME: &str = "discus lumbar stenosis grading codes";
/// Coding Scheme Responsible Organization (0008,0116) of [`PRIVATE_SCHEME`].
pub const PRIVATE_SCHEME_ORGANIZATION: &str = "discus project";
/// Coding Scheme Version (0008,0103) of [`PRIVATE_SCHEME`].
pub const PRIVATE_SCHEME_VERSION: &str = "1";

/// (126000, DCM, "Imaging Measurement Report").
pub const IMAGING_MEASUREMENT_REPORT: Code = c("126000", "DCM", "Imaging Measurement Report");
/// (121049, DCM, "Language of Content Item and Descendants").
pub const LANGUAGE: Code = c("121049", "DCM", "Language of Content Item and Descendants");
/// (en-US, RFC5646, "English (United States)").
pub const ENGLISH_US: Code = c("en-US", "RFC5646", "English (United States)");
/// (121005, DCM, "Observer Type").
pub const OBSERVER_TYPE: Code = c("121005", "DCM", "Observer Type");
/// (121007, DCM, "Device").
pub const DEVICE: Code = c("121007", "DCM", "Device");
/// (121012, DCM, "Device Observer UID").
pub const DEVICE_OBSERVER_UID: Code = c("121012", "DCM", "Device Observer UID");
/// (121013, DCM, "Device Observer Name").
pub const DEVICE_OBSERVER_NAME: Code = c("121013", "DCM", "Device Observer Name");
/// (121014, DCM, "Device Observer Manufacturer").
pub const DEVICE_OBSERVER_MANUFACTURER: Code = c("121014", "DCM", "Device Observer Manufacturer");
/// (121058, DCM, "Procedure reported").
pub const PROCEDURE_REPORTED: Code = c("121058", "DCM", "Procedure reported");
/// (25056-3, LN, "MRI unspecified body region"), CID 100.
pub const MRI_PROCEDURE: Code = c("25056-3", "LN", "MRI unspecified body region");
/// (111028, DCM, "Image Library").
pub const IMAGE_LIBRARY: Code = c("111028", "DCM", "Image Library");
/// (126200, DCM, "Image Library Group").
pub const IMAGE_LIBRARY_GROUP: Code = c("126200", "DCM", "Image Library Group");
/// (260753009, SCT, "Source").
pub const SOURCE: Code = c("260753009", "SCT", "Source");
/// (121139, DCM, "Modality").
pub const MODALITY: Code = c("121139", "DCM", "Modality");
/// (MR, DCM, "Magnetic Resonance").
pub const MAGNETIC_RESONANCE: Code = c("MR", "DCM", "Magnetic Resonance");
/// (126010, DCM, "Imaging Measurements").
pub const IMAGING_MEASUREMENTS: Code = c("126010", "DCM", "Imaging Measurements");
/// (125007, DCM, "Measurement Group").
pub const MEASUREMENT_GROUP: Code = c("125007", "DCM", "Measurement Group");
/// (112039, DCM, "Tracking Identifier").
pub const TRACKING_IDENTIFIER: Code = c("112039", "DCM", "Tracking Identifier");
/// (112040, DCM, "Tracking Unique Identifier").
pub const TRACKING_UID: Code = c("112040", "DCM", "Tracking Unique Identifier");
/// (121071, DCM, "Finding").
pub const FINDING: Code = c("121071", "DCM", "Finding");
/// (415582006, SCT, "Stenosis").
pub const STENOSIS: Code = c("415582006", "SCT", "Stenosis");
/// (363698007, SCT, "Finding Site").
pub const FINDING_SITE: Code = c("363698007", "SCT", "Finding Site");
/// (272741003, SCT, "Laterality").
pub const LATERALITY: Code = c("272741003", "SCT", "Laterality");
/// (7771000, SCT, "Left").
pub const LEFT: Code = c("7771000", "SCT", "Left");
/// (24028007, SCT, "Right").
pub const RIGHT: Code = c("24028007", "SCT", "Right");
/// (106233006, SCT, "Topographical modifier").
pub const TOPOGRAPHICAL_MODIFIER: Code = c("106233006", "SCT", "Topographical modifier");
/// (26216008, SCT, "Central"): the spinal canal at a disc level.
pub const CENTRAL: Code = c("26216008", "SCT", "Central");
/// (NF, 99DISCUS, "Neural foramen").
pub const NEURAL_FORAMEN: Code = c("NF", PRIVATE_SCHEME, "Neural foramen");
/// (SR, 99DISCUS, "Subarticular recess").
pub const SUBARTICULAR_RECESS: Code = c("SR", PRIVATE_SCHEME, "Subarticular recess");
/// (111001, DCM, "Algorithm Name").
pub const ALGORITHM_NAME: Code = c("111001", "DCM", "Algorithm Name");
/// (111003, DCM, "Algorithm Version").
pub const ALGORITHM_VERSION: Code = c("111003", "DCM", "Algorithm Version");
/// (111030, DCM, "Image Region").
pub const IMAGE_REGION: Code = c("111030", "DCM", "Image Region");
/// (246112005, SCT, "Severity").
pub const SEVERITY: Code = c("246112005", "SCT", "Severity");
/// (NM, 99DISCUS, "Normal/Mild").
pub const NORMAL_MILD: Code = c("NM", PRIVATE_SCHEME, "Normal/Mild");
/// (6736007, SCT, "Moderate"), CID 3832.
pub const MODERATE: Code = c("6736007", "SCT", "Moderate");
/// (24484000, SCT, "Severe"), CID 3832.
pub const SEVERE: Code = c("24484000", "SCT", "Severe");
/// (255604002, SCT, "Mild"), CID 3832 (not emitted: LumbarDISC pools normal and mild).
pub const MILD: Code = c("255604002", "SCT", "Mild");
/// (P-NM, 99DISCUS, "Probability of Normal/Mild").
pub const PROBABILITY_NORMAL_MILD: Code = c("P-NM", PRIVATE_SCHEME, "Probability of Normal/Mild");
/// (P-MO, 99DISCUS, "Probability of Moderate").
pub const PROBABILITY_MODERATE: Code = c("P-MO", PRIVATE_SCHEME, "Probability of Moderate");
/// (P-SE, 99DISCUS, "Probability of Severe").
pub const PROBABILITY_SEVERE: Code = c("P-SE", PRIVATE_SCHEME, "Probability of Severe");
/// (1, UCUM, "no units").
pub const NO_UNITS: Code = c("1", "UCUM", "no units");
/// (C0034375, UMLS, "Qualitative Evaluations").
pub const QUALITATIVE_EVALUATIONS: Code = c("C0034375", "UMLS", "Qualitative Evaluations");
/// (121106, DCM, "Comment").
pub const COMMENT: Code = c("121106", "DCM", "Comment");
/// (LIC, 99DISCUS, "Model licence").
pub const MODEL_LICENCE: Code = c("LIC", PRIVATE_SCHEME, "Model licence");

/// The codes of the private scheme (for documentation and checks).
pub const PRIVATE_CODES: [Code; 7] = [
    NORMAL_MILD,
    NEURAL_FORAMEN,
    SUBARTICULAR_RECESS,
    PROBABILITY_NORMAL_MILD,
    PROBABILITY_MODERATE,
    PROBABILITY_SEVERE,
    MODEL_LICENCE,
];

use discus_core::{Condition, ConditionGroup, Level, Severity, Side};

/// The SNOMED CT code of a lumbar intervertebral disc (CID 7604).
pub fn disc(level: Level) -> Code {
    match level {
        Level::L1L2 => c("80064006", "SCT", "L1/L2 disc"),
        Level::L2L3 => c("67459009", "SCT", "L2/L3 disc"),
        Level::L3L4 => c("62551000", "SCT", "L3/L4 disc"),
        Level::L4L5 => c("84020006", "SCT", "L4/L5 disc"),
        Level::L5S1 => c("715056000", "SCT", "L5/S1 disc"),
    }
}

/// The grade's code: CID 3832 for Moderate and Severe, the private Normal/Mild otherwise.
pub fn severity(s: Severity) -> Code {
    match s {
        Severity::NormalMild => NORMAL_MILD,
        Severity::Moderate => MODERATE,
        Severity::Severe => SEVERE,
    }
}

/// The probability concept of each grade, in [`Severity::ALL`] order.
pub const PROBABILITIES: [Code; 3] = [
    PROBABILITY_NORMAL_MILD,
    PROBABILITY_MODERATE,
    PROBABILITY_SEVERE,
];

/// The laterality code of a side.
pub fn laterality(side: Side) -> Code {
    match side {
        Side::Left => LEFT,
        Side::Right => RIGHT,
    }
}

/// The topographical modifier of a condition: Central (canal), Neural foramen, Subarticular recess.
pub fn topography(condition: Condition) -> Code {
    match condition.group() {
        ConditionGroup::Spinal => CENTRAL,
        ConditionGroup::Foraminal => NEURAL_FORAMEN,
        ConditionGroup::Subarticular => SUBARTICULAR_RECESS,
    }
}

//! DICOM Structured Reports of discus findings: TID 1500 "Measurement Report" in a Comprehensive
//! SR, one measurement group per finding ([`mod@write`]), a checker that reads a report back and
//! validates the structure discus relies on ([`mod@check`]), and the source side read through the
//! dataset index ([`source`]). The coded concepts and their sources are listed in [`codes`].
//!
//! The input is this crate's own [`SrFinding`] (condition, level, probabilities, grade, point,
//! tracking key) with an [`Algorithm`] (name, version, licence); the model or the CLI converts its
//! findings into it.
//!
//! ```no_run
//! use discus_sr::{Algorithm, SrDocument, SrFinding, StudyContext};
//! use discus_core::{Condition, Level, Severity, StudyId};
//!
//! let doc = SrDocument {
//!     study: StudyContext { study_instance_uid: "1.2.3".into(), ..Default::default() },
//!     algorithm: Algorithm {
//!         name: "discus".into(),
//!         version: "0.1.0".into(),
//!         licence: "CC BY-NC 4.0".into(),
//!         manufacturer: "discus".into(),
//!     },
//!     findings: vec![SrFinding {
//!         condition: Condition::SpinalCanalStenosis,
//!         level: Level::L4L5,
//!         probabilities: [0.2, 0.5, 0.3],
//!         grade: Severity::Moderate,
//!         point: None,
//!         tracking_key: SrFinding::tracking_key(StudyId(1), Condition::SpinalCanalStenosis, Level::L4L5),
//!     }],
//!     series_number: 990,
//!     instance_number: 1,
//!     sop_instance_uid: None,
//!     content_date_time: None,
//! };
//! let ids = doc.write(std::path::Path::new("report.dcm"))?;
//! let back = discus_sr::check::check_file(std::path::Path::new("report.dcm"))?;
//! assert_eq!(back.sop_instance_uid, ids.sop_instance_uid);
//! # Ok::<(), discus_sr::SrError>(())
//! ```

pub mod check;
pub mod codes;
pub mod source;
pub mod write;

pub use check::{check, check_file, CheckError, CheckedReport};
pub use write::{Algorithm, SrDocument, SrFinding, SrIds, SrPoint, StudyContext};

use std::path::PathBuf;

/// Why a report could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum SrError {
    /// The document's content is unusable (no finding, a bad UID, a probability out of range).
    #[error("cannot write the report: {what}")]
    Invalid {
        /// What is wrong.
        what: String,
    },
    /// dicom-rs could not encode the report.
    #[error("cannot encode the report: {what}")]
    Encode {
        /// The encoder's complaint.
        what: String,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A source or report file is not readable DICOM.
    #[error(transparent)]
    Dicom(#[from] discus_data::dicom::DicomError),
    /// The dataset index could not answer.
    #[error(transparent)]
    Dataset(#[from] discus_data::dataset::DatasetError),
    /// The source study lacks what the report needs.
    #[error("study {study}: {what}")]
    Source {
        /// The study.
        study: discus_core::StudyId,
        /// What is missing.
        what: String,
    },
    /// The report read back is not a valid discus TID 1500 report.
    #[error(transparent)]
    Check(#[from] CheckError),
}

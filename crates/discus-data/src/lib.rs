//! # discus-data
//!
//! DICOM reading and writing on the dicom-rs crates, series geometry, the dataset index and validation.

pub mod dataset;
pub mod dicom;
pub mod geometry;
pub mod header;
pub mod index;
pub mod ingest;
pub mod sqlite;
pub mod standardise;
pub mod validate;

pub use header::InstanceHeader;

/// The validation report folder, under its earlier path (now [`validate::report`]).
pub use validate::report as validate_report;

//! # discus-data
//!
//! DICOM reading and writing on the dicom-rs crates, series geometry, the dataset index and validation.

pub mod dataset;
pub mod dicom;
pub mod geometry;
pub mod header;
pub mod index;
pub mod ingest;
pub mod standardise;
pub mod validate;
pub mod validate_report;

pub use header::InstanceHeader;

//! # discus-data
//!
//! DICOM reading and writing on the dicom-rs crates, series geometry, the dataset index and validation.

pub mod dicom;
pub mod header;

pub use header::InstanceHeader;

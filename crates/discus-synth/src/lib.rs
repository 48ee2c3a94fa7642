//! # discus-synth
//!
//! A synthetic lumbar spine MRI cohort with known truth, written exactly in the LumbarDISC layout:
//! `train_images/<study>/<series>/<instance>.dcm`, `train.csv`, `train_label_coordinates.csv`,
//! `train_series_descriptions.csv` (LF line endings), per-reader label files under `readers/<r>/`, and
//! `truth.json` (true degrees and grades, every reader's reads, injected quirks and the Bayes limit).
//!
//! - [`anatomy`]: a lumbar spine and torso in patient space: sizes and angles from published ranges by
//!   level, sex and age, tissues with organic outlines, findings, and continuous degeneration;
//! - [`signal`]: tissue relaxation and spin-echo / STIR signal;
//! - [`protocol`]: sites, scanners and series geometry;
//! - [`raster`]: rendering a slice (partial volume, chemical shift, coil shading, k-space truncation,
//!   motion ghosts, Rician noise);
//! - [`dcm`]: DICOM MR Image Storage encoding;
//! - [`masks`], [`nifti`]: per-series label volumes as NIfTI-1, aligned with the DICOM geometry;
//! - [`readers`]: simulated readers and the Bayes limit;
//! - [`cohort`]: the configuration and writing a cohort (deterministic: same seed, same bytes);
//! - [`plan`]: planning each study (patient, series, true labels and points, reads);
//! - [`quirks`]: the injected quirks of the real data and the findings they cause;
//! - [`truth`]: the truth file's types;
//! - [`sheet`]: contact sheets of a study with its label points.
//!
//! ```
//! use discus_synth::cohort::{CohortPlan, SynthConfig};
//! let plan = CohortPlan::new(&SynthConfig { studies: 2, ..Default::default() }).unwrap();
//! assert_eq!(plan.studies.len(), 2);
//! // Every study has Sagittal T1, Sagittal T2/STIR and Axial T2 series (no quirks asked for).
//! assert!(plan.studies.iter().all(|s| s.series.len() == 3));
//! ```

pub mod anatomy;
pub mod cohort;
pub mod dcm;
pub mod masks;
pub mod nifti;
pub mod plan;
pub mod protocol;
pub mod quirks;
pub mod raster;
pub mod readers;
pub mod sheet;
pub mod signal;
pub mod truth;
pub mod workflow;

pub use cohort::{generate, CohortPlan, SynthConfig, SynthError, SynthSummary};

//! # discus-core
//!
//! The light foundation every other discus crate stands on: the domain words of lumbar spine grading
//! (conditions, disc levels, grades, series kinds, study and series ids), the LumbarDISC CSV files
//! (read and written with exact round-trips), atomic writes, and (in later modules) the competition
//! metric and reader-agreement statistics.
//!
//! It has no heavy dependencies (serde, csv, thiserror), so its tests build in seconds.
//!
//! ```
//! use discus_core::types::{Condition, Level, RowId, StudyId};
//! let id: RowId = "44036939_spinal_canal_stenosis_l3_l4".parse().unwrap();
//! assert_eq!(id, RowId::new(StudyId(44036939), Condition::SpinalCanalStenosis, Level::L3L4));
//! assert_eq!(Condition::LeftNeuralForaminalNarrowing.words(), "Left Neural Foraminal Narrowing");
//! ```

pub mod agreement;
pub mod crosscheck;
pub mod formats;
pub mod fsio;
pub mod governance;
pub mod ids;
pub mod layout;
pub mod metric;
pub mod progress;
pub mod stats;
pub mod types;

pub use types::{
    Condition, ConditionGroup, LabelColumn, Level, RowId, SeriesId, SeriesKind, Severity, Side,
    StudyId,
};

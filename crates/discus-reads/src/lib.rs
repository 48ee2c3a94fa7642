//! # discus-reads
//!
//! The multi-reader annotation protocol: a reads store, agreement statistics over readers,
//! disagreement worklists, adjudication and consensus labels.
//!
//! - [`store`]: the reads store, an append-only event log in SQLite (WAL): readers, reading rounds
//!   (blinded first reads, adjudication rounds) and reads, `(study, condition, level) -> grade and
//!   point (series, instance, x, y)`, with who, when and in which round. Nothing is overwritten; the
//!   current read of a reader in a round is the latest event for that finding.
//! - [`import`]: a reader's reads in and out of the LumbarDISC CSV shapes (a `train.csv` and a
//!   `train_label_coordinates.csv` per reader), checked against the dataset (known studies and
//!   series, points inside the image). An import is all or nothing, and re-importing the same files
//!   does nothing.
//! - [`predictions`]: a model's predictions (`discus predict`'s submission.csv and findings.json)
//!   imported as an AI reader, so model-vs-reader agreement is measured like reader-vs-reader.
//! - [`geometry`]: where the readers' points lie in patient space (mm), from the slices' DICOM
//!   headers, so points on different slices or series can be compared.
//! - [`analysis`]: agreement reports (per reader pair, condition, level, overall, with bootstrap
//!   intervals over studies; grade agreement over all findings and over findings whose points agree),
//!   disagreements under a rule, and consensus labels with provenance.
//! - [`qualify`]: reader qualification against a reference round's consensus (weighted kappa with
//!   an interval, point distance, pass or fail against `discus.toml` thresholds) and training
//!   rounds that give per-finding feedback after each submitted study.
//! - [`queue`]: the assisted-labelling queue (studies ordered by model uncertainty or reader
//!   disagreement, leased to one reader of a round at a time) and model pre-reads as proposals.
//! - [`protocol`]: the annotation protocol's example images, cut from a dataset around labelled points.
//! - [`simulate`]: a simulation of unassisted against assisted reading on a synthetic cohort with
//!   simulated readers: how many reads the assistant saves for the same consensus error.
//! - [`report`]: the agreement report as a report folder: `report.json` and a self-contained
//!   `index.html` with a heat map.
//!
//! ```
//! use discus_reads::store::{ReadsStore, RoundKind, ReadEvent, Point};
//! use discus_core::{Condition, Level, Severity, StudyId, SeriesId};
//! let dir = tempfile::tempdir().unwrap();
//! let mut store = ReadsStore::open(&dir.path().join("reads.sqlite")).unwrap();
//! let ann = store.reader("ann").unwrap();
//! let round = store.round("first", RoundKind::Blinded).unwrap();
//! let read = ReadEvent::new(StudyId(7), Condition::SpinalCanalStenosis, Level::L4L5)
//!     .grade(Severity::Moderate)
//!     .point(Point { series: SeriesId(1), instance: 8, x: 120.5, y: 200.0 });
//! store.record(ann, round, &[read], Some(1_700_000_000)).unwrap();
//! let current = store.current_reads(Some(round)).unwrap();
//! assert_eq!(current.len(), 1);
//! assert_eq!(current[0].grade, Some(Severity::Moderate));
//! ```

pub mod analysis;
pub mod geometry;
pub mod import;
pub mod predictions;
pub mod protocol;
pub mod qualify;
pub mod queue;
pub mod report;
pub mod simulate;
pub mod store;
pub mod workflow;

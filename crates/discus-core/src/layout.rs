//! The LumbarDISC layout: every file and folder name of a dataset, in one place.
//!
//! ```text
//! <root>/
//!   train.csv                          grades, one row per study (25 label columns)
//!   train_label_coordinates.csv        label points
//!   train_series_descriptions.csv      series kind per series of train_images
//!   test_series_descriptions.csv       series kind per series of test_images
//!   sample_submission.csv              the submission shape (optional)
//!   dataset.toml                       the dataset card (optional; discus's own)
//!   train_images/<study>/<series>/<instance>.dcm
//!   test_images/<study>/<series>/<instance>.dcm
//!   .discus/index.sqlite               discus's index (see discus-data)
//!   masks/<study>/<series>.nii.gz      label volumes of synthetic cohorts (discus's own; optional)
//! ```
//!
//! Nothing else in discus spells these names: code asks [`Layout`] (paths under a root) or [`Split`]
//! (the two image folders).
//!
//! ```
//! use discus_core::layout::{Layout, Split};
//! use discus_core::{SeriesId, StudyId};
//! let l = Layout::new("/data/rsna");
//! assert_eq!(
//!     l.instance(Split::Train, StudyId(4003253), SeriesId(702807833), 7),
//!     std::path::Path::new("/data/rsna/train_images/4003253/702807833/7.dcm")
//! );
//! assert_eq!(Split::from_folder("test_images"), Some(Split::Test));
//! ```

use crate::types::{SeriesId, StudyId};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};

/// One of the two image folders of a dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    /// `train_images/`, described by `train_series_descriptions.csv`, labelled by `train.csv`.
    Train,
    /// `test_images/`, described by `test_series_descriptions.csv`, unlabelled.
    Test,
}

impl Split {
    /// Both splits, train first (the order every lookup tries them in).
    pub const ALL: [Split; 2] = [Split::Train, Split::Test];

    /// The image folder's name: `train_images` or `test_images`.
    pub const fn folder(self) -> &'static str {
        match self {
            Split::Train => "train_images",
            Split::Test => "test_images",
        }
    }

    /// The series descriptions file of this split.
    pub const fn descriptions_file(self) -> &'static str {
        match self {
            Split::Train => "train_series_descriptions.csv",
            Split::Test => "test_series_descriptions.csv",
        }
    }

    /// The split whose image folder is named `name`.
    pub fn from_folder(name: &str) -> Option<Split> {
        Split::ALL.into_iter().find(|s| s.folder() == name)
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.folder())
    }
}

/// The grades file.
pub const TRAIN_CSV: &str = "train.csv";
/// The label points file.
pub const COORDINATES_CSV: &str = "train_label_coordinates.csv";
/// The submission shape.
pub const SAMPLE_SUBMISSION_CSV: &str = "sample_submission.csv";
/// The dataset card (discus's own addition to the layout).
pub const CARD_FILE: &str = "dataset.toml";
/// discus's own folder under a dataset root (the index lives there).
pub const DISCUS_DIR: &str = ".discus";
/// The index file name inside [`DISCUS_DIR`].
pub const INDEX_FILE: &str = "index.sqlite";
/// The folder of per-series label volumes (NIfTI) beside the image folders (discus's own addition,
/// written by `discus synth --masks`; readers of the LumbarDISC layout ignore it).
pub const MASKS_DIR: &str = "masks";
/// The extension of instance files.
pub const INSTANCE_EXT: &str = "dcm";

/// Paths of one dataset in the LumbarDISC layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// The layout of the dataset under `root` (nothing is checked or read).
    pub fn new(root: impl Into<PathBuf>) -> Layout {
        Layout { root: root.into() }
    }

    /// The dataset root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<root>/train.csv`
    pub fn train_csv(&self) -> PathBuf {
        self.root.join(TRAIN_CSV)
    }

    /// `<root>/train_label_coordinates.csv`
    pub fn coordinates_csv(&self) -> PathBuf {
        self.root.join(COORDINATES_CSV)
    }

    /// `<root>/sample_submission.csv`
    pub fn sample_submission_csv(&self) -> PathBuf {
        self.root.join(SAMPLE_SUBMISSION_CSV)
    }

    /// `<root>/<split>_series_descriptions.csv`
    pub fn descriptions_csv(&self, split: Split) -> PathBuf {
        self.root.join(split.descriptions_file())
    }

    /// `<root>/dataset.toml`
    pub fn card(&self) -> PathBuf {
        self.root.join(CARD_FILE)
    }

    /// `<root>/.discus`
    pub fn discus_dir(&self) -> PathBuf {
        self.root.join(DISCUS_DIR)
    }

    /// `<root>/.discus/index.sqlite`
    pub fn index(&self) -> PathBuf {
        self.discus_dir().join(INDEX_FILE)
    }

    /// `<root>/masks`
    pub fn masks(&self) -> PathBuf {
        self.root.join(MASKS_DIR)
    }

    /// `<root>/masks/<study>/<stem>.nii.gz`, `stem` being the series id (with `_<k>` for the k-th
    /// stack of a series made of several non-parallel stacks).
    pub fn mask(&self, study: StudyId, stem: &str) -> PathBuf {
        self.masks()
            .join(study.to_string())
            .join(format!("{stem}.nii.gz"))
    }

    /// `<root>/<split>_images`
    pub fn images(&self, split: Split) -> PathBuf {
        self.root.join(split.folder())
    }

    /// `<root>/<split>_images/<study>`
    pub fn study(&self, split: Split, study: StudyId) -> PathBuf {
        self.images(split).join(study.to_string())
    }

    /// `<root>/<split>_images/<study>/<series>`
    pub fn series(&self, split: Split, study: StudyId, series: SeriesId) -> PathBuf {
        self.study(split, study).join(series.to_string())
    }

    /// `<root>/<split>_images/<study>/<series>/<instance>.dcm`
    pub fn instance(
        &self,
        split: Split,
        study: StudyId,
        series: SeriesId,
        instance: i64,
    ) -> PathBuf {
        self.series(split, study, series)
            .join(format!("{instance}.{INSTANCE_EXT}"))
    }

    /// The folder of a study in whichever split holds it (train first), if either does.
    pub fn find_study(&self, study: StudyId) -> Option<(Split, PathBuf)> {
        Split::ALL
            .into_iter()
            .map(|s| (s, self.study(s, study)))
            .find(|(_, p)| p.is_dir())
    }

    /// `instance` relative to the root, `/`-separated (as the index stores paths).
    pub fn relative_instance(
        split: Split,
        study: StudyId,
        series: SeriesId,
        instance: i64,
    ) -> String {
        format!(
            "{}/{study}/{series}/{instance}.{INSTANCE_EXT}",
            split.folder()
        )
    }

    /// If `dir` is a study folder of this layout (`<root>/<split>_images/<study>`), the dataset root,
    /// split and study id it names.
    pub fn of_study_dir(dir: &Path) -> Option<(Layout, Split, StudyId)> {
        let study: StudyId = dir.file_name()?.to_str()?.parse().ok()?;
        let images = dir.parent()?;
        let split = Split::from_folder(images.file_name()?.to_str()?)?;
        let root = images.parent()?;
        Some((Layout::new(root), split, study))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn study_dir_round_trip() {
        let l = Layout::new("/d");
        let dir = l.study(Split::Test, StudyId(12));
        let (l2, split, st) = Layout::of_study_dir(&dir).unwrap();
        assert_eq!((l2, split, st), (l, Split::Test, StudyId(12)));
        assert!(Layout::of_study_dir(Path::new("/d/other/12")).is_none());
        assert!(Layout::of_study_dir(Path::new("/d/train_images/x")).is_none());
        assert_eq!(
            Layout::relative_instance(Split::Train, StudyId(1), SeriesId(2), 3),
            "train_images/1/2/3.dcm"
        );
    }
}

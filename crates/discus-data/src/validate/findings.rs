//! Findings: what a validation found, with a stable kind and a severity that follows from it.

use super::*;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingSeverity {
    /// The data is wrong or unusable as it is; `discus validate` exits non-zero.
    Error,
    /// Suspicious, worth a look; the data is usable.
    Warning,
    /// Noted for information (real data has it too).
    Info,
}

impl FindingSeverity {
    /// `"error"`, `"warning"` or `"info"`.
    pub fn as_str(self) -> &'static str {
        match self {
            FindingSeverity::Error => "error",
            FindingSeverity::Warning => "warning",
            FindingSeverity::Info => "info",
        }
    }
}

macro_rules! finding_kinds {
    ($( $(#[$doc:meta])* $v:ident = $name:literal, $sev:ident; )*) => {
        /// What a finding is about. The snake_case names are stable: scripts may match on them.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum FindingKind {
            $( $(#[$doc])* #[serde(rename = $name)] $v, )*
        }
        impl FindingKind {
            /// Every kind, in declaration order.
            pub const ALL: &'static [FindingKind] = &[$(FindingKind::$v),*];
            /// The stable snake_case name.
            pub fn as_str(self) -> &'static str {
                match self { $(FindingKind::$v => $name,)* }
            }
            /// The severity every finding of this kind has.
            pub fn severity(self) -> FindingSeverity {
                match self { $(FindingKind::$v => FindingSeverity::$sev,)* }
            }
        }
    };
}

finding_kinds! {
    /// Neither train_images nor test_images exists under the root.
    NoImageFolders = "no_image_folders", Error;
    /// A *_series_descriptions.csv is missing beside its image folder.
    MissingDescriptionsCsv = "missing_descriptions_csv", Error;
    /// train.csv or train_label_coordinates.csv is missing beside train_images.
    MissingLabelsCsv = "missing_labels_csv", Warning;
    /// A CSV file is empty.
    EmptyCsv = "empty_csv", Error;
    /// A CSV file cannot be read or its header is wrong.
    CsvBadHeader = "csv_bad_header", Error;
    /// A CSV row cannot be read (the message names the line).
    CsvRowError = "csv_row_error", Error;
    /// A condition (or label column) that is not one of the five.
    UnknownCondition = "unknown_condition", Error;
    /// A folder name under an image folder is not a numeric id.
    BadFolderName = "bad_folder_name", Warning;
    /// A file name is not `<instance number>.dcm`.
    BadFileName = "bad_file_name", Warning;
    /// A study folder holds no series folders.
    EmptyStudyFolder = "empty_study_folder", Warning;
    /// A series folder holds no files.
    EmptySeriesFolder = "empty_series_folder", Warning;
    /// A file is not DICOM, truncated, or otherwise unreadable.
    UnreadableFile = "unreadable_file", Error;
    /// A file shorter than its uncompressed pixel data needs (cut off after the header).
    TruncatedFile = "truncated_file", Error;
    /// InstanceNumber in the header differs from the file name.
    InstanceNumberMismatch = "instance_number_mismatch", Error;
    /// StudyInstanceUID differs from the study folder name.
    StudyUidMismatch = "study_uid_mismatch", Warning;
    /// SeriesInstanceUID differs from the series folder name.
    SeriesUidMismatch = "series_uid_mismatch", Warning;
    /// A file lacks ImagePositionPatient, ImageOrientationPatient or PixelSpacing (or they are unusable).
    MissingGeometry = "missing_geometry", Error;
    /// Instance numbers do not start at 1.
    InstanceNumberOffset = "instance_number_offset", Info;
    /// Instance numbers skip values.
    InstanceNumberGaps = "instance_number_gaps", Warning;
    /// One series holds stacks of different orientations in the same plane, as real axial series
    /// do (one angled stack per disc level): information, not a fault.
    MixedOrientation = "mixed_orientation", Info;
    /// One series holds stacks in different planes (e.g. sagittal and axial slices together).
    MixedPlanes = "mixed_planes", Warning;
    /// One series holds slices of different matrix sizes (or pixel spacings).
    MixedMatrixSize = "mixed_matrix_size", Warning;
    /// Several slices of one stack at the same position.
    DuplicateSlicePositions = "duplicate_slice_positions", Warning;
    /// Slices of one stack are not evenly spaced.
    IrregularSliceSpacing = "irregular_slice_spacing", Info;
    /// The description says sagittal but the slices are axial (or the reverse).
    DescriptionPlaneMismatch = "description_plane_mismatch", Warning;
    /// The description's contrast (T1 / T2 / STIR) contradicts TR, TE and TI.
    DescriptionContrastMismatch = "description_contrast_mismatch", Warning;
    /// A series folder with no row in the descriptions file.
    SeriesWithoutDescription = "series_without_description", Warning;
    /// A description row whose series folder does not exist.
    DescriptionWithoutFolder = "description_without_folder", Warning;
    /// A study without a Sagittal T1 series.
    MissingSagittalT1 = "missing_sagittal_t1", Warning;
    /// A study without a Sagittal T2/STIR series.
    MissingSagittalT2Stir = "missing_sagittal_t2_stir", Warning;
    /// A study without an Axial T2 series.
    MissingAxialT2 = "missing_axial_t2", Warning;
    /// A study with several Axial T2 series.
    MultipleAxialSeries = "multiple_axial_series", Info;
    /// The points of one condition of a study lie on several series.
    LevelsSplitAcrossSeries = "levels_split_across_series", Info;
    /// A point on a series whose description is not the type its condition is marked on.
    PointOnWrongSeriesType = "point_on_wrong_series_type", Warning;
    /// A point on a series that has no folder.
    PointOnMissingSeries = "point_on_missing_series", Error;
    /// A point on an instance that has no file (or an unreadable one).
    PointOnMissingInstance = "point_on_missing_instance", Error;
    /// A point outside its image.
    PointOutsideImage = "point_outside_image", Warning;
    /// Two points for the same study, condition and level.
    DuplicatePoint = "duplicate_point", Warning;
    /// A grade in train.csv without a point in train_label_coordinates.csv.
    LabelWithoutPoint = "label_without_point", Warning;
    /// A point without a grade in train.csv.
    PointWithoutLabel = "point_without_label", Warning;
    /// A study in train.csv without a folder under train_images.
    LabelsWithoutImages = "labels_without_images", Warning;
    /// A study folder under train_images without a row in train.csv.
    StudyWithoutLabels = "study_without_labels", Warning;
    /// The dataset card (dataset.toml) cannot be read or parsed.
    BadDatasetCard = "bad_dataset_card", Error;
}

impl std::fmt::Display for FindingKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing validation found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// What was found.
    pub kind: FindingKind,
    /// How bad it is (fixed by the kind).
    pub severity: FindingSeverity,
    /// The study, when the finding concerns one.
    pub study: Option<StudyId>,
    /// The series, when the finding concerns one.
    pub series: Option<SeriesId>,
    /// The InstanceNumber (0020,0013), when the finding concerns one image.
    pub instance: Option<i64>,
    /// The finding in words.
    pub message: String,
}

impl Finding {
    /// A finding of `kind` (its severity is the kind's) on the given study, series and instance.
    pub fn new(
        kind: FindingKind,
        study: Option<u64>,
        series: Option<u64>,
        instance: Option<i64>,
        message: impl Into<String>,
    ) -> Self {
        Finding {
            kind,
            severity: kind.severity(),
            study: study.map(StudyId),
            series: series.map(SeriesId),
            instance,
            message: message.into(),
        }
    }
}

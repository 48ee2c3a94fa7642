//! Domain types: the five conditions, the five disc levels, the three grades, the three series kinds,
//! and the identifiers that tie a finding to a study.
//!
//! Every type has one canonical spelling in each of the LumbarDISC files and parses only that spelling
//! (case-sensitive, as the files are written), so a typo in a CSV is an error, never a silent miss.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A parse error for one of the domain words, carrying what was expected and what was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {found:?} (expected one of: {expected})")]
pub struct ParseDomainError {
    /// The kind of word being parsed, e.g. `"condition"` or `"level"`.
    pub what: &'static str,
    /// The text that was found.
    pub found: String,
    /// The accepted spellings, comma-separated.
    pub expected: String,
}

fn err(what: &'static str, found: &str, expected: &[&str]) -> ParseDomainError {
    ParseDomainError {
        what,
        found: found.to_string(),
        expected: expected.join(", "),
    }
}

/// A study id as in the dataset (`train_images/<study_id>`). Real ids exceed 2^31.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StudyId(pub u64);

/// A series id as in the dataset (`train_images/<study_id>/<series_id>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SeriesId(pub u64);

macro_rules! id_impls {
    ($t:ident, $what:literal) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
        impl FromStr for $t {
            type Err = ParseDomainError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.parse::<u64>().map($t).map_err(|_| ParseDomainError {
                    what: $what,
                    found: s.to_string(),
                    expected: "a non-negative integer".into(),
                })
            }
        }
    };
}
id_impls!(StudyId, "study id");
id_impls!(SeriesId, "series id");

/// A side of the patient, for the paired conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Side {
    /// The patient's left.
    Left,
    /// The patient's right.
    Right,
}

impl Side {
    /// Both sides, left first.
    pub const ALL: [Side; 2] = [Side::Left, Side::Right];
    /// `"left"` or `"right"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Left => "left",
            Side::Right => "right",
        }
    }
}

/// The condition groups of the competition metric: foraminal and subarticular pool both sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConditionGroup {
    /// Spinal canal stenosis (one condition per level).
    Spinal,
    /// Neural foraminal narrowing, left and right pooled.
    Foraminal,
    /// Subarticular stenosis, left and right pooled.
    Subarticular,
}

impl ConditionGroup {
    /// The three groups in metric term order: spinal, foraminal, subarticular.
    pub const ALL: [ConditionGroup; 3] = [
        ConditionGroup::Spinal,
        ConditionGroup::Foraminal,
        ConditionGroup::Subarticular,
    ];
    /// The snake_case name, as in reports: `"spinal"`, `"foraminal"`, `"subarticular"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionGroup::Spinal => "spinal",
            ConditionGroup::Foraminal => "foraminal",
            ConditionGroup::Subarticular => "subarticular",
        }
    }
}

/// One of the five graded conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// Spinal canal stenosis (`spinal_canal_stenosis`), graded on the Sagittal T2/STIR series.
    SpinalCanalStenosis,
    /// Left neural foraminal narrowing (`left_neural_foraminal_narrowing`), graded on Sagittal T1.
    LeftNeuralForaminalNarrowing,
    /// Right neural foraminal narrowing (`right_neural_foraminal_narrowing`), graded on Sagittal T1.
    RightNeuralForaminalNarrowing,
    /// Left subarticular stenosis (`left_subarticular_stenosis`), graded on Axial T2.
    LeftSubarticularStenosis,
    /// Right subarticular stenosis (`right_subarticular_stenosis`), graded on Axial T2.
    RightSubarticularStenosis,
}

impl Condition {
    /// In the column order of train.csv.
    pub const ALL: [Condition; 5] = [
        Condition::SpinalCanalStenosis,
        Condition::LeftNeuralForaminalNarrowing,
        Condition::RightNeuralForaminalNarrowing,
        Condition::LeftSubarticularStenosis,
        Condition::RightSubarticularStenosis,
    ];

    /// The snake-case key used in train.csv column names and submission row ids.
    pub fn key(self) -> &'static str {
        match self {
            Condition::SpinalCanalStenosis => "spinal_canal_stenosis",
            Condition::LeftNeuralForaminalNarrowing => "left_neural_foraminal_narrowing",
            Condition::RightNeuralForaminalNarrowing => "right_neural_foraminal_narrowing",
            Condition::LeftSubarticularStenosis => "left_subarticular_stenosis",
            Condition::RightSubarticularStenosis => "right_subarticular_stenosis",
        }
    }

    /// The words used in train_label_coordinates.csv.
    pub fn words(self) -> &'static str {
        match self {
            Condition::SpinalCanalStenosis => "Spinal Canal Stenosis",
            Condition::LeftNeuralForaminalNarrowing => "Left Neural Foraminal Narrowing",
            Condition::RightNeuralForaminalNarrowing => "Right Neural Foraminal Narrowing",
            Condition::LeftSubarticularStenosis => "Left Subarticular Stenosis",
            Condition::RightSubarticularStenosis => "Right Subarticular Stenosis",
        }
    }

    /// Parses the snake_case key of train.csv's column names, e.g. `spinal_canal_stenosis`.
    pub fn from_key(s: &str) -> Result<Self, ParseDomainError> {
        Self::ALL
            .into_iter()
            .find(|c| c.key() == s)
            .ok_or_else(|| err("condition", s, &Self::ALL.map(|c| c.key())))
    }

    /// Parses the words of train_label_coordinates.csv's `condition` column, e.g. `Spinal Canal Stenosis`.
    pub fn from_words(s: &str) -> Result<Self, ParseDomainError> {
        Self::ALL
            .into_iter()
            .find(|c| c.words() == s)
            .ok_or_else(|| err("condition", s, &Self::ALL.map(|c| c.words())))
    }

    /// The metric group the condition is scored in.
    pub fn group(self) -> ConditionGroup {
        match self {
            Condition::SpinalCanalStenosis => ConditionGroup::Spinal,
            Condition::LeftNeuralForaminalNarrowing | Condition::RightNeuralForaminalNarrowing => {
                ConditionGroup::Foraminal
            }
            Condition::LeftSubarticularStenosis | Condition::RightSubarticularStenosis => {
                ConditionGroup::Subarticular
            }
        }
    }

    /// The side of a paired condition; `None` for spinal canal stenosis.
    pub fn side(self) -> Option<Side> {
        match self {
            Condition::SpinalCanalStenosis => None,
            Condition::LeftNeuralForaminalNarrowing | Condition::LeftSubarticularStenosis => {
                Some(Side::Left)
            }
            Condition::RightNeuralForaminalNarrowing | Condition::RightSubarticularStenosis => {
                Some(Side::Right)
            }
        }
    }

    /// The series type this condition's points are marked on (spec section 2).
    pub fn series_kind(self) -> SeriesKind {
        match self.group() {
            ConditionGroup::Spinal => SeriesKind::SagittalT2Stir,
            ConditionGroup::Foraminal => SeriesKind::SagittalT1,
            ConditionGroup::Subarticular => SeriesKind::AxialT2,
        }
    }

    /// Position in [`Condition::ALL`] (0..5), the train.csv column block of this condition.
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// One of the five lumbar disc levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// The L1/L2 disc level.
    L1L2,
    /// The L2/L3 disc level.
    L2L3,
    /// The L3/L4 disc level.
    L3L4,
    /// The L4/L5 disc level.
    L4L5,
    /// The L5/S1 disc level.
    L5S1,
}

impl Level {
    /// The five levels, cranial to caudal.
    pub const ALL: [Level; 5] = [
        Level::L1L2,
        Level::L2L3,
        Level::L3L4,
        Level::L4L5,
        Level::L5S1,
    ];

    /// The key in column names and row ids (`l1_l2`).
    pub fn key(self) -> &'static str {
        match self {
            Level::L1L2 => "l1_l2",
            Level::L2L3 => "l2_l3",
            Level::L3L4 => "l3_l4",
            Level::L4L5 => "l4_l5",
            Level::L5S1 => "l5_s1",
        }
    }

    /// The spelling in train_label_coordinates.csv (`L1/L2`).
    pub fn words(self) -> &'static str {
        match self {
            Level::L1L2 => "L1/L2",
            Level::L2L3 => "L2/L3",
            Level::L3L4 => "L3/L4",
            Level::L4L5 => "L4/L5",
            Level::L5S1 => "L5/S1",
        }
    }

    /// Parses the key of train.csv's column names, e.g. `l1_l2`.
    pub fn from_key(s: &str) -> Result<Self, ParseDomainError> {
        Self::ALL
            .into_iter()
            .find(|l| l.key() == s)
            .ok_or_else(|| err("level", s, &Self::ALL.map(|l| l.key())))
    }

    /// Parses the words of train_label_coordinates.csv's `level` column, e.g. `L1/L2`.
    pub fn from_words(s: &str) -> Result<Self, ParseDomainError> {
        Self::ALL
            .into_iter()
            .find(|l| l.words() == s)
            .ok_or_else(|| err("level", s, &Self::ALL.map(|l| l.words())))
    }

    /// Position in [`Level::ALL`] (0..5, cranial to caudal).
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// The three grades. Ordered: `NormalMild < Moderate < Severe`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Severity {
    /// Normal or mild (`Normal/Mild` in the CSV files); metric weight 1.
    #[serde(rename = "Normal/Mild")]
    NormalMild,
    /// Moderate; metric weight 2.
    Moderate,
    /// Severe; metric weight 4.
    Severe,
}

impl Severity {
    /// The three grades in ordinal order.
    pub const ALL: [Severity; 3] = [Severity::NormalMild, Severity::Moderate, Severity::Severe];

    /// The spelling in train.csv.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::NormalMild => "Normal/Mild",
            Severity::Moderate => "Moderate",
            Severity::Severe => "Severe",
        }
    }

    /// The submission column name (`normal_mild`, `moderate`, `severe`).
    pub fn column(self) -> &'static str {
        match self {
            Severity::NormalMild => "normal_mild",
            Severity::Moderate => "moderate",
            Severity::Severe => "severe",
        }
    }

    /// 0, 1, 2: the ordinal code used by agreement statistics.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The grade with ordinal code `i` (0, 1, 2); `None` for any other value.
    pub fn from_index(i: usize) -> Option<Self> {
        Self::ALL.get(i).copied()
    }

    /// The competition weight of a row whose true grade is this one.
    pub fn weight(self) -> f64 {
        match self {
            Severity::NormalMild => 1.0,
            Severity::Moderate => 2.0,
            Severity::Severe => 4.0,
        }
    }
}

impl FromStr for Severity {
    type Err = ParseDomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| err("grade", s, &Self::ALL.map(|v| v.as_str())))
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The three series types of a LumbarDISC study, by their description in *_series_descriptions.csv.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SeriesKind {
    /// `Sagittal T1`: the series foraminal narrowing is graded on.
    #[serde(rename = "Sagittal T1")]
    SagittalT1,
    /// `Sagittal T2/STIR`: the series spinal canal stenosis is graded on.
    #[serde(rename = "Sagittal T2/STIR")]
    SagittalT2Stir,
    /// `Axial T2`: the series subarticular stenosis is graded on.
    #[serde(rename = "Axial T2")]
    AxialT2,
}

impl SeriesKind {
    /// The three kinds in the order of the spec: Sagittal T1, Sagittal T2/STIR, Axial T2.
    pub const ALL: [SeriesKind; 3] = [
        SeriesKind::SagittalT1,
        SeriesKind::SagittalT2Stir,
        SeriesKind::AxialT2,
    ];
    /// The `series_description` spelling, e.g. `"Sagittal T2/STIR"`.
    pub fn as_str(self) -> &'static str {
        match self {
            SeriesKind::SagittalT1 => "Sagittal T1",
            SeriesKind::SagittalT2Stir => "Sagittal T2/STIR",
            SeriesKind::AxialT2 => "Axial T2",
        }
    }
    /// Whether the series is sagittal (T1 or T2/STIR) rather than axial.
    pub fn is_sagittal(self) -> bool {
        !matches!(self, SeriesKind::AxialT2)
    }
}

impl FromStr for SeriesKind {
    type Err = ParseDomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| err("series description", s, &Self::ALL.map(|v| v.as_str())))
    }
}

impl fmt::Display for SeriesKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One of the 25 label columns of train.csv: a condition at a level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LabelColumn {
    /// The graded condition.
    pub condition: Condition,
    /// The disc level.
    pub level: Level,
}

impl LabelColumn {
    /// The 25 columns in train.csv order (condition-major, then level).
    pub fn all() -> [LabelColumn; 25] {
        std::array::from_fn(|i| LabelColumn {
            condition: Condition::ALL[i / 5],
            level: Level::ALL[i % 5],
        })
    }

    /// Position in train.csv's 25 label columns.
    pub fn index(self) -> usize {
        self.condition.index() * 5 + self.level.index()
    }

    /// The column at position `i` of train.csv's 25 label columns; `None` for `i >= 25`.
    pub fn from_index(i: usize) -> Option<Self> {
        (i < 25).then(|| LabelColumn {
            condition: Condition::ALL[i / 5],
            level: Level::ALL[i % 5],
        })
    }

    /// `spinal_canal_stenosis_l1_l2`
    pub fn name(self) -> String {
        format!("{}_{}", self.condition.key(), self.level.key())
    }

    /// Parses a train.csv column name such as `spinal_canal_stenosis_l1_l2`.
    pub fn parse(s: &str) -> Result<Self, ParseDomainError> {
        // The level key is always the last 5 characters (`l1_l2`), joined by '_'.
        if s.len() > 6 && s.is_char_boundary(s.len() - 6) && s.as_bytes()[s.len() - 6] == b'_' {
            let (c, l) = (&s[..s.len() - 6], &s[s.len() - 5..]);
            if let (Ok(condition), Ok(level)) = (Condition::from_key(c), Level::from_key(l)) {
                return Ok(LabelColumn { condition, level });
            }
        }
        Err(ParseDomainError {
            what: "label column",
            found: s.to_string(),
            expected: "<condition>_<level>, e.g. spinal_canal_stenosis_l4_l5".into(),
        })
    }
}

impl fmt::Display for LabelColumn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}", self.condition.key(), self.level.key())
    }
}

/// A submission row id: `<study_id>_<condition>_<level>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RowId {
    /// The study the row predicts.
    pub study: StudyId,
    /// The condition and level the row predicts.
    pub column: LabelColumn,
}

impl RowId {
    /// The row id of `condition` at `level` in `study`.
    pub fn new(study: StudyId, condition: Condition, level: Level) -> Self {
        RowId {
            study,
            column: LabelColumn { condition, level },
        }
    }
}

impl RowId {
    /// The condition the row predicts.
    pub fn condition(self) -> Condition {
        self.column.condition
    }

    /// The disc level the row predicts.
    pub fn level(self) -> Level {
        self.column.level
    }

    /// Parses a row id, ignoring surrounding white space (as typed on a command line or in a cell).
    pub fn parse_trimmed(s: &str) -> Result<Self, ParseDomainError> {
        s.trim().parse()
    }
}

/// Serde shapes for [`RowId`] fields, for `#[serde(with = ...)]`.
///
/// [`RowId`]'s own serde shape is `{"study", "column": {"condition", "level"}}`. Outputs that
/// spell a finding as a string or as a flat `{"study", "condition", "level"}` object keep their
/// shape through these modules.
pub mod row_id_serde {
    use super::*;
    use serde::{Deserializer, Serializer};

    /// A [`RowId`] as its string, `<study_id>_<condition>_<level>`.
    pub mod string {
        use super::*;

        /// Writes the row id's string.
        pub fn serialize<S: Serializer>(r: &RowId, s: S) -> Result<S::Ok, S::Error> {
            s.collect_str(r)
        }

        /// Reads a row id's string; the error names the bad row id.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<RowId, D::Error> {
            let s = String::deserialize(d)?;
            s.parse().map_err(serde::de::Error::custom)
        }
    }

    /// A [`RowId`] as a flat `{"study", "condition", "level"}` object (a finding key).
    pub mod flat {
        use super::*;

        #[derive(Serialize, Deserialize)]
        struct Flat {
            study: StudyId,
            condition: Condition,
            level: Level,
        }

        /// Writes the flat object.
        pub fn serialize<S: Serializer>(r: &RowId, s: S) -> Result<S::Ok, S::Error> {
            Flat {
                study: r.study,
                condition: r.column.condition,
                level: r.column.level,
            }
            .serialize(s)
        }

        /// Reads the flat object.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<RowId, D::Error> {
            let f = Flat::deserialize(d)?;
            Ok(RowId::new(f.study, f.condition, f.level))
        }
    }
}

impl fmt::Display for RowId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}", self.study, self.column)
    }
}

impl FromStr for RowId {
    type Err = ParseDomainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ParseDomainError {
            what: "row_id",
            found: s.to_string(),
            expected: "<study_id>_<condition>_<level>, e.g. 44036939_spinal_canal_stenosis_l3_l4"
                .into(),
        };
        let (study, rest) = s.split_once('_').ok_or_else(bad)?;
        if study.is_empty() || !study.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let study = StudyId(study.parse().map_err(|_| bad())?);
        let column = LabelColumn::parse(rest).map_err(|_| bad())?;
        Ok(RowId { study, column })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_id_round_trip() {
        let s = "44036939_spinal_canal_stenosis_l3_l4";
        let r: RowId = s.parse().unwrap();
        assert_eq!(r.study, StudyId(44036939));
        assert_eq!(r.column.condition, Condition::SpinalCanalStenosis);
        assert_eq!(r.column.level, Level::L3L4);
        assert_eq!(r.to_string(), s);
        let big = "4294540297_right_subarticular_stenosis_l5_s1";
        assert_eq!(big.parse::<RowId>().unwrap().to_string(), big);
    }

    #[test]
    fn row_id_rejects_garbage() {
        for bad in [
            "",
            "x_spinal_canal_stenosis_l1_l2",
            "12_spinal_canal_stenosis_l6_l7",
            "12_spinal_stenosis_l1_l2",
            "12spinal_canal_stenosis_l1_l2",
            "-1_spinal_canal_stenosis_l1_l2",
        ] {
            assert!(bad.parse::<RowId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn columns_in_train_csv_order() {
        let cols = LabelColumn::all();
        assert_eq!(cols[0].name(), "spinal_canal_stenosis_l1_l2");
        assert_eq!(cols[5].name(), "left_neural_foraminal_narrowing_l1_l2");
        assert_eq!(cols[24].name(), "right_subarticular_stenosis_l5_s1");
        for (i, c) in cols.iter().enumerate() {
            assert_eq!(c.index(), i);
            assert_eq!(LabelColumn::parse(&c.name()).unwrap(), *c);
        }
    }

    #[test]
    fn words_round_trip() {
        for c in Condition::ALL {
            assert_eq!(Condition::from_words(c.words()).unwrap(), c);
            assert_eq!(Condition::from_key(c.key()).unwrap(), c);
        }
        for l in Level::ALL {
            assert_eq!(Level::from_words(l.words()).unwrap(), l);
        }
        assert!(Condition::from_words("Spinal canal stenosis").is_err());
        assert_eq!(
            "Sagittal T2/STIR".parse::<SeriesKind>().unwrap(),
            SeriesKind::SagittalT2Stir
        );
        assert!("Moderate ".parse::<Severity>().is_err());
    }
}

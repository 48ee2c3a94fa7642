//! The truth file (`truth.json`): what the cohort really is, beside what the CSVs say.

use crate::cohort::SynthConfig;
use crate::plan::CohortPlan;
use crate::quirks::{NaturalFinding, Quirk};
use crate::readers::{BayesLimit, Reader};
use discus_core::{Condition, Level, SeriesId, SeriesKind, Severity, StudyId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A labelled point of the truth: where the graded structure's centre is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TruthPoint {
    /// The graded condition.
    pub condition: Condition,
    /// The disc level.
    pub level: Level,
    /// The structure's centre in patient coordinates (mm, LPS).
    pub patient_mm: [f64; 3],
    /// The series the point is labelled on.
    pub series_id: SeriesId,
    /// The InstanceNumber of the slice nearest the centre.
    pub instance_number: u32,
    /// Column of the centre on that slice, in pixels.
    pub x: f64,
    /// Row of the centre on that slice, in pixels.
    pub y: f64,
}

/// Per-study truth, as written to truth.json.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StudyTruth {
    /// The study id.
    pub study_id: StudyId,
    /// The site's InstitutionName.
    pub site: String,
    /// The site's profile name (its full profile is in [`Truth::sites`]).
    pub site_profile: String,
    /// The patient: the index (generation order) of the patient's first study. Studies of the same
    /// patient (`--rescan`) share it.
    pub patient: usize,
    /// For a second scan of a patient (`--rescan`), the study id of the first scan.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rescan_of: Option<StudyId>,
    /// The scanner's Manufacturer (0008,0070).
    pub manufacturer: String,
    /// The scanner's ManufacturerModelName (0008,1090).
    pub model: String,
    /// MagneticFieldStrength (0018,0087), in tesla.
    pub field_strength_t: f64,
    /// The continuous degeneration degrees the grades came from.
    pub degrees: crate::anatomy::Degeneration,
    /// The patient's anatomy: sex, age, sizes and angles, pose, findings, and how levels are
    /// counted.
    pub anatomy: AnatomyTruth,
    /// True grade per label column (`spinal_canal_stenosis_l1_l2` ...), null when not labelled.
    pub true_grades: BTreeMap<String, Option<Severity>>,
    /// The true point of every finding.
    pub truth_points: Vec<TruthPoint>,
    /// Levels the axial series do not cover (their subarticular labels are empty, as in real data).
    pub uncovered_axial_levels: Vec<Level>,
    /// The study's series as written.
    pub series: Vec<SeriesTruth>,
    /// Every reader's grades per label column.
    pub reads: Vec<BTreeMap<String, Option<Severity>>>,
}

/// The anatomy of one study's patient in truth.json.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AnatomyTruth {
    /// Sex, age, body and disc sizes, lordosis, sacral slope, dural sac, conus.
    pub morphometry: crate::anatomy::Morphometry,
    /// Position in the scanner and coronal shape (offset, scoliosis, rotation).
    pub pose: crate::anatomy::Pose,
    /// Findings beyond the graded narrowing (Pfirrmann, Modic, Schmorl, HIZ, herniations,
    /// listhesis, facet effusion, synovial cyst).
    pub findings: crate::anatomy::Findings,
    /// How the levels were counted: the transitional type (sacralised L5, six lumbar vertebrae or
    /// none), the count the labels follow (from the sacrum, from T12, or both agreeing) and the
    /// anatomical name of each labelled disc.
    pub level_counting: crate::anatomy::LevelCounting,
}

/// One series of a study in truth.json.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeriesTruth {
    /// The series id.
    pub series_id: SeriesId,
    /// What the series really is.
    pub kind: SeriesKind,
    /// The description written to the CSV and header (differs from `kind` for a wrong-description quirk).
    pub description: SeriesKind,
    /// Number of instances written.
    pub instances: usize,
    /// Levels covered by an axial series (empty for sagittal).
    pub levels: Vec<Level>,
}

/// The truth file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Truth {
    /// The generator and its version, e.g. `discus-synth 0.1.0`.
    pub generator: String,
    /// The configuration the cohort was generated from.
    pub config: SynthConfig,
    /// The reader whose grades and points are train.csv / train_label_coordinates.csv.
    pub designated_reader: usize,
    /// The line ending of the written CSVs (`LF`).
    pub line_ending: String,
    /// The simulated readers.
    pub readers: Vec<Reader>,
    /// Every site's named profile: scanner, field, matrix, slices, T2 flavour, timing, SNR, value
    /// range.
    pub sites: Vec<crate::protocol::Site>,
    /// The expected score of the Bayes-optimal prediction on these labels.
    pub bayes_limit: BayesLimit,
    /// Every injected quirk.
    pub quirks: Vec<Quirk>,
    /// Findings `discus validate` should report that are not injected quirks (real data has them).
    pub natural_findings: Vec<NaturalFinding>,
    /// Per-study truth, in generation order.
    pub studies: Vec<StudyTruth>,
}

impl Truth {
    /// The Bayes-optimal submission for these studies: 25 rows per study, each the designated
    /// reader's label probabilities given the finding's true degree ([`Reader::label_probs`]), what
    /// a model that knew every degree exactly would predict. Its score on the studies' train.csv
    /// (`discus score`) is the Bayes limit realised on their labels; the `bayes_limit` above is
    /// its expectation over the label noise, for the whole cohort. A set of 200 studies can
    /// differ from it by a few hundredths, so a model is best judged against both.
    /// `None` when the designated reader is not in `readers`.
    pub fn bayes_submission(&self) -> Option<Vec<discus_core::formats::SubmissionRow>> {
        let reader = self.readers.get(self.designated_reader)?;
        Some(
            self.studies
                .iter()
                .flat_map(|st| {
                    discus_core::LabelColumn::all().into_iter().map(move |c| {
                        let degree = st.degrees.degree(c.condition.index(), c.level.index());
                        discus_core::formats::SubmissionRow {
                            row_id: discus_core::RowId::new(st.study_id, c.condition, c.level),
                            probs: reader.label_probs(degree, c.condition, c.level),
                        }
                    })
                })
                .collect(),
        )
    }
}

fn grade_map(g: &[Option<Severity>; 25]) -> BTreeMap<String, Option<Severity>> {
    discus_core::LabelColumn::all()
        .iter()
        .map(|c| (c.name(), g[c.index()]))
        .collect()
}

impl CohortPlan {
    /// The truth file's content for this plan.
    pub fn truth(&self) -> Truth {
        Truth {
            generator: format!("discus-synth {}", env!("CARGO_PKG_VERSION")),
            config: self.config.clone(),
            designated_reader: 0,
            line_ending: "LF".into(),
            readers: self.readers.clone(),
            sites: self.sites.clone(),
            bayes_limit: self.bayes_limit(),
            quirks: self.studies.iter().flat_map(|s| s.quirks.clone()).collect(),
            natural_findings: self
                .studies
                .iter()
                .flat_map(|s| s.natural.clone())
                .collect(),
            studies: self
                .studies
                .iter()
                .map(|s| {
                    let site = &self.sites[s.site];
                    StudyTruth {
                        study_id: s.study,
                        site: site.name.clone(),
                        site_profile: site.profile.clone(),
                        patient: s.patient,
                        rescan_of: (s.patient != s.index).then(|| self.studies[s.patient].study),
                        manufacturer: site.manufacturer.clone(),
                        model: site.model.clone(),
                        field_strength_t: site.field_t,
                        degrees: s.anatomy.degeneration.clone(),
                        anatomy: AnatomyTruth {
                            morphometry: s.anatomy.morph.clone(),
                            pose: s.anatomy.pose.clone(),
                            findings: s.anatomy.findings.clone(),
                            level_counting: s.anatomy.level_counting(),
                        },
                        true_grades: grade_map(&s.true_grades),
                        truth_points: s.truth_points.clone(),
                        uncovered_axial_levels: s.uncovered.clone(),
                        series: s
                            .series
                            .iter()
                            .map(|x| SeriesTruth {
                                series_id: x.series_id,
                                kind: x.kind,
                                description: x.description,
                                instances: x.slices.len(),
                                levels: x.levels.clone(),
                            })
                            .collect(),
                        reads: s
                            .reads
                            .iter()
                            .map(|r| grade_map(&r.grades.grades))
                            .collect(),
                    }
                })
                .collect(),
        }
    }
}

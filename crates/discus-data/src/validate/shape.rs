//! The dataset's shape: counts, label distribution, matrix sizes and scanners.

use super::*;

/// min / median / max.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MinMedMax {
    /// Smallest value.
    pub min: f64,
    /// Median value.
    pub median: f64,
    /// Largest value.
    pub max: f64,
    /// Number of values.
    pub count: usize,
}

impl MinMedMax {
    /// Min, median and max of `values` (sorted in place); `None` when empty.
    pub fn of(values: &mut [f64]) -> Option<MinMedMax> {
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        let n = values.len();
        Some(MinMedMax {
            min: values[0],
            median: discus_core::stats::quantile_sorted(values, 0.5)?,
            max: values[n - 1],
            count: n,
        })
    }
}

/// Grade counts of one label column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelCounts {
    /// The condition.
    pub condition: Condition,
    /// The level.
    pub level: Level,
    /// Studies graded Normal/Mild.
    pub normal_mild: u64,
    /// Studies graded Moderate.
    pub moderate: u64,
    /// Studies graded Severe.
    pub severe: u64,
    /// Studies with an empty cell.
    pub missing: u64,
}

/// The dataset's shape (spec section 3).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Shape {
    /// Study folders (all splits).
    pub studies: u64,
    /// Series folders (all splits).
    pub series: u64,
    /// Instance files (all splits).
    pub files: u64,
    /// Series folders by their description (`"none"` when undescribed).
    pub series_per_kind: BTreeMap<String, u64>,
    /// Studies by their (Sagittal T1, Sagittal T2/STIR, Axial T2) series counts, e.g. `"(1,1,2)"`.
    pub series_count_patterns: BTreeMap<String, u64>,
    /// Readable slices per series, by description.
    pub slices_per_series: BTreeMap<String, MinMedMax>,
    /// Series by description and matrix size (`rows x columns` of their largest stack).
    pub matrix_sizes: BTreeMap<String, BTreeMap<String, u64>>,
    /// Series by Manufacturer.
    pub vendors: BTreeMap<String, u64>,
    /// Series by MagneticFieldStrength (tesla).
    pub field_strengths: BTreeMap<String, u64>,
    /// Files by transfer syntax UID.
    pub transfer_syntaxes: BTreeMap<String, u64>,
    /// Studies with a row in train.csv.
    pub labelled_studies: u64,
    /// Rows of train_label_coordinates.csv.
    pub points: u64,
    /// Grade counts per condition x level, in train.csv column order.
    pub labels: Vec<LabelCounts>,
    /// Share of labelled studies with at least one Severe spinal level.
    pub severe_spinal_share: Option<f64>,
}

pub(crate) fn shape(
    csv: &CsvData,
    study_dirs: &BTreeSet<(&'static str, u64)>,
    summaries: &HashMap<(&'static str, u64, u64), SeriesSummary>,
) -> Shape {
    let mut s = Shape {
        studies: study_dirs.len() as u64,
        series: summaries.len() as u64,
        ..Shape::default()
    };
    let mut slices: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut patterns: BTreeMap<(&str, u64), [u32; 3]> =
        study_dirs.iter().map(|&k| (k, [0; 3])).collect();
    for (&(split, study, series), sum) in summaries {
        s.files += sum.n_files;
        let kind = csv.descriptions.get(&(split, study, series));
        let name = kind.map(|k| k.as_str()).unwrap_or("none").to_string();
        if let Some(k) = kind {
            if let Some(p) = patterns.get_mut(&(split, study)) {
                p[*k as usize] += 1;
            }
        }
        *s.series_per_kind.entry(name.clone()).or_default() += 1;
        slices
            .entry(name.clone())
            .or_default()
            .push(sum.n_readable as f64);
        if let Some((r, c)) = sum.matrix {
            *s.matrix_sizes
                .entry(name.clone())
                .or_default()
                .entry(format!("{r}x{c}"))
                .or_default() += 1;
        }
        *s.vendors
            .entry(sum.manufacturer.clone().unwrap_or_else(|| "unknown".into()))
            .or_default() += 1;
        *s.field_strengths
            .entry(
                sum.field_strength
                    .map(|v| format!("{v}"))
                    .unwrap_or_else(|| "unknown".into()),
            )
            .or_default() += 1;
        for (ts, n) in &sum.transfer_syntaxes {
            *s.transfer_syntaxes.entry(ts.clone()).or_default() += n;
        }
    }
    for (_, p) in patterns {
        *s.series_count_patterns
            .entry(format!("({},{},{})", p[0], p[1], p[2]))
            .or_default() += 1;
    }
    s.slices_per_series = slices
        .into_iter()
        .filter_map(|(k, mut v)| MinMedMax::of(&mut v).map(|m| (k, m)))
        .collect();
    if let Some(labels) = &csv.labels {
        s.labelled_studies = labels.len() as u64;
        s.labels = LabelColumn::all()
            .iter()
            .map(|c| {
                let mut lc = LabelCounts {
                    condition: c.condition,
                    level: c.level,
                    normal_mild: 0,
                    moderate: 0,
                    severe: 0,
                    missing: 0,
                };
                for l in labels {
                    match l.grades[c.index()] {
                        None => lc.missing += 1,
                        Some(discus_core::Severity::NormalMild) => lc.normal_mild += 1,
                        Some(discus_core::Severity::Moderate) => lc.moderate += 1,
                        Some(discus_core::Severity::Severe) => lc.severe += 1,
                    }
                }
                lc
            })
            .collect();
        let severe = labels
            .iter()
            .filter(|l| {
                Level::ALL.iter().any(|&lv| {
                    l.get(Condition::SpinalCanalStenosis, lv) == Some(discus_core::Severity::Severe)
                })
            })
            .count();
        s.severe_spinal_share = (!labels.is_empty()).then(|| severe as f64 / labels.len() as f64);
    }
    s.points = csv.points.as_ref().map(|p| p.len() as u64).unwrap_or(0);
    s
}

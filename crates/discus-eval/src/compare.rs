//! Representativeness: how a dataset B (a hospital's ingested data, one site) compares with a
//! dataset A (LumbarDISC, the other sites), facet by facet, side by side.
//!
//! Facets, each counted over **series**: vendor (Manufacturer), field strength (tesla), matrix
//! (`rows x columns`), slice thickness (mm) and series kind (the series description); and the
//! label distribution (Normal/Mild, Moderate, Severe; missing grades left out) of each
//! condition x level, counted over studies.
//!
//! Each facet gets two divergence figures between A's and B's distributions (over the union of
//! their categories):
//! - the total variation distance `TV = 1/2 sum |p_i - q_i|` (0 = same, 1 = disjoint);
//! - the Jensen-Shannon divergence in bits, `JS = 1/2 KL(p || m) + 1/2 KL(q || m)`, `m = (p + q)/2`,
//!   logarithms base 2 (0 = same, 1 = disjoint). This is the divergence, the square of what
//!   `scipy.spatial.distance.jensenshannon(p, q, base=2)` returns (a distance).
//!
//! and **flags** in plain words where B is outside A's range:
//! - [`FlagKind::NewCategory`]: B has a category A lacks (a vendor, a matrix, a series kind, a
//!   grade at a condition x level);
//! - [`FlagKind::OutsideRange`]: a numeric facet (field strength, slice thickness) where B's
//!   minimum is below A's minimum or B's maximum above A's maximum;
//! - [`FlagKind::Divergent`]: a facet whose JS divergence exceeds [`JS_FLAG_BITS`].
//!
//! A dataset compared with itself has divergence 0 everywhere and no flag. Counts are not tested
//! for significance: with few studies, divergences are noisy (read them with the counts shown).
//!
//! The dataset facts are read from the dataset index (scanned with `discus validate`'s scan when
//! there is none) by one function, [`dataset_facts`], so that the source can change in one place.

use crate::EvalError;
use discus_core::governance::DatasetCard;
use discus_core::layout::Layout;
use discus_core::{Condition, Level, Severity};
use discus_report::plot::{self, ColourScale};
use discus_report::{figure, html, note, page, section, Markup, ReportFiles};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// A facet whose Jensen-Shannon divergence between A and B is above this many bits is flagged
/// as divergent. 0.05 bits is well above the sampling noise of a few hundred series or studies
/// drawn from one distribution (of the order of (k - 1) / (2 n ln 2) / 4 bits for k categories and
/// n per side), and well below the divergence of a real shift (two vendors' shares swapped,
/// a grade twice as common).
pub const JS_FLAG_BITS: f64 = 0.05;

/// The category of a series (or grade) whose value is not recorded.
pub const UNKNOWN: &str = "unknown";

/// One series as the comparison sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesFacts {
    /// The series kind from `*_series_descriptions.csv`, else the header's SeriesDescription.
    pub kind: Option<String>,
    /// (0008,0070) Manufacturer.
    pub manufacturer: Option<String>,
    /// (0018,0087) MagneticFieldStrength in tesla (values above 100 taken as gauss).
    pub field_strength: Option<f64>,
    /// (Rows, Columns), the most common in the series.
    pub matrix: Option<(u32, u32)>,
    /// (0018,0050) SliceThickness in mm, the most common in the series.
    pub slice_thickness: Option<f64>,
}

/// What the comparison needs to know of one dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetFacts {
    /// The dataset root.
    pub root: PathBuf,
    /// Its dataset card, when it has a readable one.
    pub card: Option<DatasetCard>,
    /// Study folders with at least one series.
    pub studies: usize,
    /// Every series folder (all splits).
    pub series: Vec<SeriesFacts>,
    /// Studies with a row in train.csv.
    pub labelled_studies: usize,
    /// Grade counts per condition x level in train.csv column order (condition-major, 25 cells):
    /// Normal/Mild, Moderate, Severe, missing.
    pub labels: Vec<[u64; 4]>,
}

/// Reads the facts of the dataset at `root` from its index (`Layout::index`), running the scan of
/// `discus validate` first when there is no index (`progress` sees that scan). The one place that
/// knows where dataset facts come from.
pub fn dataset_facts(
    root: &Path,
    progress: &(dyn Fn(discus_data::validate::Progress) + Sync),
) -> Result<DatasetFacts, EvalError> {
    use discus_data::index::{Index, IndexError};
    let layout = Layout::new(root);
    if !root.is_dir() {
        return Err(EvalError::File {
            path: root.to_path_buf(),
            message: "not a folder (expected a dataset root)".into(),
        });
    }
    let index_path = layout.index();
    if !index_path.is_file() {
        discus_data::validate::validate(root, &Default::default(), progress).map_err(|e| {
            EvalError::File {
                path: root.to_path_buf(),
                message: format!("scanning the dataset: {e}"),
            }
        })?;
    }
    let index = Index::open_read_only(&index_path)?;
    let sql = |source| IndexError::Sql {
        path: index_path.clone(),
        source,
    };
    let conn = index.connection();
    let key = |split: String, study: i64, series: i64| (split, study as u64, series as u64);

    let mut described: HashMap<(String, u64, u64), String> = HashMap::new();
    {
        let mut st = conn
            .prepare("SELECT split, study_id, series_id, description FROM descriptions")
            .map_err(sql)?;
        let rows = st
            .query_map([], |r| {
                Ok((key(r.get(0)?, r.get(1)?, r.get(2)?), r.get::<_, String>(3)?))
            })
            .map_err(sql)?;
        for row in rows {
            let (k, d) = row.map_err(sql)?;
            described.insert(k, d);
        }
    }
    // Per series: (rows, columns) and thickness counts over its readable instances.
    type Modes = (BTreeMap<(u32, u32), u64>, BTreeMap<u64, u64>);
    let mut modes: HashMap<(String, u64, u64), Modes> = HashMap::new();
    {
        let mut st = conn
            .prepare(
                "SELECT split, study_id, series_id, rows, columns, slice_thickness FROM instances
                 WHERE error IS NULL",
            )
            .map_err(sql)?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    key(r.get(0)?, r.get(1)?, r.get(2)?),
                    r.get::<_, Option<i64>>(3)?,
                    r.get::<_, Option<i64>>(4)?,
                    r.get::<_, Option<f64>>(5)?,
                ))
            })
            .map_err(sql)?;
        for row in rows {
            let (k, r, c, t) = row.map_err(sql)?;
            let m = modes.entry(k).or_default();
            if let (Some(r), Some(c)) = (r, c) {
                *m.0.entry((r as u32, c as u32)).or_default() += 1;
            }
            if let Some(t) = t.filter(|t| t.is_finite() && *t > 0.0) {
                *m.1.entry(t.to_bits()).or_default() += 1;
            }
        }
    }
    fn mode<K: Copy + Ord>(m: &BTreeMap<K, u64>) -> Option<K> {
        // Most common; the smallest on ties (BTreeMap order), so the choice is stable.
        m.iter()
            .fold(None, |best: Option<(K, u64)>, (&k, &n)| match best {
                Some((_, bn)) if bn >= n => best,
                _ => Some((k, n)),
            })
            .map(|(k, _)| k)
    }
    let rows = index.series_rows()?;
    let mut studies = BTreeSet::new();
    let series = rows
        .into_iter()
        .map(|r| {
            let k = (r.split.clone(), r.study_id, r.series_id);
            studies.insert((r.split.clone(), r.study_id));
            let m = modes.get(&k);
            SeriesFacts {
                kind: described
                    .get(&k)
                    .cloned()
                    .or(r.description)
                    .map(|d| d.trim().to_string())
                    .filter(|d| !d.is_empty()),
                manufacturer: r
                    .manufacturer
                    .map(|s| s.trim_matches([' ', '\0']).to_string())
                    .filter(|s| !s.is_empty()),
                field_strength: r
                    .field_strength
                    .filter(|t| t.is_finite() && *t > 0.0)
                    .map(|t| if t > 100.0 { t / 10_000.0 } else { t }),
                matrix: m.and_then(|m| mode(&m.0)),
                slice_thickness: m.and_then(|m| mode(&m.1)).map(f64::from_bits),
            }
        })
        .collect();

    let mut labels = vec![[0u64; 4]; 25];
    let mut labelled = BTreeSet::new();
    {
        let cond: HashMap<&str, Condition> = Condition::ALL.iter().map(|c| (c.key(), *c)).collect();
        let lev: HashMap<&str, Level> = Level::ALL.iter().map(|l| (l.key(), *l)).collect();
        let mut st = conn
            .prepare("SELECT study_id, condition, level, grade FROM labels")
            .map_err(sql)?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?,
                ))
            })
            .map_err(sql)?;
        for row in rows {
            let (study, c, l, g) = row.map_err(sql)?;
            labelled.insert(study);
            let (Some(c), Some(l)) = (cond.get(c.as_str()), lev.get(l.as_str())) else {
                return Err(EvalError::File {
                    path: index_path.clone(),
                    message: format!("labels table: unknown condition or level {c:?} {l:?}"),
                });
            };
            let slot = match g.as_deref().map(str::parse::<Severity>) {
                None => 3,
                Some(Ok(s)) => s.index(),
                Some(Err(e)) => {
                    return Err(EvalError::File {
                        path: index_path.clone(),
                        message: format!("labels table, study {study}: {e}"),
                    })
                }
            };
            labels[c.index() * 5 + l.index()][slot] += 1;
        }
    }
    Ok(DatasetFacts {
        root: root.to_path_buf(),
        card: discus_core::governance::load_card(root).ok().flatten(),
        studies: studies.len(),
        series,
        labelled_studies: labelled.len(),
        labels,
    })
}

/// The facets of the series compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompareFacet {
    /// Manufacturer.
    Vendor,
    /// MagneticFieldStrength, tesla (numeric).
    FieldStrength,
    /// Rows x Columns.
    Matrix,
    /// SliceThickness, mm (numeric).
    SliceThickness,
    /// The series description.
    SeriesKind,
}

impl CompareFacet {
    /// Every facet, in report order.
    pub const ALL: [CompareFacet; 5] = [
        CompareFacet::Vendor,
        CompareFacet::FieldStrength,
        CompareFacet::Matrix,
        CompareFacet::SliceThickness,
        CompareFacet::SeriesKind,
    ];

    /// The snake_case name (as in report.json and flags).
    pub fn key(self) -> &'static str {
        match self {
            CompareFacet::Vendor => "vendor",
            CompareFacet::FieldStrength => "field_strength",
            CompareFacet::Matrix => "matrix",
            CompareFacet::SliceThickness => "slice_thickness",
            CompareFacet::SeriesKind => "series_kind",
        }
    }

    /// A heading.
    pub fn title(self) -> &'static str {
        match self {
            CompareFacet::Vendor => "Vendor (Manufacturer)",
            CompareFacet::FieldStrength => "Field strength (tesla)",
            CompareFacet::Matrix => "Matrix (rows x columns)",
            CompareFacet::SliceThickness => "Slice thickness (mm)",
            CompareFacet::SeriesKind => "Series kind (series description)",
        }
    }

    /// Whether B is checked against A's numeric range (else against A's categories).
    pub fn numeric(self) -> bool {
        matches!(
            self,
            CompareFacet::FieldStrength | CompareFacet::SliceThickness
        )
    }

    /// The category and (for numeric facets) the value of one series.
    fn of(self, s: &SeriesFacts) -> (String, Option<f64>) {
        let (cat, v) = match self {
            CompareFacet::Vendor => (s.manufacturer.clone(), None),
            CompareFacet::FieldStrength => (
                s.field_strength.map(|t| format!("{t:.1} T")),
                s.field_strength,
            ),
            CompareFacet::Matrix => (s.matrix.map(|(r, c)| format!("{r} x {c}")), None),
            CompareFacet::SliceThickness => (
                s.slice_thickness.map(|t| format!("{t:.1} mm")),
                s.slice_thickness,
            ),
            CompareFacet::SeriesKind => (s.kind.clone(), None),
        };
        (cat.unwrap_or_else(|| UNKNOWN.into()), v)
    }
}

/// The two divergence figures of a pair of distributions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Divergence {
    /// Total variation distance, in [0, 1].
    pub total_variation: f64,
    /// Jensen-Shannon divergence, base 2 (bits), in [0, 1].
    pub jensen_shannon_bits: f64,
}

/// Total variation distance `1/2 sum |p_i - q_i|` of two probability vectors of equal length.
pub fn total_variation(p: &[f64], q: &[f64]) -> f64 {
    0.5 * p.iter().zip(q).map(|(a, b)| (a - b).abs()).sum::<f64>()
}

/// Jensen-Shannon divergence (base 2, bits) of two probability vectors of equal length.
pub fn jensen_shannon_bits(p: &[f64], q: &[f64]) -> f64 {
    let kl_to_mid = |x: &[f64], y: &[f64]| -> f64 {
        x.iter()
            .zip(y)
            .filter(|(a, _)| **a > 0.0)
            .map(|(a, b)| a * (2.0 * a / (a + b)).log2())
            .sum()
    };
    (0.5 * kl_to_mid(p, q) + 0.5 * kl_to_mid(q, p)).max(0.0)
}

/// The divergence of two count vectors (aligned by index); `None` when either is all zero.
pub fn divergence_of_counts(a: &[u64], b: &[u64]) -> Option<Divergence> {
    let (sa, sb) = (a.iter().sum::<u64>(), b.iter().sum::<u64>());
    if sa == 0 || sb == 0 || a.len() != b.len() {
        return None;
    }
    let p: Vec<f64> = a.iter().map(|&n| n as f64 / sa as f64).collect();
    let q: Vec<f64> = b.iter().map(|&n| n as f64 / sb as f64).collect();
    Some(Divergence {
        total_variation: total_variation(&p, &q),
        jensen_shannon_bits: jensen_shannon_bits(&p, &q),
    })
}

/// The divergence of two count maps over the union of their categories.
fn divergence_of_maps(a: &BTreeMap<String, u64>, b: &BTreeMap<String, u64>) -> Option<Divergence> {
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let get = |m: &BTreeMap<String, u64>, k: &String| m.get(k).copied().unwrap_or(0);
    let va: Vec<u64> = keys.iter().map(|k| get(a, k)).collect();
    let vb: Vec<u64> = keys.iter().map(|k| get(b, k)).collect();
    divergence_of_counts(&va, &vb)
}

/// One facet of the series, A beside B.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FacetComparison {
    /// Which facet.
    pub facet: CompareFacet,
    /// A's series per category.
    pub a: BTreeMap<String, u64>,
    /// B's series per category.
    pub b: BTreeMap<String, u64>,
    /// A's [min, max] (numeric facets with a known value).
    pub a_range: Option<[f64; 2]>,
    /// B's [min, max].
    pub b_range: Option<[f64; 2]>,
    /// None when either side has no series.
    pub divergence: Option<Divergence>,
}

/// The label distribution of one condition x level, A beside B.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelComparison {
    /// The condition.
    pub condition: Condition,
    /// The level.
    pub level: Level,
    /// A's studies graded Normal/Mild, Moderate, Severe.
    pub a: [u64; 3],
    /// B's.
    pub b: [u64; 3],
    /// A's studies without a grade here.
    pub a_missing: u64,
    /// B's.
    pub b_missing: u64,
    /// None when either side has no grade here.
    pub divergence: Option<Divergence>,
}

impl LabelComparison {
    /// `condition_level`, e.g. `spinal_canal_stenosis_l4_l5` (the train.csv column).
    pub fn key(&self) -> String {
        format!("{}_{}", self.condition.key(), self.level.key())
    }
}

/// Why something is flagged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlagKind {
    /// B has a category that A lacks.
    NewCategory,
    /// B's values reach outside A's min-max.
    OutsideRange,
    /// The JS divergence is above [`JS_FLAG_BITS`].
    Divergent,
}

/// A plain-language flag: where B is outside A's range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Flag {
    /// The facet key (`vendor`, `field_strength`, `matrix`, `slice_thickness`, `series_kind`)
    /// or `labels`.
    pub facet: String,
    /// The category or the condition x level concerned, when the flag is about one.
    pub item: Option<String>,
    /// Why.
    pub kind: FlagKind,
    /// The flag in words.
    pub message: String,
}

/// One side of the comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Side {
    /// The dataset root.
    pub root: PathBuf,
    /// Its dataset card, if any.
    pub card: Option<DatasetCard>,
    /// Studies with series.
    pub studies: usize,
    /// Series.
    pub series: usize,
    /// Studies with labels.
    pub labelled_studies: usize,
}

/// Everything `discus compare` computes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The discus version that made it.
    pub discus_version: String,
    /// The reference dataset.
    pub a: Side,
    /// The dataset compared with it.
    pub b: Side,
    /// [`JS_FLAG_BITS`] at the time.
    pub js_flag_bits: f64,
    /// The series facets, in [`CompareFacet::ALL`] order.
    pub facets: Vec<FacetComparison>,
    /// The 25 condition x level label distributions, in train.csv column order.
    pub labels: Vec<LabelComparison>,
    /// Every flag, facets first then labels.
    pub flags: Vec<Flag>,
}

impl Comparison {
    /// The facet keys that have at least one flag.
    pub fn flagged_facets(&self) -> BTreeSet<String> {
        self.flags.iter().map(|f| f.facet.clone()).collect()
    }
}

/// Display order of categories: numbers inside names compare as numbers (`96 x 96` before
/// `115 x 115`, `1.5 T` before `3.0 T`), the rest as text.
fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn parts(s: &str) -> Vec<(String, f64)> {
        let mut out = Vec::new();
        let mut text = String::new();
        let mut num = String::new();
        for ch in s.chars() {
            if ch.is_ascii_digit() || (ch == '.' && !num.is_empty()) {
                num.push(ch);
            } else {
                if !num.is_empty() {
                    out.push((std::mem::take(&mut text), num.parse().unwrap_or(0.0)));
                    num.clear();
                }
                text.push(ch);
            }
        }
        out.push((text, num.parse().unwrap_or(-1.0)));
        out
    }
    let (pa, pb) = (parts(a), parts(b));
    for (x, y) in pa.iter().zip(&pb) {
        let o = x.0.cmp(&y.0).then(x.1.total_cmp(&y.1));
        if o.is_ne() {
            return o;
        }
    }
    pa.len().cmp(&pb.len()).then(a.cmp(b))
}

/// The categories of A and B together, in display order.
fn categories<'a>(a: &'a BTreeMap<String, u64>, b: &'a BTreeMap<String, u64>) -> Vec<&'a String> {
    let mut keys: Vec<&String> = a
        .keys()
        .chain(b.keys())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    keys.sort_by(|x, y| natural_cmp(x, y));
    keys
}

fn studies(n: u64) -> String {
    format!("{n} {}", if n == 1 { "study" } else { "studies" })
}

fn pct(n: u64, total: u64) -> String {
    if total == 0 {
        "-".into()
    } else {
        format!("{:.1}%", 100.0 * n as f64 / total as f64)
    }
}

fn fmt_range(r: [f64; 2]) -> String {
    if r[0] == r[1] {
        format!("{}", r[0])
    } else {
        format!("{}-{}", r[0], r[1])
    }
}

/// Compares B with A (A is the reference: "B is outside A's range").
pub fn compare(a: &DatasetFacts, b: &DatasetFacts) -> Comparison {
    let mut flags = Vec::new();
    let facets: Vec<FacetComparison> = CompareFacet::ALL
        .iter()
        .map(|&facet| {
            let tally = |d: &DatasetFacts| {
                let mut m: BTreeMap<String, u64> = BTreeMap::new();
                let mut range: Option<[f64; 2]> = None;
                for s in &d.series {
                    let (cat, v) = facet.of(s);
                    *m.entry(cat).or_default() += 1;
                    if let Some(v) = v {
                        range = Some(match range {
                            None => [v, v],
                            Some([lo, hi]) => [lo.min(v), hi.max(v)],
                        });
                    }
                }
                (m, range)
            };
            let (ma, ra) = tally(a);
            let (mb, rb) = tally(b);
            let total_b: u64 = mb.values().sum();
            let name = facet.title().to_lowercase();
            let mut flag = |kind, item: Option<String>, message: String| {
                flags.push(Flag {
                    facet: facet.key().into(),
                    item,
                    kind,
                    message,
                })
            };
            if facet.numeric() {
                if let (Some([alo, ahi]), Some([blo, bhi])) = (ra, rb) {
                    let unit = if facet == CompareFacet::FieldStrength {
                        "T"
                    } else {
                        "mm"
                    };
                    if blo < alo || bhi > ahi {
                        flag(
                            FlagKind::OutsideRange,
                            None,
                            format!(
                                "{name}: B ranges {} {unit}, outside A's range {} {unit}",
                                fmt_range([blo, bhi]),
                                fmt_range([alo, ahi])
                            ),
                        );
                    }
                }
            } else if !ma.is_empty() {
                for (cat, &n) in &mb {
                    if !ma.contains_key(cat) {
                        flag(
                            FlagKind::NewCategory,
                            Some(cat.clone()),
                            format!(
                                "{name}: B has {cat} ({n} series, {}), which A does not have",
                                pct(n, total_b)
                            ),
                        );
                    }
                }
            }
            let divergence = divergence_of_maps(&ma, &mb);
            if let Some(d) = divergence.filter(|d| d.jensen_shannon_bits > JS_FLAG_BITS) {
                flag(
                    FlagKind::Divergent,
                    None,
                    format!(
                        "{name}: B's distribution differs from A's (Jensen-Shannon {:.3} bits > {JS_FLAG_BITS}; total variation {:.3})",
                        d.jensen_shannon_bits, d.total_variation
                    ),
                );
            }
            FacetComparison {
                facet,
                a: ma,
                b: mb,
                a_range: ra,
                b_range: rb,
                divergence,
            }
        })
        .collect();

    let mut labels = Vec::with_capacity(25);
    for c in Condition::ALL {
        for l in Level::ALL {
            let cell = c.index() * 5 + l.index();
            let get = |d: &DatasetFacts| d.labels.get(cell).copied().unwrap_or([0; 4]);
            let (la, lb) = (get(a), get(b));
            let lc = LabelComparison {
                condition: c,
                level: l,
                a: [la[0], la[1], la[2]],
                b: [lb[0], lb[1], lb[2]],
                a_missing: la[3],
                b_missing: lb[3],
                divergence: divergence_of_counts(&la[..3], &lb[..3]),
            };
            let where_ = format!("{} at {}", c.words(), l.words());
            let item = Some(lc.key());
            let total_a: u64 = lc.a.iter().sum();
            let total_b: u64 = lc.b.iter().sum();
            if total_a > 0 {
                for g in Severity::ALL {
                    let (na, nb) = (lc.a[g.index()], lc.b[g.index()]);
                    if na == 0 && nb > 0 {
                        flags.push(Flag {
                            facet: "labels".into(),
                            item: item.clone(),
                            kind: FlagKind::NewCategory,
                            message: format!(
                                "labels, {where_}: B grades {} ({}) {g}, a grade A never gives here",
                                studies(nb),
                                pct(nb, total_b)
                            ),
                        });
                    }
                }
            }
            if let Some(d) = lc
                .divergence
                .filter(|d| d.jensen_shannon_bits > JS_FLAG_BITS)
            {
                let share = |v: [u64; 3], t: u64| {
                    format!("{} / {} / {}", pct(v[0], t), pct(v[1], t), pct(v[2], t))
                };
                flags.push(Flag {
                    facet: "labels".into(),
                    item: item.clone(),
                    kind: FlagKind::Divergent,
                    message: format!(
                        "labels, {where_}: Normal/Mild / Moderate / Severe is {} in B against {} in A (Jensen-Shannon {:.3} bits > {JS_FLAG_BITS})",
                        share(lc.b, total_b),
                        share(lc.a, total_a),
                        d.jensen_shannon_bits
                    ),
                });
            }
            labels.push(lc);
        }
    }
    let side = |d: &DatasetFacts| Side {
        root: d.root.clone(),
        card: d.card.clone(),
        studies: d.studies,
        series: d.series.len(),
        labelled_studies: d.labelled_studies,
    };
    Comparison {
        discus_version: env!("CARGO_PKG_VERSION").into(),
        a: side(a),
        b: side(b),
        js_flag_bits: JS_FLAG_BITS,
        facets,
        labels,
        flags,
    }
}

/// The comparison as text, for the terminal.
pub fn write_text(c: &Comparison, w: &mut impl std::io::Write) -> std::io::Result<()> {
    let side = |s: &Side| {
        format!(
            "{} ({} studies, {} series, {} labelled studies{})",
            s.root.display(),
            s.studies,
            s.series,
            s.labelled_studies,
            s.card
                .as_ref()
                .map(|c| format!("; card: {}", c.name))
                .unwrap_or_default()
        )
    };
    writeln!(w, "A: {}", side(&c.a))?;
    writeln!(w, "B: {}", side(&c.b))?;
    let div = |d: Option<Divergence>| {
        d.map_or("-".into(), |d| {
            format!(
                "TV {:.3}, JS {:.3} bits",
                d.total_variation, d.jensen_shannon_bits
            )
        })
    };
    for f in &c.facets {
        writeln!(w, "{}: {}", f.facet.title(), div(f.divergence))?;
        let total = |m: &BTreeMap<String, u64>| m.values().sum::<u64>();
        let (ta, tb) = (total(&f.a), total(&f.b));
        for k in categories(&f.a, &f.b) {
            let (na, nb) = (
                f.a.get(k).copied().unwrap_or(0),
                f.b.get(k).copied().unwrap_or(0),
            );
            writeln!(
                w,
                "  {k:<28} A {na:>6} {:>7}   B {nb:>6} {:>7}",
                pct(na, ta),
                pct(nb, tb)
            )?;
        }
    }
    let worst = c
        .labels
        .iter()
        .filter_map(|l| l.divergence.map(|d| (l, d)))
        .max_by(|x, y| x.1.jensen_shannon_bits.total_cmp(&y.1.jensen_shannon_bits));
    match worst {
        Some((l, d)) => writeln!(
            w,
            "labels: largest divergence at {}: {}",
            l.key(),
            div(Some(d))
        )?,
        None => writeln!(w, "labels: nothing to compare (a side has no labels)")?,
    }
    if c.flags.is_empty() {
        writeln!(
            w,
            "no flags: B is inside A's range on every facet (JS threshold {} bits)",
            c.js_flag_bits
        )?;
    } else {
        writeln!(w, "{} flags:", c.flags.len())?;
        for f in &c.flags {
            writeln!(w, "  - {}", f.message)?;
        }
    }
    Ok(())
}

/// The comparison as one self-contained HTML page: flags, then each facet side by side with a bar
/// plot of shares, then the label distributions (a heat map of JS divergence per
/// condition x level, bar plots per condition, and the counts).
pub fn render_html(c: &Comparison) -> Markup {
    let cards: Vec<&DatasetCard> = c.a.card.iter().chain(c.b.card.iter()).collect();
    let lede = html! {
        "A (the reference): " (c.a.root.display().to_string()) ", " (c.a.studies) " studies, "
        (c.a.series) " series, " (c.a.labelled_studies) " labelled. "
        "B: " (c.b.root.display().to_string()) ", " (c.b.studies) " studies, "
        (c.b.series) " series, " (c.b.labelled_studies) " labelled."
    };
    let flags = html! {
        @if c.flags.is_empty() {
            p.ok { "No flags: B is inside A's range on every facet." }
        } @else {
            ul.flags { @for f in c.flags.iter().filter(|f| f.facet != "labels") { li.flag { (f.message) } } }
            @let label_flags: Vec<&Flag> = c.flags.iter().filter(|f| f.facet == "labels").collect();
            @if !label_flags.is_empty() {
                @let cells = label_flags.iter().filter_map(|f| f.item.as_deref()).collect::<BTreeSet<_>>().len();
                details open {
                    summary.flag { "labels: " (label_flags.len()) " flags at " (cells) " of 25 condition x level cells" }
                    ul.flags { @for f in &label_flags { li.flag { (f.message) } } }
                }
            }
        }
        (note(&format!(
            "Flagged: a category B has and A lacks; a numeric value of B outside A's min-max; a Jensen-Shannon divergence (base 2) above {} bits. Series facets count series; labels count studies (missing grades left out). Divergences are not tested for significance: read them with the counts.",
            c.js_flag_bits
        )))
    };
    let div = |d: Option<Divergence>| {
        d.map_or("n/a (a side is empty)".into(), |d| {
            format!(
                "total variation {:.3}, Jensen-Shannon {:.3} bits",
                d.total_variation, d.jensen_shannon_bits
            )
        })
    };
    let facet = |f: &FacetComparison| {
        let keys: Vec<String> = categories(&f.a, &f.b).into_iter().cloned().collect();
        let (ta, tb) = (f.a.values().sum::<u64>(), f.b.values().sum::<u64>());
        let share = |m: &BTreeMap<String, u64>, t: u64| -> Vec<f64> {
            keys.iter()
                .map(|k| 100.0 * m.get(k).copied().unwrap_or(0) as f64 / t.max(1) as f64)
                .collect()
        };
        let chart = plot::bar_chart(&plot::BarChart {
            title: f.facet.title().into(),
            categories: keys.clone(),
            series: vec![("A".into(), share(&f.a, ta)), ("B".into(), share(&f.b, tb))],
            y_desc: "% of series".into(),
            size: ((160 + 70 * keys.len() as u32).clamp(360, 1100), 300),
        });
        let mine: Vec<&Flag> = c
            .flags
            .iter()
            .filter(|x| x.facet == f.facet.key())
            .collect();
        section(
            f.facet.title(),
            html! {
                p { (div(f.divergence)) }
                @if let (Some(ra), Some(rb)) = (f.a_range, f.b_range) {
                    p { "range: A " (fmt_range(ra)) ", B " (fmt_range(rb)) }
                }
                @for x in &mine { p.flag { (x.message) } }
                div.plots {
                    table {
                        tr { th { "category" } th { "A series" } th { "A %" } th { "B series" } th { "B %" } }
                        @for k in &keys {
                            @let na = f.a.get(k).copied().unwrap_or(0);
                            @let nb = f.b.get(k).copied().unwrap_or(0);
                            tr {
                                td { (k) }
                                td { (na) } td { (pct(na, ta)) }
                                td { (nb) } td { (pct(nb, tb)) }
                            }
                        }
                    }
                    (figure(chart, &format!("Share of series per category, A and B: {}", f.facet.title().to_lowercase())))
                }
            },
        )
    };
    let heat = plot::heat_map(&plot::HeatMap {
        rows: Condition::ALL
            .iter()
            .map(|c| c.words().to_string())
            .collect(),
        columns: Level::ALL.iter().map(|l| l.words().to_string()).collect(),
        values: Condition::ALL
            .iter()
            .map(|cnd| {
                Level::ALL
                    .iter()
                    .map(|l| {
                        c.labels
                            .iter()
                            .find(|x| x.condition == *cnd && x.level == *l)
                            .and_then(|x| x.divergence)
                            .map(|d| d.jensen_shannon_bits)
                    })
                    .collect()
            })
            .collect(),
        scale: ColourScale::white_red(0.0, (c.js_flag_bits * 4.0).max(0.2)),
        digits: 3,
        legend: "Jensen-Shannon divergence, bits".into(),
        cell: 64,
    });
    let per_condition = Condition::ALL.map(|cnd| {
        let sum = |f: fn(&LabelComparison) -> [u64; 3]| {
            c.labels
                .iter()
                .filter(|x| x.condition == cnd)
                .fold([0u64; 3], |acc, x| {
                    let v = f(x);
                    [acc[0] + v[0], acc[1] + v[1], acc[2] + v[2]]
                })
        };
        let (a, b) = (sum(|x| x.a), sum(|x| x.b));
        let share = |v: [u64; 3]| {
            let t = v.iter().sum::<u64>().max(1) as f64;
            v.iter()
                .map(|&n| 100.0 * n as f64 / t)
                .collect::<Vec<f64>>()
        };
        plot::bar_chart(&plot::BarChart {
            title: cnd.words().into(),
            categories: Severity::ALL.iter().map(|g| g.to_string()).collect(),
            series: vec![("A".into(), share(a)), ("B".into(), share(b))],
            y_desc: "% of graded levels".into(),
            size: (360, 280),
        })
    });
    let labels = html! {
        @if c.a.labelled_studies == 0 || c.b.labelled_studies == 0 {
            p.note { "A side has no labels (train.csv): the label distributions are not compared." }
        }
        div.plots {
            (figure(heat, "Jensen-Shannon divergence of the grade distribution, B against A, per condition and level (grey: a side has no grade there)."))
        }
        div.plots {
            @for (cnd, chart) in Condition::ALL.iter().zip(per_condition) {
                (figure(chart, &format!("{}: share of grades over the five levels, A and B", cnd.words())))
            }
        }
        table {
            tr {
                th { "condition x level" }
                th { "A N/M / Mod / Sev" } th { "A missing" }
                th { "B N/M / Mod / Sev" } th { "B missing" }
                th { "TV" } th { "JS bits" }
            }
            @for l in &c.labels {
                tr {
                    td { (l.key()) }
                    td { (l.a[0]) " / " (l.a[1]) " / " (l.a[2]) } td { (l.a_missing) }
                    td { (l.b[0]) " / " (l.b[1]) " / " (l.b[2]) } td { (l.b_missing) }
                    @match l.divergence {
                        Some(d) => {
                            td { (format!("{:.3}", d.total_variation)) }
                            @if d.jensen_shannon_bits > c.js_flag_bits {
                                td.flag { (format!("{:.3}", d.jensen_shannon_bits)) }
                            } @else {
                                td { (format!("{:.3}", d.jensen_shannon_bits)) }
                            }
                        }
                        None => { td { "n/a" } td { "n/a" } }
                    }
                }
            }
        }
    };
    page(
        "discus compare",
        lede,
        Some(&cards),
        html! {
            (section("Flags: where B is outside A's range", flags))
            @for f in &c.facets { (facet(f)) }
            (section("Label distribution per condition x level", labels))
        },
    )
}

/// Writes the report folder `dir`: `report.json` (the whole [`Comparison`]) and `index.html`.
pub fn write_report(dir: &Path, c: &Comparison) -> Result<ReportFiles, EvalError> {
    Ok(discus_report::write_report(dir, &render_html(c), c)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(series: Vec<SeriesFacts>, labels: Vec<[u64; 4]>) -> DatasetFacts {
        DatasetFacts {
            root: "x".into(),
            card: None,
            studies: 1,
            series,
            labelled_studies: 1,
            labels,
        }
    }

    fn series(vendor: &str, t: f64, thick: f64) -> SeriesFacts {
        SeriesFacts {
            kind: Some("Axial T2".into()),
            manufacturer: Some(vendor.into()),
            field_strength: Some(t),
            matrix: Some((320, 320)),
            slice_thickness: Some(thick),
        }
    }

    #[test]
    fn categories_in_natural_order() {
        let m = |v: &[&str]| -> BTreeMap<String, u64> {
            v.iter().map(|k| (k.to_string(), 1)).collect()
        };
        let a = m(&["760 x 640", "96 x 96", "512 x 512"]);
        let b = m(&["115 x 115", "unknown", "96 x 96"]);
        let got: Vec<&str> = categories(&a, &b).into_iter().map(|s| s.as_str()).collect();
        assert_eq!(
            got,
            ["96 x 96", "115 x 115", "512 x 512", "760 x 640", "unknown"]
        );
        let t = m(&["3.0 T", "1.5 T", "0.3 T"]);
        let got: Vec<&str> = categories(&t, &t).into_iter().map(|s| s.as_str()).collect();
        assert_eq!(got, ["0.3 T", "1.5 T", "3.0 T"]);
    }

    #[test]
    fn hand_computed_divergences() {
        // p = (1/2, 1/2, 0), q = (0, 1/2, 1/2): TV = 1/2; m = (1/4, 1/2, 1/4),
        // KL(p||m) = 1/2 log2 2 + 1/2 log2 1 = 1/2, likewise KL(q||m): JS = 1/2 bit.
        let d = divergence_of_counts(&[1, 1, 0], &[0, 5, 5]).unwrap();
        assert!((d.total_variation - 0.5).abs() < 1e-15);
        assert!((d.jensen_shannon_bits - 0.5).abs() < 1e-15);
        // Disjoint: both 1. Same: both 0.
        let d = divergence_of_counts(&[3, 0], &[0, 7]).unwrap();
        assert_eq!((d.total_variation, d.jensen_shannon_bits), (1.0, 1.0));
        let d = divergence_of_counts(&[2, 6, 2], &[1, 3, 1]).unwrap();
        assert_eq!((d.total_variation, d.jensen_shannon_bits), (0.0, 0.0));
        // p = (1, 0), q = (1/2, 1/2): m = (3/4, 1/4); JS = 1/2 log2(4/3) + 1/2 (1/2 log2(2/3) + 1/2 log2 2)
        let js = 0.5 * (4.0f64 / 3.0).log2() + 0.25 * (2.0f64 / 3.0).log2() + 0.25;
        let d = divergence_of_counts(&[4, 0], &[2, 2]).unwrap();
        assert!((d.jensen_shannon_bits - js).abs() < 1e-15);
        assert!((d.total_variation - 0.5).abs() < 1e-15);
        assert_eq!(divergence_of_counts(&[0, 0], &[1, 2]), None);
    }

    #[test]
    fn flags_new_categories_ranges_and_divergence_only() {
        let labels = vec![[5, 3, 2, 0]; 25];
        let a = facts(
            vec![series("SIEMENS", 1.5, 3.0), series("GE", 3.0, 4.0)],
            labels.clone(),
        );
        assert!(compare(&a, &a).flags.is_empty());
        // Same vendors and thicknesses in the same shares, one field strength beyond A's range.
        let mut b = a.clone();
        b.series[1].field_strength = Some(7.0);
        let c = compare(&a, &b);
        let kinds: Vec<(&str, FlagKind)> =
            c.flags.iter().map(|f| (f.facet.as_str(), f.kind)).collect();
        assert_eq!(
            kinds,
            [
                ("field_strength", FlagKind::OutsideRange),
                ("field_strength", FlagKind::Divergent)
            ]
        );
        assert!(
            c.flags[0].message.contains("1.5-7"),
            "{}",
            c.flags[0].message
        );
        // A new vendor and a Severe grade A never gives at one cell.
        let mut a2 = a.clone();
        a2.labels[7] = [10, 10, 0, 1];
        let mut b2 = a2.clone();
        b2.series.push(series("Philips", 1.5, 3.0));
        b2.labels[7] = [10, 10, 1, 0];
        let c = compare(&a2, &b2);
        let got: Vec<(&str, Option<&str>, FlagKind)> = c
            .flags
            .iter()
            .map(|f| (f.facet.as_str(), f.item.as_deref(), f.kind))
            .collect();
        assert_eq!(
            got,
            [
                ("vendor", Some("Philips"), FlagKind::NewCategory),
                ("vendor", None, FlagKind::Divergent),
                (
                    "labels",
                    Some("left_neural_foraminal_narrowing_l3_l4"),
                    FlagKind::NewCategory
                ),
            ],
            "{:#?}",
            c.flags
        );
        // The Severe share 1/21 is a small shift: JS below the threshold, so no divergence flag.
        assert!(c.labels[7].divergence.unwrap().jensen_shannon_bits < JS_FLAG_BITS);
        // (1 missing in A, none in B: missing grades are not a category.)
        assert_eq!((c.labels[7].a_missing, c.labels[7].b_missing), (1, 0));
    }
}

//! Agreement reports, disagreement worklists, adjudication decisions and consensus labels, computed
//! from the store's current reads.
//!
//! *Blinded reads* of a finding are, per reader, the read from the latest blinded round that reader
//! read the finding in (so a further blinded read replaces the reader's first one). *Adjudication
//! decisions* are the reads recorded in adjudication rounds; the latest one for a finding counts.

use crate::geometry::SliceLookup;
use crate::import::{row_id, ImportError, Issue};
use crate::store::{Point, ReadEvent, RoundKind, StoredRead};
use discus_core::agreement::{bootstrap, Estimate, Metric, Ratings, Statistic, Weights};
use discus_core::RowId;
use discus_core::{Condition, ConditionGroup, Level, SeriesId, Severity, StudyId};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

/// The blinded reads of one finding, one per reader, in reader-name order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FindingReads {
    /// The finding.
    #[serde(with = "discus_core::types::row_id_serde::flat")]
    pub key: RowId,
    /// Each reader's current blinded read, in reader-name order.
    pub reads: Vec<StoredRead>,
}

impl FindingReads {
    /// The reads that carry a grade, with the grade.
    pub fn graded(&self) -> impl Iterator<Item = (&StoredRead, Severity)> {
        self.reads.iter().filter_map(|r| r.grade.map(|g| (r, g)))
    }
    /// The read of the reader named `reader`, if any.
    pub fn read_by(&self, reader: &str) -> Option<&StoredRead> {
        self.reads.iter().find(|r| r.reader_name == reader)
    }
}

/// Groups current reads into findings: blinded reads (optionally of one round only, and of the given
/// readers only) per finding, in finding order.
pub fn blinded_findings(
    reads: &[StoredRead],
    round: Option<&str>,
    readers: Option<&[String]>,
) -> Vec<FindingReads> {
    let mut by_key: BTreeMap<RowId, BTreeMap<String, StoredRead>> = BTreeMap::new();
    for r in reads {
        if r.round_kind != RoundKind::Blinded {
            continue;
        }
        if round.is_some_and(|n| n != r.round_name) {
            continue;
        }
        if readers.is_some_and(|rs| !rs.contains(&r.reader_name)) {
            continue;
        }
        let slot = by_key.entry(r.key).or_default();
        match slot.get(&r.reader_name) {
            Some(prev) if prev.round.0 > r.round.0 => {}
            _ => {
                slot.insert(r.reader_name.clone(), r.clone());
            }
        }
    }
    by_key
        .into_iter()
        .map(|(key, m)| FindingReads {
            key,
            reads: m.into_values().collect(),
        })
        .collect()
}

/// The latest adjudication decision per finding.
pub fn adjudications(reads: &[StoredRead]) -> HashMap<RowId, StoredRead> {
    let mut out: HashMap<RowId, StoredRead> = HashMap::new();
    for r in reads
        .iter()
        .filter(|r| r.round_kind == RoundKind::Adjudication)
    {
        match out.get(&r.key) {
            Some(prev) if prev.event_id > r.event_id => {}
            _ => {
                out.insert(r.key, r.clone());
            }
        }
    }
    out
}

/// Options of an agreement report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgreementOptions {
    /// Bootstrap resamples per estimate.
    pub resamples: usize,
    /// Seed of the bootstrap resampling.
    pub seed: u64,
    /// Points closer than this (mm, in patient space) agree on where.
    pub tolerance_mm: f64,
}

impl Default for AgreementOptions {
    fn default() -> Self {
        AgreementOptions {
            resamples: 1000,
            seed: 20240601,
            tolerance_mm: 5.0,
        }
    }
}

/// Estimates over one subset of findings, all readers together.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupAgreement {
    /// The subset's name: `overall`, a condition key or a level key.
    pub group: String,
    /// Findings in the subset.
    pub findings: usize,
    /// One estimate per statistic, with its bootstrap interval.
    pub estimates: Vec<Estimate>,
}

/// Where two readers' points lie relative to each other.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PointAgreement {
    /// Findings both readers put a point on.
    pub both_placed: usize,
    /// Of those, the ones whose distance could be measured.
    pub measured: usize,
    /// Points that could not be placed in patient space (no image, unreadable header, other frame).
    pub unplaced: usize,
    /// Median distance between the two readers' points (mm), over the measured findings.
    pub median_mm: Option<f64>,
    /// Mean distance (mm), over the measured findings.
    pub mean_mm: Option<f64>,
    /// 90th percentile of the distance (mm), over the measured findings.
    pub p90_mm: Option<f64>,
    /// The tolerance used (mm).
    pub tolerance_mm: f64,
    /// Findings with both points within the tolerance.
    pub within_tolerance: usize,
    /// Grade agreement over the findings whose points agree within the tolerance.
    pub grade_within_tolerance: Vec<Estimate>,
}

/// Agreement between two readers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PairAgreement {
    /// The first reader's name.
    pub a: String,
    /// The second reader's name.
    pub b: String,
    /// Findings both graded.
    pub findings: usize,
    /// Grade agreement over all findings both graded.
    pub estimates: Vec<Estimate>,
    /// `None` when no slice geometry was available.
    pub points: Option<PointAgreement>,
}

/// The agreement report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgreementReport {
    /// The readers, by name.
    pub readers: Vec<String>,
    /// Findings with at least one blinded read.
    pub findings: usize,
    /// Studies with at least one blinded read.
    pub studies: usize,
    /// The options the report was computed with.
    pub options: AgreementOptions,
    /// All findings.
    pub overall: GroupAgreement,
    /// One group per condition, in [`Condition::ALL`] order.
    pub by_condition: Vec<GroupAgreement>,
    /// One group per level, in [`Level::ALL`] order.
    pub by_level: Vec<GroupAgreement>,
    /// Every pair of readers.
    pub pairs: Vec<PairAgreement>,
}

impl AgreementReport {
    /// The value of a statistic for a reader pair (either order), for heat maps.
    pub fn pair_value(&self, a: &str, b: &str, statistic: Statistic) -> Option<f64> {
        self.pairs
            .iter()
            .find(|p| (p.a == a && p.b == b) || (p.a == b && p.b == a))
            .and_then(|p| p.estimates.iter().find(|e| e.statistic == statistic))
            .and_then(|e| e.value)
    }
}

fn ratings(findings: &[&FindingReads], readers: &[String]) -> Ratings {
    let mut r = Ratings::new(3, readers.len().max(1)).expect("3 categories");
    for f in findings {
        let row: Vec<Option<usize>> = readers
            .iter()
            .map(|name| f.read_by(name).and_then(|r| r.grade).map(Severity::index))
            .collect();
        if row.iter().filter(|c| c.is_some()).count() >= 1 {
            r.push_in(f.key.study.0, &row).expect("valid row");
        }
    }
    r
}

fn estimates(r: &Ratings, stats: &[Statistic], opts: &AgreementOptions) -> Vec<Estimate> {
    stats
        .par_iter()
        .map(|s| bootstrap(r, *s, opts.resamples, opts.seed))
        .collect()
}

fn group(
    name: String,
    findings: &[&FindingReads],
    readers: &[String],
    opts: &AgreementOptions,
) -> GroupAgreement {
    let r = ratings(findings, readers);
    let stats: &[Statistic] = if readers.len() == 2 {
        &Statistic::PAIRWISE
    } else {
        &Statistic::MULTI
    };
    GroupAgreement {
        group: name,
        findings: r.subjects(),
        estimates: estimates(&r, stats, opts),
    }
}

fn quantile(v: Vec<f64>, p: f64) -> Option<f64> {
    discus_core::stats::quantile(&v, p)
}

/// The agreement report over blinded findings. `slices` places points in patient space; without it
/// only grades are compared.
pub fn agreement_report(
    findings: &[FindingReads],
    slices: Option<&dyn SliceLookup>,
    opts: &AgreementOptions,
) -> AgreementReport {
    let readers: Vec<String> = findings
        .iter()
        .flat_map(|f| f.reads.iter().map(|r| r.reader_name.clone()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let all: Vec<&FindingReads> = findings.iter().collect();
    let studies = findings
        .iter()
        .map(|f| f.key.study)
        .collect::<BTreeSet<StudyId>>()
        .len();
    let overall = group("overall".into(), &all, &readers, opts);
    let by_condition = Condition::ALL
        .iter()
        .map(|c| {
            let sub: Vec<&FindingReads> = all
                .iter()
                .copied()
                .filter(|f| f.key.condition() == *c)
                .collect();
            group(c.key().into(), &sub, &readers, opts)
        })
        .collect();
    let by_level = Level::ALL
        .iter()
        .map(|l| {
            let sub: Vec<&FindingReads> = all
                .iter()
                .copied()
                .filter(|f| f.key.level() == *l)
                .collect();
            group(l.key().into(), &sub, &readers, opts)
        })
        .collect();
    let mut pairs = Vec::new();
    for i in 0..readers.len() {
        for j in i + 1..readers.len() {
            pairs.push(pair_agreement(&all, &readers[i], &readers[j], slices, opts));
        }
    }
    AgreementReport {
        readers,
        findings: findings.len(),
        studies,
        options: opts.clone(),
        overall,
        by_condition,
        by_level,
        pairs,
    }
}

fn pair_agreement(
    all: &[&FindingReads],
    a: &str,
    b: &str,
    slices: Option<&dyn SliceLookup>,
    opts: &AgreementOptions,
) -> PairAgreement {
    let names = [a.to_string(), b.to_string()];
    let both: Vec<&FindingReads> = all
        .iter()
        .copied()
        .filter(|f| {
            f.read_by(a).and_then(|r| r.grade).is_some()
                && f.read_by(b).and_then(|r| r.grade).is_some()
        })
        .collect();
    let r = ratings(&both, &names);
    let estimates = estimates(&r, &Statistic::PAIRWISE, opts);
    let points = slices.map(|slices| {
        let mut both_placed = 0;
        let mut unplaced = 0;
        let mut dists = Vec::new();
        let mut within: Vec<&FindingReads> = Vec::new();
        for f in all {
            let (Some(pa), Some(pb)) = (
                f.read_by(a).and_then(|r| r.point),
                f.read_by(b).and_then(|r| r.point),
            ) else {
                continue;
            };
            both_placed += 1;
            match slices.distance_mm(f.key.study, &pa, &pb) {
                Ok(Some(d)) => {
                    dists.push(d);
                    if d <= opts.tolerance_mm
                        && f.read_by(a).and_then(|r| r.grade).is_some()
                        && f.read_by(b).and_then(|r| r.grade).is_some()
                    {
                        within.push(f);
                    }
                }
                _ => unplaced += 1,
            }
        }
        let rw = ratings(&within, &names);
        let stats = [
            Statistic::PercentAgreement,
            Statistic::CohenKappa {
                weights: Weights::Identity,
            },
            Statistic::CohenKappa {
                weights: Weights::Quadratic,
            },
            Statistic::KrippendorffAlpha {
                metric: Metric::Ordinal,
            },
        ];
        PointAgreement {
            both_placed,
            measured: dists.len(),
            unplaced,
            median_mm: quantile(dists.clone(), 0.5),
            mean_mm: (!dists.is_empty()).then(|| dists.iter().sum::<f64>() / dists.len() as f64),
            p90_mm: quantile(dists.clone(), 0.9),
            tolerance_mm: opts.tolerance_mm,
            within_tolerance: within.len(),
            grade_within_tolerance: estimates_for(&rw, &stats, opts),
        }
    });
    PairAgreement {
        a: a.into(),
        b: b.into(),
        findings: both.len(),
        estimates,
        points,
    }
}

fn estimates_for(r: &Ratings, stats: &[Statistic], opts: &AgreementOptions) -> Vec<Estimate> {
    estimates(r, stats, opts)
}

/// Which findings need another look.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "rule")]
pub enum DisagreementRule {
    /// Any two readers' grades differ.
    GradesDiffer,
    /// Two readers' grades are two steps apart (Normal/Mild against Severe).
    TwoSteps,
    /// Two readers' points are further apart than the tolerance (mm, patient space).
    PointsApart {
        /// The largest distance (mm) at which points still agree.
        tolerance_mm: f64,
    },
}

/// One finding that needs another look.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Disagreement {
    /// The submission-style row id, `<study>_<condition>_<level>`.
    pub row_id: String,
    /// The finding.
    #[serde(with = "discus_core::types::row_id_serde::flat")]
    pub key: RowId,
    /// Each reader's grade (`None`: point only).
    pub grades: Vec<(String, Option<Severity>)>,
    /// Highest minus lowest grade (0-2).
    pub spread: usize,
    /// Largest distance between two readers' points, mm, where measured.
    pub max_distance_mm: Option<f64>,
    /// Whether any reader graded it Severe (such findings are listed first).
    pub severe_involved: bool,
    /// Why it is listed, in words.
    pub reason: String,
}

/// The findings that need another look under `rule`, clinically weightiest first: findings where a
/// reader said Severe, then spinal canal before foraminal before subarticular, then the wider grade
/// spread, then the larger point distance, then study, condition, level.
pub fn disagreements(
    findings: &[FindingReads],
    rule: DisagreementRule,
    slices: Option<&dyn SliceLookup>,
) -> Vec<Disagreement> {
    let mut out: Vec<Disagreement> = findings
        .par_iter()
        .filter_map(|f| {
            let grades: Vec<Severity> = f.graded().map(|(_, g)| g).collect();
            if f.reads.len() < 2 {
                return None;
            }
            let spread = match (grades.iter().min(), grades.iter().max()) {
                (Some(lo), Some(hi)) => hi.index() - lo.index(),
                _ => 0,
            };
            let mut max_d: Option<f64> = None;
            let mut unplaced = None;
            if let Some(slices) = slices {
                let pts: Vec<Point> = f.reads.iter().filter_map(|r| r.point).collect();
                for i in 0..pts.len() {
                    for j in i + 1..pts.len() {
                        match slices.distance_mm(f.key.study, &pts[i], &pts[j]) {
                            Ok(Some(d)) => max_d = Some(max_d.map_or(d, |m: f64| m.max(d))),
                            Ok(None) => {
                                unplaced =
                                    Some("points on different frames of reference".to_string())
                            }
                            Err(e) => unplaced = Some(e.to_string()),
                        }
                    }
                }
            }
            let reason = match rule {
                DisagreementRule::GradesDiffer if spread >= 1 => {
                    format!("grades differ by {spread} step(s)")
                }
                DisagreementRule::TwoSteps if spread >= 2 => "grades differ by two steps".into(),
                DisagreementRule::PointsApart { tolerance_mm } => match (max_d, &unplaced) {
                    (Some(d), _) if d > tolerance_mm => {
                        format!("points {d:.1} mm apart (tolerance {tolerance_mm} mm)")
                    }
                    (_, Some(why)) => format!("points cannot be compared: {why}"),
                    _ => return None,
                },
                _ => return None,
            };
            Some(Disagreement {
                row_id: row_id(f.key),
                key: f.key,
                grades: f
                    .reads
                    .iter()
                    .map(|r| (r.reader_name.clone(), r.grade))
                    .collect(),
                spread,
                max_distance_mm: max_d,
                severe_involved: grades.contains(&Severity::Severe),
                reason,
            })
        })
        .collect();
    let group_rank = |c: Condition| match c.group() {
        ConditionGroup::Spinal => 0,
        ConditionGroup::Foraminal => 1,
        ConditionGroup::Subarticular => 2,
    };
    out.sort_by(|a, b| {
        b.severe_involved
            .cmp(&a.severe_involved)
            .then(group_rank(a.key.condition()).cmp(&group_rank(b.key.condition())))
            .then(b.spread.cmp(&a.spread))
            .then(
                b.max_distance_mm
                    .unwrap_or(0.0)
                    .total_cmp(&a.max_distance_mm.unwrap_or(0.0)),
            )
            .then(a.key.cmp(&b.key))
    });
    out
}

/// The worklist CSV for adjudicators: `row_id,grade,series_id,instance_number,x,y,reason,reads`
/// with the decision columns empty, to be filled in and given to [`parse_decisions`].
pub fn worklist_csv(items: &[Disagreement]) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "row_id",
        "grade",
        "series_id",
        "instance_number",
        "x",
        "y",
        "reason",
        "reads",
    ])
    .expect("in memory");
    for d in items {
        let reads = d
            .grades
            .iter()
            .map(|(r, g)| format!("{r}={}", g.map_or("-", |g| g.as_str())))
            .collect::<Vec<_>>()
            .join("; ");
        w.write_record([d.row_id.as_str(), "", "", "", "", "", &d.reason, &reads])
            .expect("in memory");
    }
    w.into_inner().expect("in memory")
}

/// Parses adjudication decisions: a CSV with `row_id` and `grade` columns (train.csv spelling) and
/// optionally `series_id,instance_number,x,y` (the decided point) and `note`; other columns are
/// ignored, and rows with an empty grade and no point (not yet decided) are skipped. Every bad line
/// is reported; any bad line rejects the file.
pub fn parse_decisions(bytes: &[u8], path: &Path) -> Result<Vec<ReadEvent>, ImportError> {
    let issue = |line: u64, message: String| Issue {
        path: path.to_path_buf(),
        line,
        message,
    };
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut rdr = csv::ReaderBuilder::new().flexible(true).from_reader(bytes);
    let headers = rdr
        .headers()
        .map_err(|e| ImportError::Rows {
            issues: vec![issue(1, e.to_string())],
        })?
        .clone();
    let col = |name: &str| headers.iter().position(|h| h.trim() == name);
    let (Some(c_row), Some(c_grade)) = (col("row_id"), col("grade")) else {
        return Err(ImportError::Rows {
            issues: vec![issue(
                1,
                "the header must have row_id and grade columns".into(),
            )],
        });
    };
    let pc = [col("series_id"), col("instance_number"), col("x"), col("y")];
    let c_note = col("note");
    let mut issues = Vec::new();
    let mut out = Vec::new();
    let mut seen: HashMap<RowId, u64> = HashMap::new();
    for rec in rdr.records() {
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                issues.push(issue(line, e.to_string()));
                continue;
            }
        };
        let line = rec.position().map(|p| p.line()).unwrap_or(0);
        let get = |c: Option<usize>| c.and_then(|c| rec.get(c)).unwrap_or("").trim();
        if rec.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        let key = match crate::import::parse_row_id(get(Some(c_row))) {
            Ok(k) => k,
            Err(m) => {
                issues.push(issue(line, m.to_string()));
                continue;
            }
        };
        let grade_s = get(Some(c_grade));
        let grade = if grade_s.is_empty() {
            None
        } else {
            match grade_s.parse::<Severity>() {
                Ok(g) => Some(g),
                Err(e) => {
                    issues.push(issue(line, e.to_string()));
                    continue;
                }
            }
        };
        let pv: Vec<&str> = pc.iter().map(|c| get(*c)).collect();
        let point = if pv.iter().all(|v| v.is_empty()) {
            None
        } else {
            let parsed = (|| -> Result<Point, String> {
                let n = |s: &str, what: &str| {
                    s.parse::<f64>()
                        .ok()
                        .filter(|v| v.is_finite())
                        .ok_or_else(|| format!("{what} {s:?} is not a number"))
                };
                Ok(Point {
                    series: SeriesId(
                        pv[0]
                            .parse()
                            .map_err(|_| format!("series_id {:?} is not an id", pv[0]))?,
                    ),
                    instance: pv[1].parse().map_err(|_| {
                        format!("instance_number {:?} is not a non-negative integer", pv[1])
                    })?,
                    x: n(pv[2], "x")?,
                    y: n(pv[3], "y")?,
                })
            })();
            match parsed {
                Ok(p) => Some(p),
                Err(m) => {
                    issues.push(issue(line, m));
                    continue;
                }
            }
        };
        if grade.is_none() && point.is_none() {
            continue;
        }
        if let Some(first) = seen.insert(key, line) {
            issues.push(issue(
                line,
                format!("{} again (first at line {first})", row_id(key)),
            ));
            continue;
        }
        let mut ev = ReadEvent::new(key.study, key.condition(), key.level());
        ev.grade = grade;
        ev.point = point;
        let note = get(c_note);
        if !note.is_empty() {
            ev.note = Some(note.to_string());
        }
        out.push(ev);
    }
    if !issues.is_empty() {
        return Err(ImportError::Rows { issues });
    }
    Ok(out)
}

/// How the final label of a finding is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsensusRule {
    /// Every reader who graded the finding gave the same grade; otherwise no label.
    Unanimous,
    /// More than half of the readers who graded the finding gave the same grade; otherwise no label.
    Majority,
    /// The adjudicator's decision where there is one; otherwise the unanimous grade; otherwise no label.
    Adjudicated,
    /// The median grade of the readers who graded the finding (the lower median for an even count).
    Median,
}

impl ConsensusRule {
    /// The rule's name: `"unanimous"`, `"majority"` or `"median"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ConsensusRule::Unanimous => "unanimous",
            ConsensusRule::Majority => "majority",
            ConsensusRule::Adjudicated => "adjudicated",
            ConsensusRule::Median => "median",
        }
    }
}

/// One read a consensus label rests on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceRead {
    /// The reader's name.
    pub reader: String,
    /// The round's name.
    pub round: String,
    /// The event's id in the store.
    pub event_id: i64,
    /// The grade read.
    pub grade: Option<Severity>,
}

/// A final label with its provenance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsensusLabel {
    /// The submission-style row id, `<study>_<condition>_<level>`.
    pub row_id: String,
    /// The finding.
    #[serde(with = "discus_core::types::row_id_serde::flat")]
    pub key: RowId,
    /// `None`: unresolved under the rule.
    pub grade: Option<Severity>,
    /// The point of the label; `None` when no reader placed one.
    pub point: Option<Point>,
    /// The rule the label was decided under.
    pub rule: ConsensusRule,
    /// How the grade was reached: `unanimous`, `majority`, `median`, `adjudicated`, `unresolved`.
    pub decided_by: String,
    /// The reads the label rests on.
    pub reads: Vec<SourceRead>,
    /// The adjudicator's name, when an adjudication decided the grade.
    pub adjudicator: Option<String>,
    /// The store event id of that adjudication decision.
    pub adjudication_event: Option<i64>,
    /// Which reader's point was taken (`None` when no point).
    pub point_from: Option<String>,
}

/// The consensus labels of every finding under `rule`.
///
/// The point of a label is the adjudicator's, when the decision has one; otherwise one of the points
/// of the readers who gave the final grade (of all readers, when none of them placed one): with
/// `slices`, the medoid (the point with the smallest sum of distances in mm to every reader's point);
/// without, the first reader's by name.
pub fn consensus(
    findings: &[FindingReads],
    adjudicated: &HashMap<RowId, StoredRead>,
    rule: ConsensusRule,
    slices: Option<&dyn SliceLookup>,
) -> Vec<ConsensusLabel> {
    // Findings that only an adjudicator has read still get a label under the adjudicated rule.
    let mut keys: BTreeSet<RowId> = findings.iter().map(|f| f.key).collect();
    if rule == ConsensusRule::Adjudicated {
        keys.extend(adjudicated.keys().copied());
    }
    let by_key: HashMap<RowId, &FindingReads> = findings.iter().map(|f| (f.key, f)).collect();
    let empty = Vec::new();
    keys.into_iter()
        .map(|key| {
            let reads = by_key.get(&key).map_or(&empty, |f| &f.reads);
            let grades: Vec<Severity> = reads.iter().filter_map(|r| r.grade).collect();
            let unanimous = grades
                .first()
                .filter(|g| grades.iter().all(|x| x == *g))
                .copied();
            let mut adjudicator = None;
            let mut adjudication_event = None;
            let mut point = None;
            let mut point_from = None;
            let (grade, decided_by) = match rule {
                ConsensusRule::Unanimous => (unanimous, "unanimous"),
                ConsensusRule::Majority => {
                    let mut counts = [0usize; 3];
                    for g in &grades {
                        counts[g.index()] += 1;
                    }
                    let best = (0..3).max_by_key(|&i| counts[i]).unwrap_or(0);
                    let g = (counts[best] * 2 > grades.len()).then(|| Severity::ALL[best]);
                    (g, "majority")
                }
                ConsensusRule::Median => {
                    let mut s = grades.clone();
                    s.sort();
                    (s.get(s.len().saturating_sub(1) / 2).copied(), "median")
                }
                ConsensusRule::Adjudicated => match adjudicated.get(&key) {
                    Some(a) => {
                        adjudicator = Some(a.reader_name.clone());
                        adjudication_event = Some(a.event_id);
                        if a.point.is_some() {
                            point = a.point;
                            point_from = Some(a.reader_name.clone());
                        }
                        match a.grade {
                            Some(g) => (Some(g), "adjudicated"),
                            None => (unanimous, "unanimous"),
                        }
                    }
                    None => (unanimous, "unanimous"),
                },
            };
            if point.is_none() {
                let placed: Vec<&StoredRead> = reads.iter().filter(|r| r.point.is_some()).collect();
                let agreeing: Vec<&StoredRead> = placed
                    .iter()
                    .copied()
                    .filter(|r| grade.is_some() && r.grade == grade)
                    .collect();
                let candidates = if agreeing.is_empty() {
                    &placed
                } else {
                    &agreeing
                };
                if let Some(r) = medoid(key.study, candidates, &placed, slices) {
                    point = r.point;
                    point_from = Some(r.reader_name.clone());
                }
            }
            ConsensusLabel {
                row_id: row_id(key),
                key,
                grade,
                point,
                rule,
                decided_by: if grade.is_some() {
                    decided_by.to_string()
                } else {
                    "unresolved".to_string()
                },
                reads: reads
                    .iter()
                    .map(|r| SourceRead {
                        reader: r.reader_name.clone(),
                        round: r.round_name.clone(),
                        event_id: r.event_id,
                        grade: r.grade,
                    })
                    .collect(),
                adjudicator,
                adjudication_event,
                point_from,
            }
        })
        .collect()
}

/// The candidate whose point has the smallest sum of distances to all placed points; the first
/// candidate when no distance can be measured.
fn medoid<'a>(
    study: StudyId,
    candidates: &[&'a StoredRead],
    placed: &[&StoredRead],
    slices: Option<&dyn SliceLookup>,
) -> Option<&'a StoredRead> {
    let first = candidates.first().copied()?;
    let Some(slices) = slices else {
        return Some(first);
    };
    let mut best: Option<(f64, &StoredRead)> = None;
    for c in candidates {
        let p = c.point?;
        let mut sum = 0.0;
        for o in placed {
            match slices.distance_mm(study, &p, &o.point?) {
                Ok(Some(d)) => sum += d,
                _ => return Some(first),
            }
        }
        if best.is_none_or(|(b, _)| sum < b) {
            best = Some((sum, c));
        }
    }
    best.map(|(_, r)| r).or(Some(first))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{ReaderId, RoundId};

    fn read(
        reader: &str,
        rid: i64,
        round: (i64, &str, RoundKind),
        key: RowId,
        g: Option<Severity>,
        ev: i64,
    ) -> StoredRead {
        StoredRead {
            event_id: ev,
            key,
            reader: ReaderId(rid),
            reader_name: reader.into(),
            round: RoundId(round.0),
            round_name: round.1.into(),
            round_kind: round.2,
            grade: g,
            point: None,
            recorded_at: 0,
            note: None,
        }
    }

    fn key(study: u64, c: Condition, l: Level) -> RowId {
        RowId::new(StudyId(study), c, l)
    }

    const R1: (i64, &str, RoundKind) = (1, "first", RoundKind::Blinded);
    const R2: (i64, &str, RoundKind) = (2, "second", RoundKind::Blinded);
    const ADJ: (i64, &str, RoundKind) = (3, "adj", RoundKind::Adjudication);

    use Severity::*;

    #[test]
    fn rules_decide_as_documented() {
        let k = key(1, Condition::SpinalCanalStenosis, Level::L4L5);
        let reads = vec![
            read("a", 1, R1, k, Some(NormalMild), 1),
            read("b", 2, R1, k, Some(Moderate), 2),
            read("c", 3, R1, k, Some(Moderate), 3),
            read("d", 4, R1, k, Some(Severe), 4),
        ];
        let f = blinded_findings(&reads, None, None);
        let none = HashMap::new();
        let g = |rule| consensus(&f, &none, rule, None)[0].grade;
        assert_eq!(g(ConsensusRule::Unanimous), None);
        // 2 of 4 is not more than half.
        assert_eq!(g(ConsensusRule::Majority), None);
        // Sorted N M M S: lower median is M.
        assert_eq!(g(ConsensusRule::Median), Some(Moderate));
        assert_eq!(g(ConsensusRule::Adjudicated), None);
        let adj = adjudications(&[read("boss", 9, ADJ, k, Some(Severe), 10)]);
        let l = &consensus(&f, &adj, ConsensusRule::Adjudicated, None)[0];
        assert_eq!(l.grade, Some(Severe));
        assert_eq!(l.adjudicator.as_deref(), Some("boss"));
        assert_eq!(l.decided_by, "adjudicated");
        assert_eq!(l.reads.len(), 4);
        // Three of four: a majority.
        let mut r3 = reads.clone();
        r3[0].grade = Some(Moderate);
        let f3 = blinded_findings(&r3, None, None);
        assert_eq!(
            consensus(&f3, &none, ConsensusRule::Majority, None)[0].grade,
            Some(Moderate)
        );
    }

    #[test]
    fn a_later_blinded_round_replaces_the_readers_first_read() {
        let k = key(1, Condition::LeftSubarticularStenosis, Level::L1L2);
        let reads = vec![
            read("a", 1, R1, k, Some(NormalMild), 1),
            read("a", 1, R2, k, Some(Severe), 5),
            read("b", 2, R1, k, Some(Severe), 2),
        ];
        let f = blinded_findings(&reads, None, None);
        assert_eq!(f[0].reads.len(), 2);
        assert_eq!(f[0].read_by("a").unwrap().grade, Some(Severe));
        let only_first = blinded_findings(&reads, Some("first"), None);
        assert_eq!(only_first[0].read_by("a").unwrap().grade, Some(NormalMild));
    }

    #[test]
    fn disagreements_put_severe_and_spinal_first() {
        let mk = |study, c, l, ga, gb| {
            let k = key(study, c, l);
            vec![
                read("a", 1, R1, k, Some(ga), 1),
                read("b", 2, R1, k, Some(gb), 2),
            ]
        };
        let mut reads = Vec::new();
        reads.extend(mk(
            1,
            Condition::LeftNeuralForaminalNarrowing,
            Level::L1L2,
            NormalMild,
            Moderate,
        ));
        reads.extend(mk(
            1,
            Condition::SpinalCanalStenosis,
            Level::L1L2,
            NormalMild,
            Moderate,
        ));
        reads.extend(mk(
            2,
            Condition::LeftSubarticularStenosis,
            Level::L3L4,
            Moderate,
            Severe,
        ));
        reads.extend(mk(
            3,
            Condition::SpinalCanalStenosis,
            Level::L2L3,
            NormalMild,
            Severe,
        ));
        reads.extend(mk(
            4,
            Condition::SpinalCanalStenosis,
            Level::L2L3,
            Severe,
            Severe,
        ));
        let f = blinded_findings(&reads, None, None);
        let d = disagreements(&f, DisagreementRule::GradesDiffer, None);
        let order: Vec<&str> = d.iter().map(|d| d.row_id.as_str()).collect();
        assert_eq!(
            order,
            [
                "3_spinal_canal_stenosis_l2_l3",
                "2_left_subarticular_stenosis_l3_l4",
                "1_spinal_canal_stenosis_l1_l2",
                "1_left_neural_foraminal_narrowing_l1_l2",
            ]
        );
        let two = disagreements(&f, DisagreementRule::TwoSteps, None);
        assert_eq!(two.len(), 1);
        assert_eq!(two[0].spread, 2);
    }

    #[test]
    fn decisions_csv_names_bad_lines() {
        let ok = b"row_id,grade,reason\n1_spinal_canal_stenosis_l4_l5,Severe,x\n2_spinal_canal_stenosis_l1_l2,,undecided\n";
        let d = parse_decisions(ok, "d.csv".as_ref()).unwrap();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].grade, Some(Severe));
        let bad = b"row_id,grade\n1_spinal_canal_stenosis_l4_l5,Severe\n1_spinal_l4_l5,Severe\n3_spinal_canal_stenosis_l4_l5,Very bad\n";
        let e = parse_decisions(bad, "d.csv".as_ref())
            .unwrap_err()
            .to_string();
        assert!(e.contains("d.csv: line 3: "), "{e}");
        assert!(
            e.contains("d.csv: line 4: ") && e.contains("Very bad"),
            "{e}"
        );
    }

    #[test]
    fn agreement_report_matches_core_on_the_spec_table() {
        // The spec's three readers as reads of 12 findings (study i, spinal L1/L2).
        let a = [0, 0, 1, 2, 1, 0, 2, 1, 0, 0, 1, 2];
        let b = [0, 1, 1, 2, 1, 0, 1, 1, 0, 0, 2, 2];
        let c = [0, 0, 1, 1, 2, 0, 2, 1, 1, 0, 1, 2];
        let mut reads = Vec::new();
        let mut ev = 0;
        for i in 0..12 {
            let k = key(i as u64 + 1, Condition::SpinalCanalStenosis, Level::L1L2);
            for (name, id, g) in [("A", 1, a[i]), ("B", 2, b[i]), ("C", 3, c[i])] {
                ev += 1;
                reads.push(read(name, id, R1, k, Severity::from_index(g), ev));
            }
        }
        let f = blinded_findings(&reads, None, None);
        let opts = AgreementOptions {
            resamples: 50,
            ..Default::default()
        };
        let rep = agreement_report(&f, None, &opts);
        let val = |g: &GroupAgreement, s: &str| {
            g.estimates
                .iter()
                .find(|e| e.statistic == s.parse::<Statistic>().unwrap())
                .unwrap()
                .value
                .unwrap()
        };
        assert!((val(&rep.overall, "fleiss_kappa") - 0.491765).abs() < 1e-5);
        assert!((val(&rep.overall, "krippendorff_alpha_ordinal") - 0.745665).abs() < 1e-5);
        assert!(
            (rep.pair_value("A", "B", "cohen_kappa_quadratic".parse().unwrap())
                .unwrap()
                - 0.795455)
                .abs()
                < 1e-5
        );
        assert_eq!(rep.pairs.len(), 3);
        assert_eq!(rep.by_condition[0].findings, 12);
        assert_eq!(rep.by_condition[1].findings, 0);
        assert_eq!(rep.studies, 12);
    }
    #[test]
    fn consensus_point_is_the_medoid_in_mm() {
        use crate::geometry::KnownSlices;
        use discus_data::geometry::SliceGeometry;
        let k = key(1, Condition::SpinalCanalStenosis, Level::L3L4);
        let mut reads = Vec::new();
        for (i, (name, x)) in [("a", 0.0), ("b", 10.0), ("c", 12.0)]
            .into_iter()
            .enumerate()
        {
            let mut r = read(name, i as i64, R1, k, Some(Moderate), i as i64 + 1);
            r.point = Some(Point {
                series: SeriesId(5),
                instance: 1,
                x,
                y: 20.0,
            });
            reads.push(r);
        }
        // A reader with another grade is not a candidate, though its point counts for distances.
        let mut d = read("d", 9, R1, k, Some(Severe), 9);
        d.point = Some(Point {
            series: SeriesId(5),
            instance: 1,
            x: 11.0,
            y: 20.0,
        });
        reads.push(d);
        let f = blinded_findings(&reads, None, None);
        let mut slices = KnownSlices::default();
        let g = SliceGeometry::new([0.0; 3], [1.0, 0.0, 0.0, 0.0, 1.0, 0.0], [1.0, 1.0], 64, 64)
            .unwrap();
        slices.insert(StudyId(1), 5, 1, g);
        let none = HashMap::new();
        let l = &consensus(&f, &none, ConsensusRule::Majority, Some(&slices))[0];
        assert_eq!(l.grade, Some(Moderate));
        // Sums of distances: a 10+12+11 = 33, b 10+2+1 = 13, c 12+2+1 = 15.
        assert_eq!(l.point_from.as_deref(), Some("b"));
        let l = &consensus(&f, &none, ConsensusRule::Majority, None)[0];
        assert_eq!(l.point_from.as_deref(), Some("a"));
    }
}

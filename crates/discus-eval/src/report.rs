//! The evaluation report: every number in `report.json`, and the same as a self-contained
//! `index.html` (the report layer of `discus-report`: one stylesheet, SVG plots drawn with plotters;
//! no scripts, no external resources).

use crate::sites::{Facet, StudyMeta};
use crate::stats::{bootstrap, slice_stats, Interval, SliceStats};
use crate::EvalError;
use discus_core::formats::{StudyLabels, SubmissionRow};
use discus_core::metric::{Joined, MetricError, MetricScore, Semantics, TERM_NAMES};
use discus_core::{Condition, Level, StudyId};
use discus_report::plot::{self, PlotError};
use discus_report::{figure, html, note, page, section, Markup, ReportFiles};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// How to evaluate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvalOptions {
    /// How a row's three values become probabilities (renormalised or clipped only).
    pub semantics: Semantics,
    /// Bootstrap resamples over studies (default 1,000).
    pub resamples: usize,
    /// Seed of the bootstrap (default 0).
    pub seed: u64,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            semantics: Semantics::Renormalize,
            resamples: 1000,
            seed: 0,
        }
    }
}

/// A score with its bootstrap interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scored {
    /// The score and its four terms.
    pub score: MetricScore,
    /// Their 95% percentile bootstrap intervals.
    pub interval: Interval,
}

/// One group of a facet (one site, one vendor, one field strength).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupScore {
    /// The group's value, e.g. the InstitutionName, the vendor or the field strength (`unknown` without metadata).
    pub name: String,
    /// Studies in the group.
    pub studies: usize,
    /// The group's score and interval.
    #[serde(flatten)]
    pub scored: Scored,
}

/// The groups of one facet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FacetReport {
    /// The facet the studies are grouped by.
    pub facet: Facet,
    /// The groups, sorted by name.
    pub groups: Vec<GroupScore>,
}

/// Everything `discus evaluate` computes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The version of discus that computed the report.
    pub discus_version: String,
    /// The options the report was computed with.
    pub options: EvalOptions,
    /// Labelled studies scored.
    pub studies: usize,
    /// The score of all studies, with its interval.
    pub overall: Scored,
    /// Statistics over all scored rows.
    pub all_rows: SliceStats,
    /// Statistics per condition, in [`Condition::ALL`] order.
    pub by_condition: Vec<SliceStats>,
    /// Statistics per level, in [`Level::ALL`] order.
    pub by_level: Vec<SliceStats>,
    /// Statistics per condition x level (`<condition>_<level>`), in train.csv column order.
    pub by_condition_level: Vec<SliceStats>,
    /// One report per facet (site, vendor, field strength).
    pub by_facet: Vec<FacetReport>,
    /// Studies without images to read metadata from (counted as "unknown").
    pub studies_without_metadata: usize,
    /// Metadata files that could not be read: study and cause.
    pub metadata_errors: Vec<String>,
    /// The dataset cards the report was derived from (set by the command that writes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<discus_core::governance::Provenance>,
}

/// Evaluates `submission` against `labels`. `meta` holds scanner metadata per study (studies not in
/// it are grouped as "unknown"); `lines` are the submission's file lines for error messages.
pub fn evaluate(
    labels: &[StudyLabels],
    submission: &[SubmissionRow],
    lines: Option<&[u64]>,
    meta: &HashMap<StudyId, StudyMeta>,
    metadata_errors: Vec<String>,
    options: EvalOptions,
) -> Result<Report, MetricError> {
    let joined = Joined::new(labels, submission, lines)?;
    let sem = options.semantics;
    let terms = joined.study_terms(sem);
    let all: Vec<usize> = (0..joined.studies.len()).collect();
    let (score, interval) = bootstrap(&terms, &all, options.resamples, options.seed);
    if let Some(k) = score.weights.iter().position(|&w| w <= 0.0) {
        return Err(MetricError::EmptyTerm {
            term: TERM_NAMES[k],
        });
    }

    // Slices: (name, filter) over (study index, column).
    type Keep = Box<dyn Fn(usize, discus_core::LabelColumn) -> bool + Sync + Send>;
    let mut specs: Vec<(u8, String, Keep)> = vec![(0, "all rows".into(), Box::new(|_, _| true))];
    for c in Condition::ALL {
        specs.push((
            1,
            c.key().into(),
            Box::new(move |_, col| col.condition == c),
        ));
    }
    for l in Level::ALL {
        specs.push((2, l.key().into(), Box::new(move |_, col| col.level == l)));
    }
    for c in Condition::ALL {
        for l in Level::ALL {
            specs.push((
                3,
                format!("{}_{}", c.key(), l.key()),
                Box::new(move |_, col| col.condition == c && col.level == l),
            ));
        }
    }
    let stats: Vec<(u8, Option<SliceStats>)> = specs
        .into_par_iter()
        .map(|(kind, name, keep)| (kind, slice_stats(name, &joined, sem, keep)))
        .collect();
    let mut buckets: [Vec<SliceStats>; 4] = Default::default();
    for (kind, s) in stats {
        if let Some(s) = s {
            buckets[kind as usize].push(s);
        }
    }
    let [mut all_rows, by_condition, by_level, by_condition_level] = buckets;

    let by_facet = Facet::ALL
        .iter()
        .enumerate()
        .map(|(f, &facet)| {
            let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
            for (i, s) in joined.studies.iter().enumerate() {
                groups.entry(facet.group(meta.get(s))).or_default().push(i);
            }
            let groups = groups
                .into_iter()
                .map(|(name, members)| {
                    let seed = options.seed ^ ((f as u64 + 1) << 56) ^ hash(&name);
                    let (score, interval) = bootstrap(&terms, &members, options.resamples, seed);
                    GroupScore {
                        name,
                        studies: members.len(),
                        scored: Scored { score, interval },
                    }
                })
                .collect();
            FacetReport { facet, groups }
        })
        .collect();
    Ok(Report {
        discus_version: env!("CARGO_PKG_VERSION").into(),
        options,
        studies: joined.studies.len(),
        overall: Scored { score, interval },
        all_rows: all_rows.remove(0),
        by_condition,
        by_level,
        by_condition_level,
        by_facet,
        studies_without_metadata: joined
            .studies
            .iter()
            .filter(|s| !meta.contains_key(s))
            .count(),
        metadata_errors,
        provenance: None,
    })
}

/// FNV-1a: a stable hash of a group name, to give each group its own bootstrap stream.
fn hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    })
}

/// Writes the report folder `dir` (created if needed): `report.json` and `index.html`, each
/// atomically (see [`discus_report::write_report`]).
pub fn write_report(dir: &Path, report: &Report) -> Result<ReportFiles, EvalError> {
    Ok(discus_report::write_report(
        dir,
        &render_html(report),
        report,
    )?)
}

fn num(v: f64) -> String {
    discus_report::num(v, 4)
}

fn opt(v: Option<f64>) -> String {
    discus_report::opt_num(v, 4)
}

fn ci(v: [f64; 2]) -> String {
    format!("[{}, {}]", num(v[0]), num(v[1]))
}

/// The report as one self-contained HTML page (the report layer's page, stylesheet and plots).
pub fn render_html(r: &Report) -> Markup {
    let o = &r.overall;
    let lede = html! {
        (r.studies) " studies; semantics " (r.options.semantics.to_string()) "; "
        (r.options.resamples) " bootstrap resamples over studies (seed " (r.options.seed)
        "); discus " (r.discus_version) "."
    };
    let cards: Vec<&discus_core::governance::DatasetCard> = r
        .provenance
        .as_ref()
        .map(|p| p.all_cards())
        .unwrap_or_default();
    let overall = html! {
        p { span.big { (num(o.score.score)) } " score (lower is better), 95% interval " (ci(o.interval.score)) }
        table {
            tr { th { "term" } th { "value" } th { "95% interval" } th { "weight" } }
            @for (k, name) in TERM_NAMES.iter().enumerate() {
                tr {
                    td { (name) }
                    td { (num(o.score.terms()[k])) }
                    td { (ci(o.interval.terms[k])) }
                    td { (o.score.weights[k]) }
                }
            }
        }
        div.plots {
            (figure(
                plot::histogram(&o.interval.samples, o.score.score, 30, "score", "resamples", (520, 300)),
                "Bootstrap distribution of the score; the red line is the point estimate.",
            ))
        }
    };
    let facets = html! {
        (note("Score and 95% bootstrap interval per group of studies. Groups come from the DICOM headers (one file per study); \"unknown\" = no images or the field is empty."))
        div.plots {
            @for f in &r.by_facet {
                (figure(facet_plot(f), &format!("Score by {}", f.facet.title())))
            }
        }
        @for f in &r.by_facet {
            h3 { (f.facet.title()) }
            table {
                tr {
                    th { "group" } th { "studies" } th { "score" } th { "95% interval" }
                    @for t in TERM_NAMES { th { (t) } }
                }
                @for g in &f.groups {
                    tr {
                        td { (g.name) } td { (g.studies) }
                        td { (num(g.scored.score.score)) } td { (ci(g.scored.interval.score)) }
                        @for v in g.scored.score.terms() { td { (num(v)) } }
                    }
                }
            }
        }
        @if r.studies_without_metadata > 0 || !r.metadata_errors.is_empty() {
            p.note {
                (r.studies_without_metadata) " studies without readable metadata; "
                (r.metadata_errors.len()) " unreadable files."
            }
            @if !r.metadata_errors.is_empty() {
                ul.note { @for e in r.metadata_errors.iter().take(20) { li { (e) } } }
            }
        }
    };
    let slices = html! {
        (note("Weighted log loss (weights 1, 2, 4 by true grade), one-vs-rest AUC, top-label expected calibration error (10 bins) over the scored rows."))
        (slice_table("condition", std::iter::once(&r.all_rows).chain(&r.by_condition)))
        (slice_table("level", r.by_level.iter()))
        (loss_grid(r))
        (slice_table("condition x level", r.by_condition_level.iter()))
    };
    let calibration = html! {
        (note("Reliability: accuracy of the most probable grade against its probability, in 10 bins; the diagonal is perfect calibration."))
        div.plots {
            @for s in std::iter::once(&r.all_rows).chain(&r.by_condition) {
                (figure(reliability_plot(s), &format!("{} (ECE {})", s.name, num(s.ece))))
            }
        }
    };
    let confusion = html! {
        div.plots {
            @for s in std::iter::once(&r.all_rows).chain(&r.by_condition) {
                figure {
                    table.cm {
                        tr { th { (s.name) " true \\ predicted" } th { "N/M" } th { "Mod" } th { "Sev" } }
                        @for (t, name) in ["Normal/Mild", "Moderate", "Severe"].iter().enumerate() {
                            tr { td { (name) } @for p in 0..3 { td { (s.confusion[t][p]) } } }
                        }
                    }
                }
            }
        }
    };
    page(
        "discus evaluation report",
        lede,
        Some(&cards),
        html! {
            (section("Score", overall))
            (section("By site and scanner", facets))
            (section("By condition, level, and condition x level", slices))
            (section("Calibration", calibration))
            (section("Confusion matrices at argmax", confusion))
        },
    )
}

fn slice_table<'a>(what: &str, rows: impl Iterator<Item = &'a SliceStats>) -> Markup {
    html! {
        table {
            tr {
                th { (what) } th { "rows" } th { "N/M / Mod / Sev" } th { "weighted log loss" }
                th { "AUC Moderate+" } th { "AUC Severe" } th { "ECE" }
            }
            @for s in rows {
                tr {
                    td { (s.name) } td { (s.rows) }
                    td { (s.support[0]) " / " (s.support[1]) " / " (s.support[2]) }
                    td { (num(s.weighted_log_loss)) }
                    td { (opt(s.auc_moderate_plus)) } td { (opt(s.auc_severe)) }
                    td { (num(s.ece)) }
                }
            }
        }
    }
}

/// Condition x level weighted log loss as a table shaded from the best (white) to the worst (red)
/// cell of this report, with the numbers in the cells.
fn loss_grid(r: &Report) -> Markup {
    let lookup: HashMap<&str, f64> = r
        .by_condition_level
        .iter()
        .map(|s| (s.name.as_str(), s.weighted_log_loss))
        .collect();
    let finite = lookup.values().copied().filter(|v| v.is_finite());
    let min = finite.clone().fold(f64::INFINITY, f64::min);
    let max = finite.fold(f64::NEG_INFINITY, f64::max);
    let span = (max - min).max(1e-9);
    html! {
        table {
            tr {
                th { "weighted log loss (white = best, red = worst cell)" }
                @for l in Level::ALL { th { (l.words()) } }
            }
            @for c in Condition::ALL {
                tr {
                    td { (c.words()) }
                    @for l in Level::ALL {
                        @match lookup.get(format!("{}_{}", c.key(), l.key()).as_str()) {
                            Some(&v) if v.is_finite() => {
                                @let a = 0.1 + 0.7 * ((v - min) / span).clamp(0.0, 1.0);
                                td style={ "background:rgba(214,39,40," (format!("{a:.2}")) ")" } { (num(v)) }
                            }
                            Some(&v) => td { (num(v)) },
                            None => td { "n/a" },
                        }
                    }
                }
            }
        }
    }
}

fn facet_plot(f: &FacetReport) -> Result<Markup, PlotError> {
    let points: Vec<plot::IntervalPoint> = f
        .groups
        .iter()
        .map(|g| plot::IntervalPoint {
            name: g.name.clone(),
            value: g.scored.score.score,
            interval: g.scored.interval.score,
        })
        .collect();
    plot::interval_plot(f.facet.title(), &points, "score", (360, 300))
}

fn reliability_plot(s: &SliceStats) -> Result<Markup, PlotError> {
    let pts: Vec<(f64, f64)> = s
        .reliability
        .iter()
        .filter(|b| b.count > 0)
        .map(|b| (b.confidence, b.accuracy))
        .collect();
    plot::line_plot(&plot::LinePlot {
        title: s.name.clone(),
        x_desc: "confidence".into(),
        y_desc: "accuracy".into(),
        x_range: (0.0, 1.0),
        y_range: (0.0, 1.0),
        diagonal: true,
        series: vec![(s.name.clone(), pts)],
        size: (260, 260),
    })
}

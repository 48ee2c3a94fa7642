//! The findings page of a study and the index page of a prediction run (discus-report's maud layer
//! and stylesheet: every value escaped, no script, no external resource).
//!
//! A study page (`<out>/<study>/index.html`) shows the study's notes, then a table of its 25
//! findings (grade, the three probabilities with bars, the point and where it came from, the
//! fallback, the stability when measured) and, per finding with a point, thumbnails: the slice with
//! the point drawn and, when explained, the localiser heat map and the grader's occlusion map. The
//! images are the PNG files next to the page (paths relative to it). The index page
//! (`<out>/index.html`) lists the studies with their moderate and severe findings and links each
//! study's page.

use crate::predict::{Finding, PointSource, StudyPrediction};
use crate::{io_err, ModelError};
use discus_core::governance::DatasetCard;
use discus_core::{Severity, StudyId};
use discus_report::{html, note, page, section, Markup, PreEscaped};
use std::collections::BTreeMap;
use std::path::Path;

/// The extra rules of the findings pages (on top of [`discus_report::STYLE`]).
const STYLE: &str = "\
td.imgs{white-space:nowrap}img.thumb{width:96px;height:auto;image-rendering:pixelated;border:1px solid #ccc;margin-right:4px}\
.g0{color:#1b7a1b}.g1{color:#a66300;font-weight:600}.g2{color:#b00020;font-weight:600}\
td.p span.bar{margin-left:4px}";

fn grade_class(g: Severity) -> &'static str {
    match g {
        Severity::NormalMild => "g0",
        Severity::Moderate => "g1",
        Severity::Severe => "g2",
    }
}

fn source_words(s: PointSource) -> &'static str {
    match s {
        PointSource::HeatMap => "localiser heat map",
        PointSource::CanalOffset => "canal point + learned offset",
        PointSource::None => "none (prior)",
    }
}

fn finding_row(f: &Finding, thumb: Option<&String>) -> Markup {
    html! {
        tr {
            td.t { (f.condition.words()) }
            td { (f.level.words()) }
            td class=(grade_class(f.grade)) { (f.grade.as_str()) }
            @for p in f.probabilities {
                td.p { (format!("{p:.3}")) span.bar style={ "width:" (format!("{:.0}", p * 60.0)) "px" } {} }
            }
            td.t {
                @if let Some(p) = &f.point {
                    "series " (p.series) ", instance " (p.instance) ", ("
                    (format!("{:.1}, {:.1}", p.x, p.y)) ")"
                    br;
                    small { (source_words(f.point_source)) }
                } @else {
                    small { (source_words(f.point_source)) }
                }
            }
            td.t { @if let Some(fb) = &f.fallback { span.warning { (fb) } } }
            td {
                @if let Some(s) = &f.stability {
                    (format!("{:.3}", s.std.iter().copied().fold(0.0, f64::max)))
                    br; small { "flips " (format!("{:.0} %", 100.0 * s.flip_rate)) }
                } @else { small { "n/a" } }
            }
            td.imgs {
                @if let Some(t) = thumb { img.thumb src=(t) alt="slice with the point"; }
                @if let Some(h) = &f.heatmap { img.thumb src=(h) alt="localiser heat map"; }
                @if let Some(e) = &f.explanation { img.thumb src=(e) alt="grader occlusion map"; }
            }
        }
    }
}

/// The findings page of a study. `thumbs`: the slice-with-point PNG of each finding by row id (paths
/// relative to the page); `model`: the model's name as shown.
pub fn study_page(
    prediction: &StudyPrediction,
    model: &str,
    thumbs: &BTreeMap<String, String>,
    cards: &[&DatasetCard],
) -> Markup {
    let severe = count(prediction, Severity::Severe);
    let moderate = count(prediction, Severity::Moderate);
    let body = html! {
        style { (PreEscaped(STYLE)) }
        p { a href="../index.html" { "all studies" } }
        @if !prediction.notes.is_empty() {
            (section("Notes", html! { ul { @for n in &prediction.notes { li { (n) } } } }))
        }
        (section("Findings", html! {
            p { (severe) " severe, " (moderate) " moderate of " (prediction.findings.len()) " findings." }
            table {
                tr {
                    th.t { "condition" } th { "level" } th { "grade" }
                    th { "P(normal/mild)" } th { "P(moderate)" } th { "P(severe)" }
                    th.t { "point" } th.t { "fallback" } th { "stability (max std)" } th.t { "slice, heat map, occlusion" }
                }
                @for f in &prediction.findings { (finding_row(f, thumbs.get(&f.row_id))) }
            }
            (note("Grades are the most probable of the three classes. The slice shows the point (green cross) \
                   the grader's crop was centred on; the heat map is the localiser's probability for this \
                   level; the occlusion map shows where hiding the image lowers the probability of the \
                   predicted grade most. Stability: the largest standard deviation of the three \
                   probabilities under small perturbations, and how often the grade flips."))
        }))
    };
    page(
        &format!("Study {}: findings", prediction.study),
        html! {
            "Diagnostic-assist findings predicted by the discus model \u{201c}" (model) "\u{201d}"
            @if !prediction.engine.is_empty() { " (run on " (prediction.engine) ")" }
            ". Not a diagnosis: for review by a reader."
        },
        Some(cards),
        body,
    )
}

fn count(p: &StudyPrediction, g: Severity) -> usize {
    p.findings.iter().filter(|f| f.grade == g).count()
}

/// One study on the index page.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexEntry {
    /// The study.
    pub study: StudyId,
    /// Its page, relative to the index (`None`: predicting it failed).
    pub href: Option<String>,
    /// Severe findings.
    pub severe: usize,
    /// Moderate findings.
    pub moderate: usize,
    /// Findings with a fallback.
    pub fallbacks: usize,
    /// The error, when predicting it failed.
    pub error: Option<String>,
}

impl IndexEntry {
    /// The entry of a predicted study whose page is `href`.
    pub fn of(p: &StudyPrediction, href: String) -> IndexEntry {
        IndexEntry {
            study: p.study,
            href: Some(href),
            severe: count(p, Severity::Severe),
            moderate: count(p, Severity::Moderate),
            fallbacks: p.findings.iter().filter(|f| f.fallback.is_some()).count(),
            error: None,
        }
    }
}

/// The index page of a prediction run.
pub fn index_page(entries: &[IndexEntry], model: &str, cards: &[&DatasetCard]) -> Markup {
    let body = html! {
        (section("Studies", html! {
            table {
                tr { th { "study" } th { "severe" } th { "moderate" } th { "fallbacks" } th.t { "" } }
                @for e in entries {
                    tr {
                        td { @if let Some(h) = &e.href { a href=(h) { (e.study) } } @else { (e.study) } }
                        td { (e.severe) } td { (e.moderate) } td { (e.fallbacks) }
                        td.t { @if let Some(err) = &e.error { span.error { (err) } } }
                    }
                }
            }
            p { a href="submission.csv" { "submission.csv" } " (all rows, LumbarDISC submission shape)" }
        }))
    };
    page(
        "Predicted findings",
        html! { (entries.len()) " studies predicted by the discus model \u{201c}" (model) "\u{201d}; the model's training data:" },
        Some(cards),
        body,
    )
}

/// Writes a page (atomically), creating its folder.
pub fn write_page(path: &Path, page: &Markup) -> Result<(), ModelError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    discus_core::fsio::atomic_write(path, page.0.as_bytes()).map_err(io_err(path))
}

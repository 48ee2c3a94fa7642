//! The evaluation report: every number in `report.json`, and the same as a self-contained
//! `index.html` (inline CSS and SVG plots drawn with plotters; no scripts, no external resources).

use crate::sites::{Facet, StudyMeta};
use crate::stats::{bootstrap, slice_stats, Interval, SliceStats};
use crate::EvalError;
use discus_core::formats::{StudyLabels, SubmissionRow};
use discus_core::fsio::atomic_write;
use discus_core::metric::{Joined, MetricError, MetricScore, Semantics, TERM_NAMES};
use discus_core::{Condition, Level, StudyId};
use plotters::prelude::*;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
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

/// Writes `report.json` and `index.html` into `dir` (created if needed), each atomically.
pub fn write_report(dir: &Path, report: &Report) -> Result<(), EvalError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| EvalError::Io { path, source }
    };
    let json_path = dir.join("report.json");
    let json = serde_json::to_vec_pretty(report).expect("a report serialises");
    atomic_write(&json_path, &json).map_err(io(&json_path))?;
    let html_path = dir.join("index.html");
    atomic_write(&html_path, render_html(report).as_bytes()).map_err(io(&html_path))?;
    Ok(())
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn num(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.4}")
    } else {
        "n/a".into()
    }
}

fn opt(v: Option<f64>) -> String {
    v.map(num).unwrap_or_else(|| "n/a".into())
}

fn ci(v: [f64; 2]) -> String {
    format!("[{}, {}]", num(v[0]), num(v[1]))
}

const CSS: &str = "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}\
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}\
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ddd;padding:.25em .6em;text-align:right}\
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}.big{font-size:2em;font-weight:600}\
.plots{display:flex;flex-wrap:wrap;gap:12px}.plots figure{margin:0}figcaption{font-size:.85em;color:#555}\
.note{color:#555;font-size:.9em}.cm td{min-width:3em}";

/// The report as one self-contained HTML page.
pub fn render_html(r: &Report) -> String {
    let mut h = String::new();
    let o = &r.overall;
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>discus evaluation report</title>\
         <style>{CSS}</style></head><body><h1>discus evaluation report</h1>\
         <p class=\"note\">{} studies; semantics {}; {} bootstrap resamples over studies (seed {}); discus {}.</p>\
         <p><span class=\"big\">{}</span> score (lower is better), 95% interval {}</p>",
        r.studies,
        r.options.semantics,
        r.options.resamples,
        r.options.seed,
        esc(&r.discus_version),
        num(o.score.score),
        ci(o.interval.score)
    );
    if let Some(p) = &r.provenance {
        for card in p.all_cards() {
            let uses: Vec<&str> = card
                .licence
                .permitted_uses
                .iter()
                .map(|u| u.as_str())
                .collect();
            let _ = write!(
                h,
                "<p class=\"note\">Data: {} ({}); licence: {}; permitted uses: {}.</p>",
                esc(&card.name),
                esc(&card.source),
                esc(&card.licence.name),
                esc(&uses.join(", "))
            );
            for c in card.citations() {
                let _ = write!(h, "<p class=\"note\">Cite: {}</p>", esc(&c));
            }
        }
    }
    h.push_str("<table><tr><th>term</th><th>value</th><th>95% interval</th><th>weight</th></tr>");
    for (k, name) in TERM_NAMES.iter().enumerate() {
        let _ = write!(
            h,
            "<tr><td>{name}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            num(o.score.terms()[k]),
            ci(o.interval.terms[k]),
            o.score.weights[k]
        );
    }
    h.push_str("</table><div class=\"plots\">");
    figure(
        &mut h,
        histogram(&o.interval.samples, o.score.score),
        "Bootstrap distribution of the score; the red line is the point estimate.",
    );
    h.push_str("</div>");

    // Breakdowns by scanner.
    h.push_str("<h2>By site and scanner</h2><p class=\"note\">Score and 95% bootstrap interval per group of studies. Groups come from the DICOM headers (one file per study); \"unknown\" = no images or the field is empty.</p><div class=\"plots\">");
    for f in &r.by_facet {
        figure(
            &mut h,
            facet_plot(f),
            &format!("Score by {}", f.facet.title()),
        );
    }
    h.push_str("</div>");
    for f in &r.by_facet {
        let _ = write!(h, "<h3>{}</h3><table><tr><th>group</th><th>studies</th><th>score</th><th>95% interval</th>", f.facet.title());
        for t in TERM_NAMES {
            let _ = write!(h, "<th>{t}</th>");
        }
        h.push_str("</tr>");
        for g in &f.groups {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
                esc(&g.name),
                g.studies,
                num(g.scored.score.score),
                ci(g.scored.interval.score)
            );
            for v in g.scored.score.terms() {
                let _ = write!(h, "<td>{}</td>", num(v));
            }
            h.push_str("</tr>");
        }
        h.push_str("</table>");
    }
    if r.studies_without_metadata > 0 || !r.metadata_errors.is_empty() {
        let _ = write!(
            h,
            "<p class=\"note\">{} studies without readable metadata; {} unreadable files.</p>",
            r.studies_without_metadata,
            r.metadata_errors.len()
        );
        if !r.metadata_errors.is_empty() {
            h.push_str("<ul class=\"note\">");
            for e in r.metadata_errors.iter().take(20) {
                let _ = write!(h, "<li>{}</li>", esc(e));
            }
            h.push_str("</ul>");
        }
    }

    // Slices.
    h.push_str("<h2>By condition, level, and condition x level</h2><p class=\"note\">Weighted log loss (weights 1, 2, 4 by true grade), one-vs-rest AUC, top-label expected calibration error (10 bins) over the scored rows.</p>");
    slice_table(
        &mut h,
        "condition",
        std::slice::from_ref(&r.all_rows)
            .iter()
            .chain(&r.by_condition),
    );
    slice_table(&mut h, "level", r.by_level.iter());
    heatmap(&mut h, r);
    slice_table(&mut h, "condition x level", r.by_condition_level.iter());

    h.push_str("<h2>Calibration</h2><p class=\"note\">Reliability: accuracy of the most probable grade against its probability, in 10 bins; the diagonal is perfect calibration.</p><div class=\"plots\">");
    for s in std::iter::once(&r.all_rows).chain(&r.by_condition) {
        figure(
            &mut h,
            reliability_plot(s),
            &format!("{} (ECE {})", esc(&s.name), num(s.ece)),
        );
    }
    h.push_str("</div><h2>Confusion matrices at argmax</h2><div class=\"plots\">");
    for s in std::iter::once(&r.all_rows).chain(&r.by_condition) {
        let _ = write!(h, "<figure><table class=\"cm\"><tr><th>{} true \\ predicted</th><th>N/M</th><th>Mod</th><th>Sev</th></tr>", esc(&s.name));
        for (t, name) in ["Normal/Mild", "Moderate", "Severe"].iter().enumerate() {
            let _ = write!(h, "<tr><td>{name}</td>");
            for p in 0..3 {
                let _ = write!(h, "<td>{}</td>", s.confusion[t][p]);
            }
            h.push_str("</tr>");
        }
        h.push_str("</table></figure>");
    }
    h.push_str("</div></body></html>\n");
    h
}

fn figure(h: &mut String, svg: Result<String, String>, caption: &str) {
    match svg {
        Ok(svg) => {
            let _ = write!(
                h,
                "<figure>{svg}<figcaption>{caption}</figcaption></figure>"
            );
        }
        Err(e) => {
            let _ = write!(h, "<p class=\"note\">plot not drawn: {}</p>", esc(&e));
        }
    }
}

fn slice_table<'a>(h: &mut String, what: &str, rows: impl Iterator<Item = &'a SliceStats>) {
    let _ = write!(h, "<table><tr><th>{what}</th><th>rows</th><th>N/M / Mod / Sev</th><th>weighted log loss</th><th>AUC Moderate+</th><th>AUC Severe</th><th>ECE</th></tr>");
    for s in rows {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{} / {} / {}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&s.name),
            s.rows,
            s.support[0],
            s.support[1],
            s.support[2],
            num(s.weighted_log_loss),
            opt(s.auc_moderate_plus),
            opt(s.auc_severe),
            num(s.ece)
        );
    }
    h.push_str("</table>");
}

/// Condition x level weighted log loss as a coloured table.
fn heatmap(h: &mut String, r: &Report) {
    let lookup: HashMap<&str, f64> = r
        .by_condition_level
        .iter()
        .map(|s| (s.name.as_str(), s.weighted_log_loss))
        .collect();
    // Shade from the best (white) to the worst (red) cell of this report.
    let finite = lookup.values().copied().filter(|v| v.is_finite());
    let min = finite.clone().fold(f64::INFINITY, f64::min);
    let max = finite.fold(f64::NEG_INFINITY, f64::max);
    let span = (max - min).max(1e-9);
    h.push_str("<table><tr><th>weighted log loss (white = best, red = worst cell)</th>");
    for l in Level::ALL {
        let _ = write!(h, "<th>{}</th>", l.words());
    }
    h.push_str("</tr>");
    for c in Condition::ALL {
        let _ = write!(h, "<tr><td>{}</td>", c.words());
        for l in Level::ALL {
            match lookup.get(format!("{}_{}", c.key(), l.key()).as_str()) {
                Some(&v) => {
                    let a = 0.1 + 0.7 * ((v - min) / span).clamp(0.0, 1.0);
                    let _ = write!(
                        h,
                        "<td style=\"background:rgba(214,39,40,{a:.2})\">{}</td>",
                        num(v)
                    );
                }
                None => h.push_str("<td>n/a</td>"),
            }
        }
        h.push_str("</tr>");
    }
    h.push_str("</table>");
}

type PlotResult = Result<String, String>;

fn perr<E: std::fmt::Debug>(e: E) -> String {
    format!("{e:?}")
}

fn histogram(samples: &[f64], point: f64) -> PlotResult {
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (520, 300)).into_drawing_area();
        root.fill(&WHITE).map_err(perr)?;
        let finite: Vec<f64> = samples.iter().copied().filter(|v| v.is_finite()).collect();
        let (mut lo, mut hi) = finite
            .iter()
            .fold((point, point), |(a, b), &v| (a.min(v), b.max(v)));
        if hi.is_nan() || lo.is_nan() || hi <= lo {
            lo -= 0.5;
            hi += 0.5;
        }
        let bins = 30usize;
        let width = (hi - lo) / bins as f64;
        let mut counts = vec![0u32; bins];
        for v in &finite {
            counts[(((v - lo) / width) as usize).min(bins - 1)] += 1;
        }
        let top = counts.iter().copied().max().unwrap_or(1).max(1) as f64;
        let mut chart = ChartBuilder::on(&root)
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(45)
            .build_cartesian_2d(lo..hi, 0.0..top * 1.1)
            .map_err(perr)?;
        chart
            .configure_mesh()
            .light_line_style(RGBColor(238, 238, 238))
            .y_label_formatter(&|v| format!("{v:.0}"))
            .x_desc("score")
            .y_desc("resamples")
            .draw()
            .map_err(perr)?;
        chart
            .draw_series(counts.iter().enumerate().map(|(i, &c)| {
                let x0 = lo + i as f64 * width;
                Rectangle::new(
                    [(x0, 0.0), (x0 + width, c as f64)],
                    RGBColor(31, 119, 180).filled(),
                )
            }))
            .map_err(perr)?;
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(point, 0.0), (point, top * 1.1)],
                RED.stroke_width(2),
            )))
            .map_err(perr)?;
        root.present().map_err(perr)?;
    }
    Ok(buf)
}

fn facet_plot(f: &FacetReport) -> PlotResult {
    let mut buf = String::new();
    {
        let n = f.groups.len().max(1);
        let root = SVGBackend::with_string(&mut buf, (360, 300)).into_drawing_area();
        root.fill(&WHITE).map_err(perr)?;
        let vals = f.groups.iter().flat_map(|g| {
            [
                g.scored.score.score,
                g.scored.interval.score[0],
                g.scored.interval.score[1],
            ]
        });
        let top = vals
            .filter(|v| v.is_finite())
            .fold(0.0f64, f64::max)
            .max(0.1)
            * 1.15;
        let names: Vec<String> = f.groups.iter().map(|g| g.name.clone()).collect();
        let mut chart = ChartBuilder::on(&root)
            .margin(10)
            .caption(f.facet.title(), ("sans-serif", 15))
            .x_label_area_size(35)
            .y_label_area_size(45)
            .build_cartesian_2d(-0.5..n as f64 - 0.5, 0.0..top)
            .map_err(perr)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&|x| {
                let i = x.round();
                if (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < names.len() {
                    let s = &names[i as usize];
                    s.chars().take(14).collect()
                } else {
                    String::new()
                }
            })
            .light_line_style(RGBColor(238, 238, 238))
            .y_desc("score")
            .draw()
            .map_err(perr)?;
        for (i, g) in f.groups.iter().enumerate() {
            let x = i as f64;
            let [a, b] = g.scored.interval.score;
            if a.is_finite() && b.is_finite() {
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        vec![(x, a), (x, b)],
                        BLACK.stroke_width(2),
                    )))
                    .map_err(perr)?;
            }
            if g.scored.score.score.is_finite() {
                chart
                    .draw_series(std::iter::once(Circle::new(
                        (x, g.scored.score.score),
                        5,
                        RGBColor(31, 119, 180).filled(),
                    )))
                    .map_err(perr)?;
            }
        }
        root.present().map_err(perr)?;
    }
    Ok(buf)
}

fn reliability_plot(s: &SliceStats) -> PlotResult {
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (260, 260)).into_drawing_area();
        root.fill(&WHITE).map_err(perr)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(10)
            .caption(&s.name, ("sans-serif", 13))
            .x_label_area_size(30)
            .y_label_area_size(35)
            .build_cartesian_2d(0.0..1.0, 0.0..1.0)
            .map_err(perr)?;
        chart
            .configure_mesh()
            .x_labels(6)
            .y_labels(6)
            .light_line_style(RGBColor(238, 238, 238))
            .x_desc("confidence")
            .y_desc("accuracy")
            .draw()
            .map_err(perr)?;
        chart
            .draw_series(LineSeries::new(
                vec![(0.0, 0.0), (1.0, 1.0)],
                BLACK.mix(0.4),
            ))
            .map_err(perr)?;
        let pts: Vec<(f64, f64)> = s
            .reliability
            .iter()
            .filter(|b| b.count > 0)
            .map(|b| (b.confidence, b.accuracy))
            .collect();
        let blue = RGBColor(31, 119, 180);
        chart
            .draw_series(LineSeries::new(pts.clone(), blue.stroke_width(2)))
            .map_err(perr)?;
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 3, blue.filled())))
            .map_err(perr)?;
        root.present().map_err(perr)?;
    }
    Ok(buf)
}

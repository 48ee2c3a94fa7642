//! # discus-report
//!
//! The one HTML report layer of discus. Every report (validation, evaluation, reader agreement,
//! dataset comparison) is a **folder** holding a self-contained `index.html` and a `report.json`
//! with every number of the page, written by [`write_report`].
//!
//! - Pages are [`maud`] templates: checked at compile time, and every interpolated value is
//!   HTML-escaped (`(value)` in a template), so a site called `Clinic <B> & Co` or a reader called
//!   `a<b>` can never inject markup. Nothing in discus escapes HTML by hand.
//! - [`STYLE`] is the one stylesheet, embedded in every page by [`page`]: no external resource,
//!   no script, no `url(..)`; the page opens from a file, offline, in any browser.
//! - [`page`] is the skeleton: title, a lede, the provenance box with the dataset cards
//!   ([`provenance`]), then the sections. [`section`], [`note`], [`count_table`] and [`figure`]
//!   are the parts the reports share.
//! - [`plot`] draws SVG with `plotters` (bar charts, histograms, interval plots, line and
//!   reliability plots, heat maps with a colour legend) and returns [`Markup`] to embed.
//!
//! A crate that writes templates with the re-exported `html!` needs `maud` among its own
//! dependencies too (the macro's expansion names the `maud` crate).
//!
//! ```
//! use discus_report::{html, page, section, write_report};
//! let body = section("Numbers", html! { p { "1 < 2 & 3 > 2" } });
//! let doc = page("A report", html! { "made by a doctest" }, None, body);
//! let s = doc.into_string();
//! assert!(s.starts_with("<!DOCTYPE html>") && s.contains("1 &lt; 2 &amp; 3 &gt; 2"));
//! ```

pub mod plot;

use discus_core::governance::DatasetCard;
pub use maud::{html, Markup, PreEscaped, Render, DOCTYPE};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The name of a report's page inside its folder.
pub const INDEX_HTML: &str = "index.html";
/// The name of a report's numbers inside its folder.
pub const REPORT_JSON: &str = "report.json";

/// The one stylesheet of every discus report (embedded in each page; no external resources).
pub const STYLE: &str = "\
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;color:#222}\
h1{font-size:1.6em;margin-bottom:.2em}\
h2{font-size:1.25em;border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.8em}\
h3{font-size:1.05em;margin:1.2em 0 .3em}\
table{border-collapse:collapse;margin:.5em 0 1.2em;display:block;overflow-x:auto;max-width:100%}\
td,th{border:1px solid #ddd;padding:.25em .6em;text-align:right;font-variant-numeric:tabular-nums;vertical-align:top;white-space:nowrap}\
td.t{white-space:normal}\
th{background:#f3f3f3;font-weight:600}\
td:first-child,th:first-child,td.t,th.t{text-align:left}\
table.kv th{text-align:left}table.kv td{text-align:left;white-space:normal}\
.bar{display:inline-block;height:10px;background:#1f77b4;vertical-align:middle}\
.big{font-size:2em;font-weight:600}\
.note,.lede{color:#555}.note{font-size:.9em}\
.card{border:1px solid #ccc;border-radius:4px;background:#fafafa;padding:.4em 1em;margin:1em 0}\
.card h2{border:0;margin:.3em 0;font-size:1.05em}\
.error{color:#b00020}.warning{color:#a66300}.info{color:#555}.ok{color:#1b7a1b}\
.flag{color:#b00020;font-weight:600}\
ul.flags li{margin:.2em 0}\
details{margin:.3em 0}summary{cursor:pointer}\
.plots{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}\
figure{margin:0 0 1em}figcaption{font-size:.85em;color:#555;max-width:560px}\
small{color:#666}.cm td{min-width:3em}\
footer{margin-top:3em;color:#777;font-size:.85em}";

/// A whole page: `<!DOCTYPE html>`, the title, [`STYLE`], a lede under the title, the provenance
/// box of `cards` when the report is about datasets (see [`provenance`]; `None`: no box), then
/// `body`.
pub fn page(title: &str, lede: Markup, cards: Option<&[&DatasetCard]>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                h1 { (title) }
                p.lede { (lede) }
                @if let Some(cards) = cards { (provenance(cards)) }
                (body)
                footer { "written by discus " (env!("CARGO_PKG_VERSION")) }
            }
        }
    }
}

/// The provenance box: each dataset card the report was derived from (name, source, licence,
/// permitted uses, citation, de-identification, sites), or a warning when there is none.
pub fn provenance(cards: &[&DatasetCard]) -> Markup {
    html! {
        div.card {
            h2 { "Dataset card" @if cards.len() > 1 { "s" } }
            @if cards.is_empty() {
                p.warning { "no dataset card (dataset.toml): licence and permitted uses unknown" }
            }
            @for c in cards {
                (card_table(c))
            }
        }
    }
}

/// One dataset card as a key/value table.
pub fn card_table(c: &DatasetCard) -> Markup {
    let deid = format!(
        "{}{}",
        if c.deidentification.applied {
            "applied"
        } else {
            "not applied"
        },
        c.deidentification
            .method
            .as_ref()
            .map(|m| format!(" ({m})"))
            .unwrap_or_default()
    );
    html! {
        table.kv {
            tr { th { "name" } td { (c.name) } }
            tr { th { "source" } td { (c.source) } }
            @if let Some(d) = &c.date { tr { th { "date" } td { (d) } } }
            tr { th { "licence" } td { (c.licence.name) } }
            tr { th { "permitted uses" } td { (c.licence.permitted_uses_text()) } }
            tr { th { "citation required" } td { @if c.licence.citation_required { "yes" } @else { "no" } } }
            tr { th { "de-identification" } td { (deid) } }
            @if !c.sites.is_empty() { tr { th { "sites" } td { (c.sites.join(", ")) } } }
            @for cite in c.citations() { tr { th { "cite" } td { (cite) } } }
        }
    }
}

/// A section: an `h2` heading and its content.
pub fn section(title: &str, body: Markup) -> Markup {
    html! {
        section {
            h2 { (title) }
            (body)
        }
    }
}

/// A paragraph of explanatory small print.
pub fn note(text: &str) -> Markup {
    html! { p.note { (text) } }
}

/// A figure: a plot (or, when it could not be drawn, a note saying why) and its caption.
pub fn figure(plot: Result<Markup, plot::PlotError>, caption: &str) -> Markup {
    html! {
        figure {
            @match plot {
                Ok(svg) => (svg),
                Err(e) => p.note { "plot not drawn: " (e) },
            }
            figcaption { (caption) }
        }
    }
}

/// A table of counts with a proportional bar per row, largest first (ties by name).
pub fn count_table(title: &str, counts: &BTreeMap<String, u64>) -> Markup {
    let total: u64 = counts.values().sum::<u64>().max(1);
    let mut rows: Vec<(&String, &u64)> = counts.iter().collect();
    rows.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    html! {
        h3 { (title) }
        table {
            tr { th {} th { "count" } th {} }
            @for (k, n) in rows {
                @let w = (*n as f64 / total as f64 * 200.0).round();
                tr {
                    td { (k) }
                    td { (n) }
                    td.t { span.bar style={ "width:" (w) "px" } {} }
                }
            }
        }
    }
}

/// `v` with `digits` decimals, or `n/a` when it is not finite.
pub fn num(v: f64, digits: usize) -> String {
    if v.is_finite() {
        format!("{v:.digits$}")
    } else {
        "n/a".into()
    }
}

/// [`num`] of an optional value (`n/a` when absent).
pub fn opt_num(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "n/a".into(), |v| num(v, digits))
}

/// What can go wrong writing a report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A file of the report could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The report's numbers could not be serialised.
    #[error("{path}: cannot serialise the report: {source}")]
    Json {
        /// The `report.json` that was to be written.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// A report destination that names a file, not a folder.
    #[error(
        "{path}: a report is a folder (it gets index.html and report.json); {reason}; \
         give a folder name instead, e.g. {suggestion}"
    )]
    NotAFolder {
        /// What was given.
        path: PathBuf,
        /// Why it is not taken as a folder.
        reason: String,
        /// The folder name to use instead.
        suggestion: PathBuf,
    },
}

/// The files of a written report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportFiles {
    /// The report folder.
    pub dir: PathBuf,
    /// `dir/index.html`.
    pub html: PathBuf,
    /// `dir/report.json`.
    pub json: PathBuf,
}

impl ReportFiles {
    /// The paths of a report in `dir` (nothing is written).
    pub fn in_dir(dir: &Path) -> ReportFiles {
        ReportFiles {
            dir: dir.to_path_buf(),
            html: dir.join(INDEX_HTML),
            json: dir.join(REPORT_JSON),
        }
    }
}

/// Checks that `dir` can be a report folder: it must not be an existing file, and its name must
/// not end in `.html`, `.htm` or `.json` (a name that says "file" is refused rather than silently
/// turned into a folder; the error suggests the folder name without the extension).
pub fn check_report_dir(dir: &Path) -> Result<(), ReportError> {
    let ext = dir
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    if let Some(ext) = ext.filter(|e| ["html", "htm", "json"].contains(&e.as_str())) {
        return Err(ReportError::NotAFolder {
            path: dir.to_path_buf(),
            reason: format!("the name ends in .{ext}"),
            suggestion: dir.with_extension(""),
        });
    }
    if dir.is_file() {
        return Err(ReportError::NotAFolder {
            path: dir.to_path_buf(),
            reason: "it is an existing file".into(),
            suggestion: dir.with_extension("report"),
        });
    }
    Ok(())
}

/// Writes a report folder: `dir/report.json` (the serialised `json`, pretty-printed) and then
/// `dir/index.html`, each atomically (a temporary name in `dir`, flushed, then renamed into place:
/// see [`discus_core::fsio::atomic_write`]), creating `dir` if needed. Other files in `dir` are
/// left alone. Refuses (before writing anything) a `dir` that [`check_report_dir`] refuses.
pub fn write_report(
    dir: &Path,
    html: &Markup,
    json: &impl Serialize,
) -> Result<ReportFiles, ReportError> {
    check_report_dir(dir)?;
    let files = ReportFiles::in_dir(dir);
    let bytes = serde_json::to_vec_pretty(json).map_err(|source| ReportError::Json {
        path: files.json.clone(),
        source,
    })?;
    let write = |path: &Path, bytes: &[u8]| {
        discus_core::fsio::atomic_write(path, bytes).map_err(|source| ReportError::Io {
            path: path.to_path_buf(),
            source,
        })
    };
    write(&files.json, &bytes)?;
    write(&files.html, html.0.as_bytes())?;
    Ok(files)
}

//! The validation report as a report folder (`index.html` + `report.json`, see
//! [`discus_report::write_report`]): the dataset card, the findings by kind and the dataset's shape.

use crate::validate::{FindingSeverity, Report};
use discus_core::{Condition, Level};
use discus_report::{count_table, figure, html, page, section, Markup, ReportError, ReportFiles};
use std::path::Path;

/// How many findings of one kind the page lists (all of them are in `report.json`).
pub const MAX_FINDINGS_PER_KIND: usize = 1000;

/// The report as one self-contained HTML page: dataset card, findings by kind, shape tables.
pub fn render_html(r: &Report) -> Markup {
    let lede = html! {
        (r.root.display().to_string()) ": " (r.scan.files) " files in " (r.scan.series)
        " series of " (r.shape.studies) " studies; " (r.scan.files_read) " headers read, "
        (r.scan.files_reused) " from the index, " (format!("{:.1}", r.scan.seconds)) " s."
    };
    let cards: Vec<&discus_core::governance::DatasetCard> = r.card.iter().collect();
    page(
        "discus validate",
        lede,
        Some(&cards),
        html! { (findings(r)) (shape(r)) },
    )
}

fn findings(r: &Report) -> Markup {
    let mut groups: Vec<_> = r.by_kind().into_iter().collect();
    groups.sort_by_key(|(k, _)| (k.severity(), *k));
    let body = html! {
        p {
            span.error { (r.count(FindingSeverity::Error)) " errors" } ", "
            span.warning { (r.count(FindingSeverity::Warning)) " warnings" } ", "
            span.info { (r.count(FindingSeverity::Info)) " info" }
        }
        @for (kind, list) in &groups {
            @let sev = kind.severity().as_str();
            details {
                summary class=(sev) { b { (sev) } " " (kind.as_str()) " (" (list.len()) ")" }
                table {
                    tr { th { "study" } th { "series" } th { "instance" } th.t { "message" } }
                    @for f in list.iter().take(MAX_FINDINGS_PER_KIND) {
                        tr {
                            td { @if let Some(v) = f.study { (v) } }
                            td { @if let Some(v) = f.series { (v) } }
                            td { @if let Some(v) = f.instance { (v) } }
                            td.t { (f.message) }
                        }
                    }
                    @if list.len() > MAX_FINDINGS_PER_KIND {
                        tr { td colspan="4" { "... and " (list.len() - MAX_FINDINGS_PER_KIND) " more (see report.json)" } }
                    }
                }
            }
        }
    };
    section("Findings", body)
}

fn shape(r: &Report) -> Markup {
    let s = &r.shape;
    let body = html! {
        (count_table("Series per type", &s.series_per_kind))
        (count_table("Studies by (Sagittal T1, Sagittal T2/STIR, Axial T2) series", &s.series_count_patterns))
        h3 { "Slices per series" }
        table {
            tr { th { "type" } th { "series" } th { "min" } th { "median" } th { "max" } }
            @for (k, m) in &s.slices_per_series {
                tr { td { (k) } td { (m.count) } td { (m.min) } td { (m.median) } td { (m.max) } }
            }
        }
        @for (k, m) in &s.matrix_sizes {
            (count_table(&format!("Matrix sizes (rows x columns), {k}"), m))
        }
        (count_table("Vendors (series)", &s.vendors))
        (count_table("Field strength, tesla (series)", &s.field_strengths))
        (count_table("Transfer syntaxes (files)", &s.transfer_syntaxes))
        @if !s.labels.is_empty() {
            h3 { "Labels: " (s.labelled_studies) " studies, " (s.points) " points" }
            p.note { "Normal/Mild / Moderate / Severe / missing" }
            table {
                tr {
                    th { "level" }
                    @for c in Condition::ALL { th { (c.words()) } }
                }
                @for lv in Level::ALL {
                    tr {
                        td { (lv.key()) }
                        @for c in Condition::ALL {
                            @if let Some(x) = s.labels.get(c.index() * 5 + lv.index()) {
                                td { (x.normal_mild) "/" (x.moderate) "/" (x.severe) "/" (x.missing) }
                            } @else {
                                td {}
                            }
                        }
                    }
                }
            }
            div.plots { (figure(grades_chart(r), "Share of each grade per condition over the five levels (missing grades left out).")) }
            @if let Some(share) = s.severe_spinal_share {
                p { "Studies with at least one Severe spinal level: " (format!("{:.1}", share * 100.0)) "%" }
            }
        }
    };
    section("Shape", body)
}

/// Grouped bars: per condition, the share of Normal/Mild, Moderate and Severe over its levels.
fn grades_chart(r: &Report) -> Result<Markup, discus_report::plot::PlotError> {
    let mut series: Vec<(String, Vec<f64>)> = ["Normal/Mild", "Moderate", "Severe"]
        .iter()
        .map(|g| (g.to_string(), Vec::new()))
        .collect();
    for c in Condition::ALL {
        let mut n = [0u64; 3];
        for x in r.shape.labels.iter().filter(|x| x.condition == c) {
            n[0] += x.normal_mild;
            n[1] += x.moderate;
            n[2] += x.severe;
        }
        let total = n.iter().sum::<u64>().max(1) as f64;
        for (k, v) in n.iter().enumerate() {
            series[k].1.push(100.0 * *v as f64 / total);
        }
    }
    discus_report::plot::bar_chart(&discus_report::plot::BarChart {
        title: "Grades per condition".into(),
        categories: Condition::ALL
            .iter()
            .map(|c| c.words().to_string())
            .collect(),
        series,
        y_desc: "% of graded levels".into(),
        size: (900, 320),
    })
}

/// Writes the report folder `dir`: `report.json` (the whole [`Report`]) and `index.html`.
pub fn write_report(dir: &Path, r: &Report) -> Result<ReportFiles, ReportError> {
    discus_report::write_report(dir, &render_html(r), r)
}

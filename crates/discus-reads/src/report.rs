//! The agreement report as a report folder (`index.html` + `report.json`, see
//! [`discus_report::write_report`]): a heat map of pairwise agreement drawn with plotters, and
//! tables per reader pair, condition and level with bootstrap intervals. No scripts, no external
//! files.

use crate::analysis::{AgreementReport, GroupAgreement};
use discus_core::agreement::{Estimate, Statistic};
use discus_report::plot::{self, ColourScale, PlotError};
use discus_report::{figure, html, page, section, Markup, ReportError, ReportFiles};
use std::path::Path;

fn num(v: Option<f64>) -> String {
    v.map_or("–".to_string(), |v| format!("{v:.3}"))
}

fn est(e: &Estimate) -> Markup {
    match (e.value, e.ci_low, e.ci_high) {
        (Some(v), Some(l), Some(h)) => {
            html! { (format!("{v:.3}")) " " small { "[" (format!("{l:.3}")) ", " (format!("{h:.3}")) "]" } }
        }
        (v, _, _) => html! { (num(v)) },
    }
}

/// The heat map of `statistic` between every reader pair (the diagonal is 1), as an SVG element
/// drawn with plotters: one cell per ordered pair with its value, coloured red at 0 or below,
/// yellow at 0.5 and green at 1 (grey: undefined), with a colour legend.
pub fn heat_map_svg(report: &AgreementReport, statistic: Statistic) -> Result<Markup, PlotError> {
    let values = report
        .readers
        .iter()
        .map(|a| {
            report
                .readers
                .iter()
                .map(|b| {
                    if a == b {
                        Some(1.0)
                    } else {
                        report.pair_value(a, b, statistic)
                    }
                })
                .collect()
        })
        .collect();
    plot::heat_map(&plot::HeatMap {
        rows: report.readers.clone(),
        columns: report.readers.clone(),
        values,
        scale: ColourScale::red_yellow_green(0.0, 1.0),
        digits: 3,
        legend: format!("{statistic}: red at 0 or below, yellow at 0.5, green at 1"),
        cell: 64,
    })
}

fn group_table(title: &str, groups: &[&GroupAgreement]) -> Markup {
    let Some(first) = groups.iter().find(|g| !g.estimates.is_empty()) else {
        return html! {};
    };
    section(
        title,
        html! {
            table {
                tr {
                    th {} th { "findings" }
                    @for e in &first.estimates { th { (e.statistic) } }
                }
                @for g in groups {
                    tr {
                        td { (g.group) } td { (g.findings) }
                        @for e in &g.estimates { td { (est(e)) } }
                    }
                }
            }
        },
    )
}

fn pairs(report: &AgreementReport) -> Markup {
    let Some(p0) = report.pairs.first() else {
        return html! {};
    };
    let grades = section(
        "Reader pairs: grades",
        html! {
            table {
                tr {
                    th { "pair" } th { "findings" }
                    @for e in &p0.estimates { th { (e.statistic) } }
                }
                @for p in &report.pairs {
                    tr {
                        td { (p.a) " / " (p.b) } td { (p.findings) }
                        @for e in &p.estimates { td { (est(e)) } }
                    }
                }
            }
        },
    );
    let points = report.pairs.iter().any(|p| p.points.is_some()).then(|| {
        section(
            &format!(
                "Reader pairs: where (points in patient space, tolerance {} mm)",
                report.options.tolerance_mm
            ),
            html! {
                table {
                    tr {
                        th { "pair" } th { "both placed" } th { "measured" } th { "unplaced" }
                        th { "median mm" } th { "mean mm" } th { "90th pct mm" } th { "within tolerance" }
                        th { "grade agreement within tolerance" }
                    }
                    @for p in &report.pairs {
                        @if let Some(pt) = &p.points {
                            tr {
                                td { (p.a) " / " (p.b) }
                                td { (pt.both_placed) } td { (pt.measured) } td { (pt.unplaced) }
                                td { (num(pt.median_mm)) } td { (num(pt.mean_mm)) } td { (num(pt.p90_mm)) }
                                td { (pt.within_tolerance) }
                                td {
                                    @for (i, e) in pt.grade_within_tolerance.iter().enumerate() {
                                        @if i > 0 { br; }
                                        (e.statistic) " " (est(e))
                                    }
                                }
                            }
                        }
                    }
                }
            },
        )
    });
    html! { (grades) @if let Some(p) = points { (p) } }
}

/// The whole page.
pub fn agreement_html(report: &AgreementReport, heat_statistic: Statistic) -> Markup {
    let lede = html! {
        (report.readers.len()) " readers (" (report.readers.join(", ")) "), " (report.findings)
        " findings in " (report.studies) " studies. Intervals: percentile bootstrap over studies, "
        (report.options.resamples) " resamples, seed " (report.options.seed) "."
    };
    page(
        "Reader agreement",
        lede,
        None,
        html! {
            (section(
                &format!("Pairwise agreement: {heat_statistic}"),
                figure(
                    heat_map_svg(report, heat_statistic),
                    &format!("{heat_statistic} between each pair of readers (row / column); the diagonal is 1."),
                ),
            ))
            (pairs(report))
            (group_table("All readers: overall", &[&report.overall]))
            (group_table("All readers: per condition", &report.by_condition.iter().collect::<Vec<_>>()))
            (group_table("All readers: per level", &report.by_level.iter().collect::<Vec<_>>()))
        },
    )
}

/// Writes the report folder `dir`: `report.json` (the whole [`AgreementReport`]) and `index.html`
/// with the heat map of `heat_statistic`.
pub fn write_report(
    dir: &Path,
    report: &AgreementReport,
    heat_statistic: Statistic,
) -> Result<ReportFiles, ReportError> {
    discus_report::write_report(dir, &agreement_html(report, heat_statistic), report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::{agreement_report, blinded_findings, AgreementOptions};
    use crate::store::{ReaderId, RoundId, RoundKind, StoredRead};
    use discus_core::RowId;
    use discus_core::{Condition, Level, Severity, StudyId};

    #[test]
    fn heat_map_has_a_cell_per_reader_pair_and_escapes_names() {
        let names = ["a<b>", "c&d", "e"];
        let mut reads = Vec::new();
        let mut ev = 0;
        for study in 1..=20u64 {
            for (i, n) in names.iter().enumerate() {
                ev += 1;
                reads.push(StoredRead {
                    event_id: ev,
                    key: RowId::new(StudyId(study), Condition::SpinalCanalStenosis, Level::L4L5),
                    reader: ReaderId(i as i64),
                    reader_name: n.to_string(),
                    round: RoundId(1),
                    round_name: "first".into(),
                    round_kind: RoundKind::Blinded,
                    grade: Severity::from_index(((study as usize) * (i + 1)) % 3),
                    point: None,
                    recorded_at: 0,
                    note: None,
                });
            }
        }
        let f = blinded_findings(&reads, None, None);
        let opts = AgreementOptions {
            resamples: 20,
            ..Default::default()
        };
        let rep = agreement_report(&f, None, &opts);
        let svg = heat_map_svg(&rep, "cohen_kappa_unweighted".parse().unwrap())
            .unwrap()
            .into_string();
        // The background, one cell per ordered reader pair, the legend's swatches.
        assert_eq!(
            svg.matches("<rect").count(),
            1 + 9 + discus_report::plot::LEGEND_STEPS
        );
        assert!(!svg.contains("a<b>") && svg.contains("a&lt;b&gt;") && svg.contains("c&amp;d"));
        let v = rep
            .pair_value("a<b>", "e", "cohen_kappa_unweighted".parse().unwrap())
            .unwrap();
        assert!(svg.contains(&format!("{v:.3}")));
        // 1 on the diagonal (3 cells) and at the legend's upper end; named readers label rows
        // and columns, escaped.
        assert_eq!(svg.matches("\n1.000\n").count(), 4, "{svg}");
        assert_eq!(svg.matches("c&amp;d").count(), 2);
        let html = agreement_html(&rep, "cohen_kappa_unweighted".parse().unwrap()).into_string();
        assert!(html.starts_with("<!DOCTYPE html>") && !html.contains("<script"));
        assert!(!html.contains("a<b>") && html.contains("a&lt;b&gt;"));
    }
}

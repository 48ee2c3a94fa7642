//! The agreement report as one self-contained HTML page: a heat map of pairwise agreement (inline
//! SVG), and tables per reader pair, condition and level with bootstrap intervals. No scripts, no
//! external files.

use crate::analysis::{AgreementReport, GroupAgreement};
use discus_core::agreement::Estimate;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn num(v: Option<f64>) -> String {
    v.map_or("–".to_string(), |v| format!("{v:.3}"))
}

fn est(e: &Estimate) -> String {
    match (e.value, e.ci_low, e.ci_high) {
        (Some(v), Some(l), Some(h)) => format!("{v:.3} <small>[{l:.3}, {h:.3}]</small>"),
        (v, _, _) => num(v),
    }
}

/// A colour from red (value <= 0) through yellow to green (value 1).
fn colour(v: f64) -> String {
    let t = v.clamp(0.0, 1.0);
    let (r, g) = if t < 0.5 {
        (220.0, 60.0 + 2.0 * t * 160.0)
    } else {
        (220.0 - (t - 0.5) * 2.0 * 170.0, 220.0)
    };
    format!("rgb({},{},80)", r as u8, g as u8)
}

/// The heat map of `statistic` between every reader pair (the diagonal is 1), as an SVG element.
pub fn heat_map_svg(report: &AgreementReport, statistic: &str) -> String {
    let n = report.readers.len();
    let cell = 64.0;
    let left = 120.0;
    let top = 70.0;
    let w = (left + cell * n as f64 + 20.0).max(480.0);
    let h = top + cell * n as f64 + 40.0;
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="pairwise {stat}">"#,
        stat = esc(statistic)
    );
    for (i, a) in report.readers.iter().enumerate() {
        let y = top + cell * i as f64;
        s += &format!(
            r#"<text x="{}" y="{}" text-anchor="end" font-size="13">{}</text>"#,
            left - 6.0,
            y + cell / 2.0 + 4.0,
            esc(a)
        );
        let x = left + cell * i as f64 + cell / 2.0;
        s += &format!(
            r#"<text x="{x}" y="{}" font-size="13" transform="rotate(-45 {x} {})">{}</text>"#,
            top - 6.0,
            top - 6.0,
            esc(a)
        );
        for (j, b) in report.readers.iter().enumerate() {
            let x = left + cell * j as f64;
            let v = if i == j {
                Some(1.0)
            } else {
                report.pair_value(a, b, statistic)
            };
            let fill = v.map_or("#ddd".to_string(), colour);
            s += &format!(
                r##"<rect x="{x}" y="{y}" width="{cell}" height="{cell}" fill="{fill}" stroke="#fff"><title>{} / {}: {}</title></rect>"##,
                esc(a),
                esc(b),
                num(v)
            );
            s += &format!(
                r#"<text x="{}" y="{}" text-anchor="middle" font-size="13">{}</text>"#,
                x + cell / 2.0,
                y + cell / 2.0 + 4.0,
                num(v)
            );
        }
    }
    s += &format!(
        r##"<text x="10" y="{}" font-size="12" fill="#555">colour: red at 0 or below, yellow at 0.5, green at 1; grey: undefined</text>"##,
        top + cell * n as f64 + 24.0
    );
    s += "</svg>";
    s
}

fn group_table(title: &str, groups: &[&GroupAgreement]) -> String {
    let Some(first) = groups.iter().find(|g| !g.estimates.is_empty()) else {
        return String::new();
    };
    let mut s = format!(
        "<h2>{}</h2><table><tr><th></th><th>findings</th>",
        esc(title)
    );
    for e in &first.estimates {
        s += &format!("<th>{}</th>", esc(&e.statistic));
    }
    s += "</tr>";
    for g in groups {
        s += &format!("<tr><td>{}</td><td>{}</td>", esc(&g.group), g.findings);
        for e in &g.estimates {
            s += &format!("<td>{}</td>", est(e));
        }
        s += "</tr>";
    }
    s + "</table>"
}

/// The whole page.
pub fn agreement_html(report: &AgreementReport, heat_statistic: &str) -> String {
    let mut body = format!(
        "<h1>Reader agreement</h1><p>{} readers ({}), {} findings in {} studies. \
         Intervals: percentile bootstrap over studies, {} resamples, seed {}.</p>",
        report.readers.len(),
        esc(&report.readers.join(", ")),
        report.findings,
        report.studies,
        report.options.resamples,
        report.options.seed
    );
    body += &format!(
        "<h2>Pairwise agreement: {}</h2>{}",
        esc(heat_statistic),
        heat_map_svg(report, heat_statistic)
    );
    // Pairs.
    if let Some(p0) = report.pairs.first() {
        body += "<h2>Reader pairs: grades</h2><table><tr><th>pair</th><th>findings</th>";
        for e in &p0.estimates {
            body += &format!("<th>{}</th>", esc(&e.statistic));
        }
        body += "</tr>";
        for p in &report.pairs {
            body += &format!(
                "<tr><td>{} / {}</td><td>{}</td>",
                esc(&p.a),
                esc(&p.b),
                p.findings
            );
            for e in &p.estimates {
                body += &format!("<td>{}</td>", est(e));
            }
            body += "</tr>";
        }
        body += "</table>";
        if report.pairs.iter().any(|p| p.points.is_some()) {
            body += &format!(
                "<h2>Reader pairs: where (points in patient space, tolerance {} mm)</h2><table>\
                 <tr><th>pair</th><th>both placed</th><th>measured</th><th>unplaced</th>\
                 <th>median mm</th><th>mean mm</th><th>90th pct mm</th><th>within tolerance</th>\
                 <th>grade agreement within tolerance</th></tr>",
                report.options.tolerance_mm
            );
            for p in &report.pairs {
                let Some(pt) = &p.points else { continue };
                let within = pt
                    .grade_within_tolerance
                    .iter()
                    .map(|e| format!("{} {}", esc(&e.statistic), est(e)))
                    .collect::<Vec<_>>()
                    .join("<br>");
                body += &format!(
                    "<tr><td>{} / {}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&p.a),
                    esc(&p.b),
                    pt.both_placed,
                    pt.measured,
                    pt.unplaced,
                    num(pt.median_mm),
                    num(pt.mean_mm),
                    num(pt.p90_mm),
                    pt.within_tolerance,
                    within
                );
            }
            body += "</table>";
        }
    }
    body += &group_table("All readers: overall", &[&report.overall]);
    body += &group_table(
        "All readers: per condition",
        &report.by_condition.iter().collect::<Vec<_>>(),
    );
    body += &group_table(
        "All readers: per level",
        &report.by_level.iter().collect::<Vec<_>>(),
    );
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>discus reader agreement</title>\
         <style>body{{font-family:sans-serif;margin:2em;max-width:1400px}}table{{border-collapse:collapse;margin:1em 0}}\
         td,th{{border:1px solid #ccc;padding:3px 6px;font-size:13px;text-align:right;white-space:nowrap}}th{{background:#f4f4f4}}\
         td:first-child{{text-align:left}}small{{color:#666}}</style></head><body>{body}</body></html>"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::{agreement_report, blinded_findings, AgreementOptions};
    use crate::store::{FindingKey, ReaderId, RoundId, RoundKind, StoredRead};
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
                    key: FindingKey {
                        study: StudyId(study),
                        condition: Condition::SpinalCanalStenosis,
                        level: Level::L4L5,
                    },
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
        let svg = heat_map_svg(&rep, "cohen_kappa_unweighted");
        assert_eq!(svg.matches("<rect").count(), 9);
        assert!(!svg.contains("a<b>") && svg.contains("a&lt;b&gt;") && svg.contains("c&amp;d"));
        let v = rep
            .pair_value("a<b>", "e", "cohen_kappa_unweighted")
            .unwrap();
        assert!(svg.contains(&format!("{v:.3}")));
        let html = agreement_html(&rep, "cohen_kappa_unweighted");
        assert!(html.starts_with("<!DOCTYPE html>") && !html.contains("<script"));
    }
}

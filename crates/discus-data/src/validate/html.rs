//! The HTML report.

use super::*;

// ---------------------------------------------------------------------------------------------
// HTML

pub(crate) fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub(crate) fn count_table(title: &str, m: &BTreeMap<String, u64>) -> String {
    let total: u64 = m.values().sum::<u64>().max(1);
    let mut rows: Vec<(&String, &u64)> = m.iter().collect();
    rows.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let mut h = format!(
        "<h3>{}</h3><table><tr><th></th><th>count</th><th></th></tr>",
        esc(title)
    );
    for (k, n) in rows {
        let w = (*n as f64 / total as f64 * 200.0).round();
        h += &format!(
            "<tr><td>{}</td><td class=n>{n}</td><td><span class=bar style=\"width:{w}px\"></span></td></tr>",
            esc(k)
        );
    }
    h + "</table>"
}

/// A self-contained HTML page (no external resources) with the shape tables and the findings.
pub fn render_html(r: &Report) -> String {
    let s = &r.shape;
    let mut h = String::from(
        "<!doctype html><html><head><meta charset=utf-8><title>discus validate</title><style>\
         body{font:14px system-ui,sans-serif;margin:2em;max-width:1100px}\
         table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}\
         td.n{text-align:right;font-variant-numeric:tabular-nums}.bar{display:inline-block;height:10px;background:#4a7bd0}\
         .error{color:#b00020}.warning{color:#a66300}.info{color:#555}details{margin:.3em 0}\
         </style></head><body>",
    );
    h += &format!(
        "<h1>discus validate</h1><p>{}: {} files in {} series of {} studies; {} headers read, {} from the index, {:.1} s.</p>",
        esc(&r.root.display().to_string()),
        r.scan.files,
        r.scan.series,
        s.studies,
        r.scan.files_read,
        r.scan.files_reused,
        r.scan.seconds
    );
    h += "<h2>Dataset card</h2>";
    match &r.card {
        None => {
            h += "<p class=warning>no dataset.toml: licence and permitted uses unknown</p>";
        }
        Some(c) => {
            let uses: Vec<&str> = c
                .licence
                .permitted_uses
                .iter()
                .map(|u| u.as_str())
                .collect();
            let mut rows = vec![
                ("name", c.name.clone()),
                ("source", c.source.clone()),
                ("licence", c.licence.name.clone()),
                ("permitted uses", uses.join(", ")),
                (
                    "citation required",
                    if c.licence.citation_required {
                        "yes"
                    } else {
                        "no"
                    }
                    .to_string(),
                ),
                (
                    "de-identification",
                    format!(
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
                    ),
                ),
            ];
            if !c.sites.is_empty() {
                rows.push(("sites", c.sites.join(", ")));
            }
            for cite in c.citations() {
                rows.push(("cite", cite));
            }
            h += "<table>";
            for (k, v) in rows {
                h += &format!("<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(&v));
            }
            h += "</table>";
        }
    }
    h += &format!(
        "<h2>Findings</h2><p><span class=error>{} errors</span>, <span class=warning>{} warnings</span>, <span class=info>{} info</span></p>",
        r.count(FindingSeverity::Error),
        r.count(FindingSeverity::Warning),
        r.count(FindingSeverity::Info)
    );
    let mut groups: Vec<_> = r.by_kind().into_iter().collect();
    groups.sort_by_key(|(k, _)| (k.severity(), *k));
    for (kind, list) in groups {
        h += &format!(
            "<details><summary class={sev}><b>{sev}</b> {kind} ({n})</summary><table><tr><th>study</th><th>series</th><th>instance</th><th>message</th></tr>",
            sev = kind.severity().as_str(),
            n = list.len()
        );
        for f in list.iter().take(1000) {
            let o = |v: Option<String>| v.unwrap_or_default();
            h += &format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                o(f.study.map(|x| x.to_string())),
                o(f.series.map(|x| x.to_string())),
                o(f.instance.map(|x| x.to_string())),
                esc(&f.message)
            );
        }
        if list.len() > 1000 {
            h += &format!(
                "<tr><td colspan=4>... and {} more (see the JSON report)</td></tr>",
                list.len() - 1000
            );
        }
        h += "</table></details>";
    }
    h += "<h2>Shape</h2>";
    h += &count_table("Series per type", &s.series_per_kind);
    h += &count_table(
        "Studies by (Sagittal T1, Sagittal T2/STIR, Axial T2) series",
        &s.series_count_patterns,
    );
    h += "<h3>Slices per series</h3><table><tr><th>type</th><th>series</th><th>min</th><th>median</th><th>max</th></tr>";
    for (k, m) in &s.slices_per_series {
        h += &format!(
            "<tr><td>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td></tr>",
            esc(k),
            m.count,
            m.min,
            m.median,
            m.max
        );
    }
    h += "</table>";
    for (k, m) in &s.matrix_sizes {
        h += &count_table(&format!("Matrix sizes (rows x columns), {k}"), m);
    }
    h += &count_table("Vendors (series)", &s.vendors);
    h += &count_table("Field strength, tesla (series)", &s.field_strengths);
    h += &count_table("Transfer syntaxes (files)", &s.transfer_syntaxes);
    if !s.labels.is_empty() {
        h += &format!(
            "<h3>Labels: {} studies, {} points</h3><p>Normal/Mild / Moderate / Severe / missing</p><table><tr><th>level</th>",
            s.labelled_studies, s.points
        );
        for c in Condition::ALL {
            h += &format!("<th>{}</th>", c.words());
        }
        h += "</tr>";
        for lv in Level::ALL {
            h += &format!("<tr><td>{}</td>", lv.key());
            for c in Condition::ALL {
                let x = &s.labels[c.index() * 5 + lv.index()];
                h += &format!(
                    "<td class=n>{}/{}/{}/{}</td>",
                    x.normal_mild, x.moderate, x.severe, x.missing
                );
            }
            h += "</tr>";
        }
        h += "</table>";
        if let Some(share) = s.severe_spinal_share {
            h += &format!(
                "<p>Studies with at least one Severe spinal level: {:.1}%</p>",
                share * 100.0
            );
        }
    }
    h + "</body></html>\n"
}

//! The text summary of a validation, as `discus validate` prints it.

use super::{FindingKind, FindingSeverity, Report};
use std::io::Write;

fn join_counts<'a>(m: impl IntoIterator<Item = (&'a String, &'a u64)>) -> String {
    let v: Vec<String> = m.into_iter().map(|(k, n)| format!("{k} {n}")).collect();
    if v.is_empty() {
        "-".into()
    } else {
        v.join(", ")
    }
}

/// The "dataset card" section: what `ROOT/dataset.toml` says about source, licence and uses.
fn write_card(r: &Report, w: &mut dyn Write) -> std::io::Result<()> {
    use discus_core::governance::CARD_FILE;
    let Some(card) = &r.card else {
        if r.findings
            .iter()
            .any(|f| f.kind == FindingKind::BadDatasetCard)
        {
            writeln!(
                w,
                "dataset card: unreadable {CARD_FILE} (see the bad_dataset_card finding)"
            )?;
        } else {
            writeln!(
                w,
                "warning: no {CARD_FILE}: licence and permitted uses unknown"
            )?;
        }
        return Ok(());
    };
    writeln!(w, "dataset card ({CARD_FILE})")?;
    writeln!(w, "  name:            {}", card.name)?;
    writeln!(w, "  source:          {}", card.source)?;
    if let Some(date) = &card.date {
        writeln!(w, "  date:            {date}")?;
    }
    if !card.sites.is_empty() {
        writeln!(w, "  sites:           {}", card.sites.join(", "))?;
    }
    writeln!(w, "  licence:         {}", card.licence.name)?;
    if let Some(url) = &card.licence.url {
        writeln!(w, "  licence url:     {url}")?;
    }
    writeln!(
        w,
        "  permitted uses:  {}",
        card.licence.permitted_uses_text()
    )?;
    writeln!(
        w,
        "  citation required: {}",
        if card.licence.citation_required {
            "yes"
        } else {
            "no"
        }
    )?;
    for c in card.citations() {
        writeln!(w, "    cite: {c}")?;
    }
    let d = &card.deidentification;
    writeln!(
        w,
        "  de-identification: {}{}",
        if d.applied { "applied" } else { "not applied" },
        d.method
            .as_ref()
            .map(|m| format!(" ({m})"))
            .unwrap_or_default()
    )?;
    if !card.derived_from.is_empty() {
        let names: Vec<&str> = card.derived_from.iter().map(|c| c.name.as_str()).collect();
        writeln!(w, "  derived from:    {}", names.join(", "))?;
    }
    Ok(())
}

/// Writes the text summary of a validation: scan counts, the dataset card, the shape and up to
/// `show` findings of each kind.
pub fn write_text(r: &Report, show: usize, w: &mut dyn Write) -> std::io::Result<()> {
    let s = &r.shape;
    let scan = &r.scan;
    writeln!(w, "dataset {}", r.root.display())?;
    writeln!(
        w,
        "  {} files in {} series of {} studies; {} headers read, {} from the index ({}), {:.1} s",
        scan.files,
        scan.series,
        s.studies,
        scan.files_read,
        scan.files_reused,
        r.index.display(),
        scan.seconds
    )?;
    write_card(r, w)?;
    writeln!(w, "shape")?;
    writeln!(
        w,
        "  series per type:    {}",
        join_counts(&s.series_per_kind)
    )?;
    writeln!(
        w,
        "  series per study (T1,T2,Ax): {}",
        join_counts(&s.series_count_patterns)
    )?;
    let slices: Vec<String> = s
        .slices_per_series
        .iter()
        .map(|(k, m)| format!("{k} {}/{}/{}", m.min, m.median, m.max))
        .collect();
    writeln!(
        w,
        "  slices per series (min/median/max): {}",
        slices.join(", ")
    )?;
    for (kind, sizes) in &s.matrix_sizes {
        let mut v: Vec<(&String, &u64)> = sizes.iter().collect();
        v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        writeln!(
            w,
            "  matrix sizes (rows x columns), {kind}: {}",
            join_counts(v.into_iter().take(8))
        )?;
    }
    writeln!(w, "  vendors:            {}", join_counts(&s.vendors))?;
    writeln!(
        w,
        "  field strengths (T): {}",
        join_counts(&s.field_strengths)
    )?;
    writeln!(
        w,
        "  transfer syntaxes:  {}",
        join_counts(&s.transfer_syntaxes)
    )?;
    if !s.labels.is_empty() {
        writeln!(
            w,
            "  labels: {} studies, {} points; Normal/Mild / Moderate / Severe / missing:",
            s.labelled_studies, s.points
        )?;
        writeln!(
            w,
            "    {:<6} {:>17} {:>17} {:>17} {:>17} {:>17}",
            "level", "spinal", "L foraminal", "R foraminal", "L subarticular", "R subarticular"
        )?;
        for lv in discus_core::Level::ALL {
            let cells: Vec<String> = discus_core::Condition::ALL
                .iter()
                .map(|c| {
                    let x = &s.labels[c.index() * 5 + lv.index()];
                    format!(
                        "{}/{}/{}/{}",
                        x.normal_mild, x.moderate, x.severe, x.missing
                    )
                })
                .collect();
            writeln!(
                w,
                "    {:<6} {:>17} {:>17} {:>17} {:>17} {:>17}",
                lv.key(),
                cells[0],
                cells[1],
                cells[2],
                cells[3],
                cells[4]
            )?;
        }
        if let Some(share) = s.severe_spinal_share {
            writeln!(
                w,
                "  studies with a Severe spinal level: {:.1}%",
                share * 100.0
            )?;
        }
    }
    writeln!(
        w,
        "findings: {} errors, {} warnings, {} info",
        r.count(FindingSeverity::Error),
        r.count(FindingSeverity::Warning),
        r.count(FindingSeverity::Info)
    )?;
    let mut groups: Vec<_> = r.by_kind().into_iter().collect();
    groups.sort_by_key(|(k, _)| (k.severity(), *k));
    for (kind, list) in groups {
        writeln!(
            w,
            "  {:<7} {} ({})",
            kind.severity().as_str(),
            kind,
            list.len()
        )?;
        for f in list.iter().take(show) {
            writeln!(w, "    {}", f.message)?;
        }
        if list.len() > show {
            writeln!(w, "    ... and {} more", list.len() - show)?;
        }
    }
    Ok(())
}

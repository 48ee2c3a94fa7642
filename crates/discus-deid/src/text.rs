//! The plain-text reports of `discus deid` and `discus deid verify`, written to any [`Write`]:
//! the summary lines to `out`, the per-file problems (errors, duplicates, flags, a new key) to
//! `err` (the CLI passes standard output and standard error).

use crate::run::RunReport;
use crate::verify::VerifyReport;
use crate::Flag;
use std::io::{self, Write};

/// Why a flagged output needs a look at its pixels, in words.
pub fn flag_reason(flag: &Flag) -> &'static str {
    match flag {
        Flag::BurnedInAnnotation => "burned-in annotation: the pixels may show identifying text",
        Flag::SecondaryCapture => "secondary capture: screenshots often show identifying text",
    }
}

/// A de-identification run: a new key, failures, duplicates and flagged files to `err`; the
/// counts, the layout's rewritten CSVs, the map and the card to `out`.
pub fn write_run_text(r: &RunReport, out: &mut impl Write, err: &mut impl Write) -> io::Result<()> {
    if r.key_created {
        writeln!(
            err,
            "created a new key in {} (keep it at the site: it re-creates the same UIDs and date shifts)",
            r.key_path.display()
        )?;
    }
    for f in &r.failed {
        writeln!(err, "error: {}: {}", f.input.display(), f.cause)?;
    }
    for d in &r.duplicates {
        writeln!(
            err,
            "warning: {}: same SOP Instance UID as another input (written once, as {})",
            d.input.display(),
            d.output.display()
        )?;
    }
    for f in &r.flagged {
        let why: Vec<&str> = f.flags.iter().map(flag_reason).collect();
        writeln!(
            err,
            "flagged: {} -> {}: {} (check the pixels before release)",
            f.input.display(),
            f.output.display(),
            why.join("; ")
        )?;
    }
    writeln!(
        out,
        "{} files: {} de-identified, {} already done (resumed), {} duplicates, {} failed, {} flagged for pixel review",
        r.files_seen,
        r.written,
        r.resumed,
        r.duplicates.len(),
        r.failed.len(),
        r.flagged.len()
    )?;
    if r.layout {
        let rewritten = if r.csv_rewritten.is_empty() {
            "no CSV files".to_string()
        } else {
            r.csv_rewritten
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        writeln!(
            out,
            "LumbarDISC layout kept: new ids from the new UIDs; rewritten: {rewritten}"
        )?;
        for p in &r.not_copied {
            writeln!(err, "not copied: {} (not part of the layout)", p.display())?;
        }
    }
    writeln!(
        out,
        "map (site only): {}\ncard: {}",
        r.map_path.display(),
        r.card_path.display()
    )
}

/// A verification: every leak and unreadable output, then the counts.
pub fn write_verify_text(r: &VerifyReport, out: &mut impl Write) -> io::Result<()> {
    for h in &r.hits {
        writeln!(
            out,
            "leak: {} at byte {} in {}: value of {} ({})",
            h.file.display(),
            h.offset,
            h.element,
            h.source,
            h.spelling
        )?;
    }
    for (f, e) in &r.outputs_unreadable {
        writeln!(out, "unreadable: {}: {e}", f.display())?;
    }
    writeln!(
        out,
        "{} output files scanned against {} inputs ({} spellings): {} hits, {} unreadable outputs",
        r.outputs_scanned,
        r.inputs_read,
        r.patterns,
        r.hits.len(),
        r.outputs_unreadable.len()
    )
}

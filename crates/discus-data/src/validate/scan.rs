//! Listing the dataset and scanning one series: headers, stacks, per-series findings.

use super::*;

// ---------------------------------------------------------------------------------------------
// Listing

pub(crate) struct SeriesDir {
    pub(crate) split: &'static str,
    pub(crate) study: u64,
    pub(crate) series: u64,
    pub(crate) path: PathBuf,
    pub(crate) n_files: u64,
}

pub(crate) fn list_dirs(path: &Path) -> std::io::Result<Vec<(String, PathBuf, bool)>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(path)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false) || (e.path().is_dir());
        v.push((name, e.path(), is_dir));
    }
    v.sort();
    Ok(v)
}

pub(crate) fn parse_id(name: &str) -> Option<u64> {
    (!name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()))
        .then(|| name.parse().ok())
        .flatten()
}

/// Study folders per split (including empty ones) and the series folders to scan.
pub(crate) fn list_dataset(
    root: &Path,
    findings: &mut Vec<Finding>,
) -> (
    BTreeSet<(&'static str, u64)>,
    Vec<SeriesDir>,
    Vec<&'static str>,
) {
    let mut studies = BTreeSet::new();
    let mut series = Vec::new();
    let mut splits = Vec::new();
    for (split, _) in SPLITS {
        let dir = root.join(split);
        if !dir.is_dir() {
            continue;
        }
        splits.push(split);
        let entries = match list_dirs(&dir) {
            Ok(e) => e,
            Err(e) => {
                findings.push(Finding::new(
                    FindingKind::UnreadableFile,
                    None,
                    None,
                    None,
                    format!("{split}: cannot list: {e}"),
                ));
                continue;
            }
        };
        for (name, path, is_dir) in entries {
            if !is_dir {
                continue;
            }
            let Some(study) = parse_id(&name) else {
                findings.push(Finding::new(
                    FindingKind::BadFolderName,
                    None,
                    None,
                    None,
                    format!(
                        "{split}/{name}: a study folder name must be a numeric study id; skipped"
                    ),
                ));
                continue;
            };
            studies.insert((split, study));
            let subs = match list_dirs(&path) {
                Ok(s) => s,
                Err(e) => {
                    findings.push(Finding::new(
                        FindingKind::UnreadableFile,
                        Some(study),
                        None,
                        None,
                        format!("{split}/{name}: cannot list: {e}"),
                    ));
                    continue;
                }
            };
            let mut n_series = 0;
            for (sname, spath, sdir) in subs {
                if !sdir {
                    continue;
                }
                let Some(sid) = parse_id(&sname) else {
                    findings.push(Finding::new(
                        FindingKind::BadFolderName,
                        Some(study),
                        None,
                        None,
                        format!(
                            "{split}/{name}/{sname}: a series folder name must be a numeric series id; skipped"
                        ),
                    ));
                    continue;
                };
                n_series += 1;
                let n_files = std::fs::read_dir(&spath)
                    .map(|rd| rd.count() as u64)
                    .unwrap_or(0);
                series.push(SeriesDir {
                    split,
                    study,
                    series: sid,
                    path: spath,
                    n_files,
                });
            }
            if n_series == 0 {
                findings.push(Finding::new(
                    FindingKind::EmptyStudyFolder,
                    Some(study),
                    None,
                    None,
                    format!("{split}/{name} holds no series folders"),
                ));
            }
        }
    }
    (studies, series, splits)
}

// ---------------------------------------------------------------------------------------------
// Scanning one series

/// What stays in memory of a scanned series.
#[derive(Debug, Clone)]
pub(crate) struct SeriesSummary {
    pub(crate) n_files: u64,
    pub(crate) n_readable: u64,
    /// file number -> (rows, columns) of readable files.
    pub(crate) instances: HashMap<i64, (u32, u32)>,
    pub(crate) matrix: Option<(u32, u32)>,
    pub(crate) manufacturer: Option<String>,
    pub(crate) field_strength: Option<f64>,
    pub(crate) transfer_syntaxes: BTreeMap<String, u64>,
}

pub(crate) struct SeriesScan {
    pub(crate) key: (&'static str, u64, u64),
    pub(crate) summary: SeriesSummary,
    pub(crate) write: SeriesWrite,
    pub(crate) findings: Vec<Finding>,
    pub(crate) bytes: u64,
    pub(crate) files_read: u64,
    pub(crate) files_reused: u64,
    pub(crate) files_unreadable: u64,
}

pub(crate) fn mtime_ns(m: &std::fs::Metadata) -> i64 {
    m.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

pub(crate) fn median(v: &mut [f64]) -> Option<f64> {
    MinMedMax::of(v).map(|m| m.median)
}

pub(crate) fn mode<T: Ord + Clone>(items: impl Iterator<Item = T>) -> Option<T> {
    let mut m: BTreeMap<T, usize> = BTreeMap::new();
    for t in items {
        *m.entry(t).or_default() += 1;
    }
    m.into_iter().max_by_key(|(_, n)| *n).map(|(t, _)| t)
}

pub(crate) fn rel_path(root: &Path, p: &Path) -> String {
    let r = p.strip_prefix(root).unwrap_or(p);
    r.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// Bytes of pixel data a file in a native (uncompressed) transfer syntax must hold.
pub(crate) fn native_pixel_bytes(h: &InstanceHeader) -> Option<u64> {
    const NATIVE: [&str; 3] = [
        "1.2.840.10008.1.2",
        "1.2.840.10008.1.2.1",
        "1.2.840.10008.1.2.2",
    ];
    if !NATIVE.contains(&h.transfer_syntax.trim_end_matches('\0').trim()) || h.bits_allocated == 0 {
        return None;
    }
    let bits = u64::from(h.rows)
        * u64::from(h.columns)
        * u64::from(h.number_of_frames.max(1))
        * u64::from(h.samples_per_pixel.max(1))
        * u64::from(h.bits_allocated);
    Some(bits.div_ceil(8))
}

thread_local! {
    /// Each scanning thread keeps one read-only connection to the index (reopened for another index).
    static READER: std::cell::RefCell<Option<(PathBuf, Option<Index>)>> = const { std::cell::RefCell::new(None) };
}

pub(crate) fn with_reader<T>(path: &Path, f: impl FnOnce(Option<&Index>) -> T) -> T {
    READER.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|(p, _)| p != path) {
            *slot = Some((path.to_path_buf(), Index::open_read_only(path).ok()));
        }
        f(slot.as_ref().and_then(|(_, ix)| ix.as_ref()))
    })
}

pub(crate) fn scan_series(
    root: &Path,
    sd: &SeriesDir,
    stored: Option<&Index>,
    description: Option<SeriesKind>,
) -> SeriesScan {
    let (study, series) = (sd.study, sd.series);
    let f =
        |kind, instance, msg: String| Finding::new(kind, Some(study), Some(series), instance, msg);
    let mut findings = Vec::new();
    let folder = format!("{}/{}/{}", sd.split, study, series);

    let mut stored_files: HashMap<String, StoredFile> = stored
        .and_then(|ix| ix.series_files(sd.split, study, series).ok())
        .unwrap_or_default();
    let mut changed = false;
    let (mut files_read, mut files_reused, mut files_unreadable, mut bytes) = (0, 0, 0, 0);
    let mut records: Vec<InstanceRecord> = Vec::new();
    let entries = match std::fs::read_dir(&sd.path) {
        Ok(rd) => rd.filter_map(Result::ok).collect::<Vec<_>>(),
        Err(e) => {
            findings.push(f(
                FindingKind::UnreadableFile,
                None,
                format!("{folder}: cannot list: {e}"),
            ));
            Vec::new()
        }
    };
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let path = e.path();
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        let rel = rel_path(root, &path);
        let stem = name.strip_suffix(".dcm").unwrap_or(&name);
        let file_number = parse_id(stem).and_then(|n| i64::try_from(n).ok());
        if file_number.is_none() || !name.ends_with(".dcm") {
            findings.push(f(
                FindingKind::BadFileName,
                None,
                format!("{rel}: file name is not <instance number>.dcm"),
            ));
        }
        let (size, mtime) = (meta.len(), mtime_ns(&meta));
        bytes += size;
        let (header, error) = match stored_files.remove(&rel) {
            Some(s) if s.size == size && s.mtime_ns == mtime => {
                files_reused += 1;
                (s.header, s.error)
            }
            _ => {
                changed = true;
                files_read += 1;
                match read_header(&path) {
                    Ok(h) => (Some(h), None),
                    // Name the file relative to the root: the message travels with the index.
                    Err(e) => (
                        None,
                        Some(e.to_string().replace(&path.display().to_string(), &rel)),
                    ),
                }
            }
        };
        records.push(InstanceRecord {
            path: rel,
            file_number,
            size,
            mtime_ns: mtime,
            header,
            error,
            place: None,
        });
    }
    if !stored_files.is_empty() {
        changed = true; // files were removed
    }
    records.sort_by(|a, b| a.file_number.cmp(&b.file_number).then(a.path.cmp(&b.path)));

    if records.is_empty() {
        findings.push(f(
            FindingKind::EmptySeriesFolder,
            None,
            format!("{folder} holds no files"),
        ));
    }

    let mut slices = Vec::new();
    let mut slice_owner: HashMap<i64, usize> = HashMap::new();
    let (mut study_uid_bad, mut series_uid_bad, mut no_geometry) =
        (Vec::new(), Vec::new(), Vec::new());
    let mut instances = HashMap::new();
    let mut transfer_syntaxes = BTreeMap::new();
    let (mut trs, mut tes, mut tis) = (Vec::new(), Vec::new(), Vec::new());
    let mut readable: Vec<&InstanceHeader> = Vec::new();
    for (ri, r) in records.iter().enumerate() {
        let inst = r.file_number;
        if let Some(err) = &r.error {
            files_unreadable += 1;
            findings.push(f(FindingKind::UnreadableFile, inst, err.clone()));
            continue;
        }
        let Some(h) = &r.header else { continue };
        if let Some(need) = native_pixel_bytes(h) {
            if r.size < need {
                findings.push(f(
                    FindingKind::TruncatedFile,
                    inst,
                    format!(
                        "{}: {} bytes, less than the {need} bytes of its uncompressed pixel data",
                        r.path, r.size
                    ),
                ));
            }
        }
        readable.push(h);
        *transfer_syntaxes
            .entry(h.transfer_syntax.clone())
            .or_insert(0) += 1;
        if let (Some(n), Some(hn)) = (inst, h.instance_number) {
            if n != hn {
                findings.push(f(
                    FindingKind::InstanceNumberMismatch,
                    inst,
                    format!("{}: InstanceNumber {hn} differs from the file name", r.path),
                ));
            }
        } else if inst.is_some() && h.instance_number.is_none() {
            findings.push(f(
                FindingKind::InstanceNumberMismatch,
                inst,
                format!("{}: no InstanceNumber in the header", r.path),
            ));
        }
        // a folder named by the UID's derived id (`discus ingest`, `discus deid`) matches it too
        if h.study_instance_uid.trim() != study.to_string()
            && discus_core::ids::id_from_uid(&h.study_instance_uid) != study
        {
            study_uid_bad.push(inst);
        }
        if h.series_instance_uid.trim() != series.to_string()
            && discus_core::ids::id_from_uid(&h.series_instance_uid) != series
        {
            series_uid_bad.push(inst);
        }
        if let Some(v) = h.repetition_time {
            trs.push(v);
        }
        if let Some(v) = h.echo_time {
            tes.push(v);
        }
        if let Some(v) = h.inversion_time {
            tis.push(v);
        }
        let number = inst.or(h.instance_number);
        match SliceGeometry::from_header(h) {
            Ok(g) => {
                if let Some(n) = number {
                    instances.insert(n, (g.rows, g.columns));
                    slice_owner.insert(n, ri);
                    slices.push(SliceInput {
                        instance_number: n,
                        geometry: g,
                    });
                }
            }
            Err(e) => {
                if let Some(n) = inst {
                    instances.insert(n, (u32::from(h.rows), u32::from(h.columns)));
                }
                no_geometry.push((inst, e.to_string()));
            }
        }
    }
    let n_readable = readable.len() as u64;
    let manufacturer = mode(
        readable
            .iter()
            .filter_map(|h| h.manufacturer.clone())
            .filter(|s| !s.trim().is_empty()),
    );
    let field_strength = mode(
        readable
            .iter()
            .filter_map(|h| h.magnetic_field_strength)
            .map(|v| (v * 100.0).round() as i64),
    )
    .map(|v| v as f64 / 100.0);
    let header_description = mode(readable.iter().filter_map(|h| h.series_description.clone()));
    drop(readable);
    let mut uid_finding = |bad: &Vec<Option<i64>>, kind, what: &str, folder_kind: &str| {
        if !bad.is_empty() {
            findings.push(f(
                kind,
                bad[0],
                format!(
                    "{folder}: {} of {n_readable} files have a {what} other than the {folder_kind} folder name",
                    bad.len()
                ),
            ));
        }
    };
    uid_finding(
        &study_uid_bad,
        FindingKind::StudyUidMismatch,
        "StudyInstanceUID",
        "study",
    );
    uid_finding(
        &series_uid_bad,
        FindingKind::SeriesUidMismatch,
        "SeriesInstanceUID",
        "series",
    );
    if let Some((inst, why)) = no_geometry.first() {
        findings.push(f(
            FindingKind::MissingGeometry,
            *inst,
            format!(
                "{folder}: {} of {n_readable} files have no usable geometry (first: {why})",
                no_geometry.len()
            ),
        ));
    }

    // Instance numbering, by file name (what the label files refer to).
    let mut numbers: Vec<i64> = records.iter().filter_map(|r| r.file_number).collect();
    numbers.sort_unstable();
    numbers.dedup();
    if let (Some(&lo), Some(&hi)) = (numbers.first(), numbers.last()) {
        if lo != 1 {
            findings.push(f(
                FindingKind::InstanceNumberOffset,
                Some(lo),
                format!("{folder}: instance numbers start at {lo} (not 1)"),
            ));
        }
        let missing = (hi - lo + 1) as usize - numbers.len();
        if missing > 0 {
            let first_gap = numbers
                .windows(2)
                .find(|w| w[1] != w[0] + 1)
                .map(|w| w[0] + 1);
            findings.push(f(
                FindingKind::InstanceNumberGaps,
                first_gap,
                format!(
                    "{folder}: {missing} instance numbers missing between {lo} and {hi} (first: {})",
                    first_gap.unwrap_or(lo)
                ),
            ));
        }
    }

    // Stacks.
    let stacks: Vec<Stack> = assemble_stacks(slices, &StackOptions::default());
    for (si, s) in stacks.iter().enumerate() {
        for (k, sl) in s.slices.iter().enumerate() {
            if let Some(&ri) = slice_owner.get(&sl.instance_number) {
                records[ri].place = Some((si, k));
            }
        }
        if s.duplicate_positions > 0 {
            findings.push(f(
                FindingKind::DuplicateSlicePositions,
                s.slices.first().map(|x| x.instance_number),
                format!(
                    "{folder}: stack {si} has {} slices at the same position as another",
                    s.duplicate_positions
                ),
            ));
        } else if !s.uniform_spacing {
            findings.push(f(
                FindingKind::IrregularSliceSpacing,
                s.slices.first().map(|x| x.instance_number),
                format!(
                    "{folder}: stack {si}: slice spacing varies (median {:.2} mm)",
                    s.slice_spacing.unwrap_or(0.0)
                ),
            ));
        }
    }
    if stacks.len() > 1 {
        let r0 = *stacks[0].reference();
        let max_angle = stacks
            .iter()
            .map(|s| s.reference().normal_angle(&r0).to_degrees())
            .fold(0.0f64, f64::max);
        let oriented = stacks.iter().any(|s| {
            let r = s.reference();
            crate::geometry::dot(r.row_dir, r0.row_dir)
                < StackOptions::default().orientation_tolerance_rad.cos()
                || crate::geometry::dot(r.col_dir, r0.col_dir)
                    < StackOptions::default().orientation_tolerance_rad.cos()
        });
        let sizes: BTreeSet<(u32, u32)> = stacks.iter().map(|s| (s.rows, s.columns)).collect();
        let desc = stacks
            .iter()
            .map(|s| {
                format!(
                    "{} {}x{} x{}",
                    s.plane().as_str(),
                    s.rows,
                    s.columns,
                    s.len()
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let planes: BTreeSet<&str> = stacks.iter().map(|s| s.plane().as_str()).collect();
        if oriented {
            findings.push(f(
                if planes.len() > 1 {
                    FindingKind::MixedPlanes
                } else {
                    FindingKind::MixedOrientation
                },
                None,
                format!(
                    "{folder}: {} stacks of different orientation (up to {max_angle:.1} degrees apart): {desc}",
                    stacks.len()
                ),
            ));
        }
        if sizes.len() > 1 || !oriented {
            findings.push(f(
                FindingKind::MixedMatrixSize,
                None,
                format!(
                    "{folder}: {} stacks of different matrix size or pixel spacing: {desc}",
                    stacks.len()
                ),
            ));
        }
    }
    let main = stacks.iter().max_by_key(|s| s.len());
    let plane = main.map(|s| s.plane());
    let matrix = main.map(|s| (s.rows, s.columns));
    let (tr, te) = (median(&mut trs), median(&mut tes));
    let ti = median(&mut tis);

    // Description against header.
    if let Some(kind) = description {
        if let Some(p) = plane {
            let ok = match kind {
                SeriesKind::SagittalT1 | SeriesKind::SagittalT2Stir => p == Plane::Sagittal,
                SeriesKind::AxialT2 => p == Plane::Axial,
            };
            if !ok {
                findings.push(f(
                    FindingKind::DescriptionPlaneMismatch,
                    None,
                    format!(
                        "{folder}: described as {kind} but its slices are {}",
                        p.as_str()
                    ),
                ));
            }
        }
        let contrast = infer_contrast(tr, te, ti);
        let clash = match (kind, contrast) {
            (SeriesKind::SagittalT1, Some(Contrast::T2 | Contrast::Stir)) => true,
            (SeriesKind::SagittalT2Stir | SeriesKind::AxialT2, Some(Contrast::T1)) => true,
            (SeriesKind::AxialT2, Some(Contrast::Stir)) => false,
            _ => false,
        };
        if clash {
            let fmt = |v: Option<f64>| v.map(|v| format!("{v:.0}")).unwrap_or_else(|| "-".into());
            findings.push(f(
                FindingKind::DescriptionContrastMismatch,
                None,
                format!(
                    "{folder}: described as {kind} but TR {} ms, TE {} ms, TI {} ms look {:?}",
                    fmt(tr),
                    fmt(te),
                    fmt(ti),
                    contrast.expect("clash implies a contrast")
                ),
            ));
        }
    }

    let row = SeriesRow {
        split: sd.split.to_string(),
        study_id: study,
        series_id: series,
        n_files: records.len(),
        n_readable: n_readable as usize,
        description: header_description,
        plane: plane.map(|p| p.as_str().to_string()),
        manufacturer: manufacturer.clone(),
        field_strength,
        repetition_time: tr,
        echo_time: te,
        inversion_time: ti,
    };
    let summary = SeriesSummary {
        n_files: records.len() as u64,
        n_readable,
        instances,
        matrix,
        manufacturer,
        field_strength,
        transfer_syntaxes,
    };
    SeriesScan {
        key: (sd.split, study, series),
        summary,
        write: SeriesWrite {
            row,
            stacks,
            instances: changed.then_some(records),
        },
        findings,
        bytes,
        files_read,
        files_reused,
        files_unreadable,
    }
}

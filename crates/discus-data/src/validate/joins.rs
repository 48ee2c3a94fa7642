//! Joins between the CSV files and the image folders.

use super::*;

pub(crate) fn check_joins(
    csv: &CsvData,
    study_dirs: &BTreeSet<(&'static str, u64)>,
    splits: &[&'static str],
    summaries: &HashMap<(&'static str, u64, u64), SeriesSummary>,
    findings: &mut Vec<Finding>,
) {
    let push = |findings: &mut Vec<Finding>, kind, st: u64, se: Option<u64>, inst, msg: String| {
        findings.push(Finding::new(kind, Some(st), se, inst, msg))
    };
    // Descriptions against folders.
    for &(split, study, series) in summaries.keys() {
        if csv.desc_read.contains(split) && !csv.descriptions.contains_key(&(split, study, series))
        {
            push(
                findings,
                FindingKind::SeriesWithoutDescription,
                study,
                Some(series),
                None,
                format!("{split}/{study}/{series} has no row in the descriptions file"),
            );
        }
    }
    for &(split, study, series) in csv.descriptions.keys() {
        if splits.contains(&split) && !summaries.contains_key(&(split, study, series)) {
            push(
                findings,
                FindingKind::DescriptionWithoutFolder,
                study,
                Some(series),
                None,
                format!("described series has no folder {split}/{study}/{series}"),
            );
        }
    }
    // Series per study by kind.
    let mut per_study: BTreeMap<(&str, u64), [Vec<u64>; 3]> = BTreeMap::new();
    for &(split, study) in study_dirs {
        per_study.entry((split, study)).or_default();
    }
    for (&(split, study, series), &kind) in &csv.descriptions {
        if splits.contains(&split) {
            per_study.entry((split, study)).or_default()[kind as usize].push(series);
        }
    }
    for ((split, study), kinds) in &per_study {
        if !csv.desc_read.contains(split) {
            continue;
        }
        for (k, kind) in SeriesKind::ALL.iter().enumerate() {
            if kinds[k].is_empty() {
                let fk = match kind {
                    SeriesKind::SagittalT1 => FindingKind::MissingSagittalT1,
                    SeriesKind::SagittalT2Stir => FindingKind::MissingSagittalT2Stir,
                    SeriesKind::AxialT2 => FindingKind::MissingAxialT2,
                };
                push(
                    findings,
                    fk,
                    *study,
                    None,
                    None,
                    format!("{split}/{study} has no {kind} series"),
                );
            }
        }
        let ax = &kinds[SeriesKind::AxialT2 as usize];
        if ax.len() > 1 {
            push(
                findings,
                FindingKind::MultipleAxialSeries,
                *study,
                None,
                None,
                format!("{split}/{study} has {} Axial T2 series", ax.len()),
            );
        }
    }

    // Points.
    let labels: HashMap<u64, &StudyLabels> = csv
        .labels
        .iter()
        .flatten()
        .map(|l| (l.study.0, l))
        .collect();
    let mut seen: HashMap<(u64, Condition, Level), usize> = HashMap::new();
    let mut series_of: BTreeMap<(u64, Condition), BTreeSet<u64>> = BTreeMap::new();
    let train = Split::Train.folder();
    for p in csv.points.iter().flatten() {
        let (st, se) = (p.study.0, p.series.0);
        let what = format!(
            "point {} {} on {st}/{se} instance {} at ({}, {})",
            p.condition.words(),
            p.level.words(),
            p.instance,
            p.x,
            p.y
        );
        let inst = Some(i64::from(p.instance));
        *seen.entry((st, p.condition, p.level)).or_default() += 1;
        // Levels split across series: only series of the kind this condition belongs on (a point on
        // another kind is reported as such).
        if csv.descriptions.get(&(train, st, se)) == Some(&p.condition.series_kind()) {
            series_of.entry((st, p.condition)).or_default().insert(se);
        }
        if let Some(kind) = csv.descriptions.get(&(train, st, se)) {
            if *kind != p.condition.series_kind() {
                push(
                    findings,
                    FindingKind::PointOnWrongSeriesType,
                    st,
                    Some(se),
                    inst,
                    format!(
                        "{what}: the series is described as {kind}, {} points belong on {}",
                        p.condition.words(),
                        p.condition.series_kind()
                    ),
                );
            }
        }
        match summaries.get(&(train, st, se)) {
            None => push(
                findings,
                FindingKind::PointOnMissingSeries,
                st,
                Some(se),
                inst,
                format!("{what}: no folder {train}/{st}/{se}"),
            ),
            Some(s) => match s.instances.get(&i64::from(p.instance)) {
                None => push(
                    findings,
                    FindingKind::PointOnMissingInstance,
                    st,
                    Some(se),
                    inst,
                    format!("{what}: no readable file {}.dcm in the series", p.instance),
                ),
                Some(&(rows, cols)) => {
                    let inside = p.x >= -0.5
                        && p.x <= cols as f64 - 0.5
                        && p.y >= -0.5
                        && p.y <= rows as f64 - 0.5;
                    if !inside {
                        push(
                            findings,
                            FindingKind::PointOutsideImage,
                            st,
                            Some(se),
                            inst,
                            format!("{what}: outside the {cols}x{rows} (columns x rows) image"),
                        );
                    }
                }
            },
        }
        let graded = labels
            .get(&st)
            .map(|l| l.get(p.condition, p.level).is_some())
            .unwrap_or(false);
        if csv.labels.is_some() && !graded {
            push(
                findings,
                FindingKind::PointWithoutLabel,
                st,
                Some(se),
                inst,
                format!("{what}: no grade in train.csv"),
            );
        }
    }
    for (&(st, c, l), &n) in &seen {
        if n > 1 {
            push(
                findings,
                FindingKind::DuplicatePoint,
                st,
                None,
                None,
                format!("{n} points for {st} {} {}", c.words(), l.words()),
            );
        }
    }
    for ((st, c), series) in &series_of {
        if series.len() > 1 {
            push(
                findings,
                FindingKind::LevelsSplitAcrossSeries,
                *st,
                None,
                None,
                format!(
                    "{st}: {} points lie on {} series ({})",
                    c.words(),
                    series.len(),
                    series
                        .iter()
                        .map(|s| s.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
    }
    // Labels against points and images.
    if let Some(lab) = &csv.labels {
        let train_studies: BTreeSet<u64> = study_dirs
            .iter()
            .filter(|(s, _)| *s == train)
            .map(|(_, id)| *id)
            .collect();
        for l in lab {
            let st = l.study.0;
            if csv.points.is_some() {
                for col in LabelColumn::all() {
                    if l.grades[col.index()].is_some()
                        && !seen.contains_key(&(st, col.condition, col.level))
                    {
                        push(
                            findings,
                            FindingKind::LabelWithoutPoint,
                            st,
                            None,
                            None,
                            format!("{st} {}: graded but no point", col.name()),
                        );
                    }
                }
            }
            if splits.contains(&train) && !train_studies.contains(&st) {
                push(
                    findings,
                    FindingKind::LabelsWithoutImages,
                    st,
                    None,
                    None,
                    format!(
                        "{st} is in {TRAIN_CSV} but has no folder under {}",
                        Split::Train
                    ),
                );
            }
        }
        for st in &train_studies {
            if !labels.contains_key(st) {
                push(
                    findings,
                    FindingKind::StudyWithoutLabels,
                    *st,
                    None,
                    None,
                    format!("{}/{st} has no row in {TRAIN_CSV}", Split::Train),
                );
            }
        }
    }
}

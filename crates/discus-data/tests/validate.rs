//! `discus validate` on small fixture datasets built by the tests: a clean dataset gives no
//! finding, and each planted quirk gives its finding without losing the rest of the dataset.

mod fixture;

use discus_core::{Condition, Level, SeriesId, SeriesKind, Severity};
use discus_data::index::{Index, Table};
use discus_data::validate::{validate, FindingKind, FindingSeverity, Report, ValidateOptions};
use fixture::{clean, make_series, series_id, write_slice, DatasetModel};
use std::path::Path;

fn run(root: &Path) -> Report {
    validate(root, &ValidateOptions::default(), &|_| {}).expect("validate runs")
}

fn build(model: &DatasetModel) -> (tempfile::TempDir, Report) {
    let dir = tempfile::tempdir().unwrap();
    model.write(dir.path());
    let r = run(dir.path());
    (dir, r)
}

fn kinds(r: &Report) -> Vec<FindingKind> {
    let mut k: Vec<FindingKind> = r.findings.iter().map(|f| f.kind).collect();
    k.dedup();
    k
}

fn of_kind(r: &Report, kind: FindingKind) -> Vec<&discus_data::validate::Finding> {
    r.findings.iter().filter(|f| f.kind == kind).collect()
}

/// Asserts the report holds exactly these kinds (each at least once) and nothing else.
fn assert_kinds(r: &Report, expected: &[FindingKind]) {
    let mut want = expected.to_vec();
    want.sort();
    want.dedup();
    assert_eq!(kinds(r), want, "findings: {:#?}", r.findings);
}

#[test]
fn clean_dataset_has_no_findings_and_its_shape() {
    let (dir, r) = build(&clean(2));
    assert_kinds(&r, &[]);
    assert!(!r.has_errors());
    let s = &r.shape;
    assert_eq!((s.studies, s.series, s.files), (2, 6, 30));
    assert_eq!(s.series_per_kind["Sagittal T1"], 2);
    assert_eq!(s.series_per_kind["Axial T2"], 2);
    assert_eq!(s.series_count_patterns["(1,1,1)"], 2);
    let t1 = s.slices_per_series["Sagittal T1"];
    assert_eq!((t1.min, t1.median, t1.max), (5.0, 5.0, 5.0));
    assert_eq!(s.matrix_sizes["Axial T2"]["64x64"], 2);
    assert_eq!(s.vendors["ACME"], 6);
    assert_eq!(s.field_strengths["1.5"], 6);
    assert_eq!(s.transfer_syntaxes["1.2.840.10008.1.2.1"], 30);
    assert_eq!(s.labelled_studies, 2);
    assert_eq!(s.points, 50);
    // Grades cycle Normal/Mild, Moderate, Severe over the 25 columns (study 1001 from index 0,
    // study 1002 shifted by one): column 0 = NormalMild (1001) + Moderate (1002).
    assert_eq!(s.labels.len(), 25);
    let c0 = &s.labels[0];
    assert_eq!(
        (c0.normal_mild, c0.moderate, c0.severe, c0.missing),
        (1, 1, 0, 0)
    );
    // Spinal columns 0..5: study 1001 has Severe at index 2, study 1002 at index 1 and 4.
    assert_eq!(s.severe_spinal_share, Some(1.0));
    assert_eq!((r.scan.files_read, r.scan.files_reused), (30, 0));

    // The index holds everything.
    let ix = Index::open_read_only(&r.index).unwrap();
    assert_eq!(r.index, dir.path().join(".discus/index.sqlite"));
    assert_eq!(ix.count(Table::Instances).unwrap(), 30);
    assert_eq!(ix.count(Table::Series).unwrap(), 6);
    assert_eq!(ix.count(Table::Stacks).unwrap(), 6);
    assert_eq!(ix.count(Table::Descriptions).unwrap(), 6);
    assert_eq!(ix.count(Table::Labels).unwrap(), 50);
    assert_eq!(ix.count(Table::Points).unwrap(), 50);
    assert_eq!(ix.count(Table::Findings).unwrap(), 0);
    let placed: i64 = ix
        .connection()
        .query_row(
            "SELECT COUNT(*) FROM instances WHERE stack_index = 0 AND slice_index IS NOT NULL AND error IS NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(placed, 30);
    // Later commands get series and stacks from the index alone.
    let rows = ix.series_rows().unwrap();
    assert_eq!(rows.len(), 6);
    assert_eq!(rows[0].study_id, 1001);
    assert_eq!(rows[0].plane.as_deref(), Some("sagittal"));
    assert_eq!(rows[0].repetition_time, Some(550.0));
    let ax = series_id(1002, SeriesKind::AxialT2);
    let stacks = ix.series_stacks("train_images", 1002, ax).unwrap();
    assert_eq!(stacks.len(), 1);
    // Axial slices at z = 20, 16, ..., 4 for instances 1..5: the normal is +z, so the stack runs 5..1.
    assert_eq!(stacks[0].instance_numbers(), vec![5, 4, 3, 2, 1]);
    assert!((stacks[0].slice_spacing.unwrap() - 4.0).abs() < 1e-9);
    assert_eq!(
        ix.series_headers("train_images", 1002, ax).unwrap()[0].0,
        format!("train_images/1002/{ax}/1.dcm")
    );
}

#[test]
fn missing_series_per_kind() {
    let mut m = clean(2);
    let t1 = series_id(1001, SeriesKind::SagittalT1);
    m.series.retain(|s| s.series != t1);
    m.points.retain(|p| p.series.0 != t1);
    for c in [
        Condition::LeftNeuralForaminalNarrowing,
        Condition::RightNeuralForaminalNarrowing,
    ] {
        for l in Level::ALL {
            m.labels[0].set(c, l, None);
        }
    }
    let (_d, r) = build(&m);
    assert_kinds(&r, &[FindingKind::MissingSagittalT1]);
    let f = &of_kind(&r, FindingKind::MissingSagittalT1)[0];
    assert_eq!(f.study.unwrap().0, 1001);
    assert_eq!(f.severity, FindingSeverity::Warning);
    assert_eq!(r.shape.series_count_patterns["(0,1,1)"], 1);
    assert_eq!(r.shape.labels[5].missing, 1); // left foraminal l1_l2
}

#[test]
fn point_on_series_of_another_type() {
    let mut m = clean(1);
    let p = m.point_mut(1001, Condition::SpinalCanalStenosis, Level::L3L4);
    p.series = SeriesId(series_id(1001, SeriesKind::SagittalT1));
    let (_d, r) = build(&m);
    assert_kinds(&r, &[FindingKind::PointOnWrongSeriesType]);
    let f = of_kind(&r, FindingKind::PointOnWrongSeriesType)[0];
    assert_eq!(f.instance, Some(3));
    assert!(f.message.contains("Sagittal T1"), "{}", f.message);
}

#[test]
fn several_axial_series_with_levels_split() {
    let mut m = clean(1);
    let extra = 1001 * 10 + 9;
    m.series
        .push(make_series(1001, extra, SeriesKind::AxialT2, 4));
    for l in [Level::L1L2, Level::L2L3] {
        let p = m.point_mut(1001, Condition::LeftSubarticularStenosis, l);
        p.series = SeriesId(extra);
    }
    let (_d, r) = build(&m);
    assert_kinds(
        &r,
        &[
            FindingKind::MultipleAxialSeries,
            FindingKind::LevelsSplitAcrossSeries,
        ],
    );
    let f = of_kind(&r, FindingKind::LevelsSplitAcrossSeries)[0];
    assert!(f.message.contains("Left Subarticular"), "{}", f.message);
    assert_eq!(r.shape.series_count_patterns["(1,1,2)"], 1);
}

#[test]
fn labels_without_points_and_points_without_labels() {
    let mut m = clean(1);
    m.points
        .retain(|p| !(p.condition == Condition::SpinalCanalStenosis && p.level == Level::L4L5));
    m.labels[0].set(Condition::LeftSubarticularStenosis, Level::L5S1, None);
    let (_d, r) = build(&m);
    assert_kinds(
        &r,
        &[
            FindingKind::LabelWithoutPoint,
            FindingKind::PointWithoutLabel,
        ],
    );
    assert!(of_kind(&r, FindingKind::LabelWithoutPoint)[0]
        .message
        .contains("spinal_canal_stenosis_l4_l5"));
    assert_eq!(r.shape.labels[19].missing, 1);
}

#[test]
fn instance_number_gaps_and_offsets() {
    let mut m = clean(1);
    // Sagittal T2: numbered 5001..5005 (offset, no gap); axial: 1,2,4,5,6 (gap). Points follow.
    for sl in &mut m.series_mut(1001, SeriesKind::SagittalT2Stir).slices {
        sl.file_number += 5000;
        sl.instance_number = Some(sl.file_number);
    }
    for p in m.points.iter_mut() {
        if p.condition == Condition::SpinalCanalStenosis {
            p.instance += 5000;
        }
    }
    for sl in &mut m.series_mut(1001, SeriesKind::AxialT2).slices {
        if sl.file_number >= 3 {
            sl.file_number += 1;
            sl.instance_number = Some(sl.file_number);
        }
    }
    for p in m.points.iter_mut() {
        if p.condition.series_kind() == SeriesKind::AxialT2 && p.instance >= 3 {
            p.instance += 1;
        }
    }
    let (_d, r) = build(&m);
    assert_kinds(
        &r,
        &[
            FindingKind::InstanceNumberOffset,
            FindingKind::InstanceNumberGaps,
        ],
    );
    let off = of_kind(&r, FindingKind::InstanceNumberOffset)[0];
    assert_eq!(off.instance, Some(5001));
    assert_eq!(
        off.series.unwrap().0,
        series_id(1001, SeriesKind::SagittalT2Stir)
    );
    let gap = of_kind(&r, FindingKind::InstanceNumberGaps)[0];
    assert_eq!(gap.instance, Some(3));
}

#[test]
fn stacks_of_mixed_orientation_and_size() {
    let mut m = clean(1);
    // Axial: the last two slices tilted by 15 degrees about the left-right axis (a second level block).
    let ax = m.series_mut(1001, SeriesKind::AxialT2);
    let (s, c) = 15f64.to_radians().sin_cos();
    for sl in ax.slices.iter_mut().skip(3) {
        sl.iop = [1.0, 0.0, 0.0, 0.0, c, s];
    }
    // Sagittal T1: one slice with a larger matrix.
    let t1 = m.series_mut(1001, SeriesKind::SagittalT1);
    t1.slices[4].rows = 80;
    let (_d, r) = build(&m);
    assert_kinds(
        &r,
        &[FindingKind::MixedOrientation, FindingKind::MixedMatrixSize],
    );
    let f = of_kind(&r, FindingKind::MixedOrientation)[0];
    assert_eq!(f.series.unwrap().0, series_id(1001, SeriesKind::AxialT2));
    assert!(f.message.contains("15.0 degrees"), "{}", f.message);
    // Per-level axial stacks are how the real data is acquired: information, not a warning.
    assert_eq!(f.severity, FindingSeverity::Info);
    let f = of_kind(&r, FindingKind::MixedMatrixSize)[0];
    assert_eq!(f.series.unwrap().0, series_id(1001, SeriesKind::SagittalT1));
    let ix = Index::open_read_only(&r.index).unwrap();
    assert_eq!(ix.count(Table::Stacks).unwrap(), 5);
}

#[test]
fn points_outside_the_image_or_on_missing_instances_or_series() {
    let mut m = clean(1);
    m.point_mut(1001, Condition::SpinalCanalStenosis, Level::L1L2)
        .x = 70.0;
    m.point_mut(1001, Condition::SpinalCanalStenosis, Level::L2L3)
        .y = -3.0;
    m.point_mut(1001, Condition::RightNeuralForaminalNarrowing, Level::L1L2)
        .instance = 9;
    m.point_mut(1001, Condition::LeftSubarticularStenosis, Level::L3L4)
        .series = SeriesId(777);
    let (_d, r) = build(&m);
    assert_kinds(
        &r,
        &[
            FindingKind::PointOnMissingSeries,
            FindingKind::PointOnMissingInstance,
            FindingKind::PointOutsideImage,
        ],
    );
    assert_eq!(of_kind(&r, FindingKind::PointOutsideImage).len(), 2);
    assert_eq!(
        of_kind(&r, FindingKind::PointOnMissingInstance)[0].instance,
        Some(9)
    );
    assert!(r.has_errors());
}

#[test]
fn ids_that_disagree_with_their_folder() {
    let mut m = clean(1);
    let t2 = m.series_mut(1001, SeriesKind::SagittalT2Stir);
    t2.slices[1].instance_number = Some(7);
    let ax = m.series_mut(1001, SeriesKind::AxialT2);
    for sl in &mut ax.slices {
        sl.study_uid = "1.2.3.4".into();
    }
    let t1 = m.series_mut(1001, SeriesKind::SagittalT1);
    t1.slices[0].series_uid = "99".into();
    let (_d, r) = build(&m);
    assert_kinds(
        &r,
        &[
            FindingKind::InstanceNumberMismatch,
            FindingKind::StudyUidMismatch,
            FindingKind::SeriesUidMismatch,
        ],
    );
    let f = of_kind(&r, FindingKind::InstanceNumberMismatch)[0];
    assert_eq!(f.instance, Some(2));
    assert!(of_kind(&r, FindingKind::StudyUidMismatch)[0]
        .message
        .contains("5 of 5"));
    // The UID itself is not echoed.
    assert!(!r.findings.iter().any(|f| f.message.contains("1.2.3.4")));
}

#[test]
fn descriptions_that_contradict_the_header() {
    let mut m = clean(2);
    // 1001: the "Sagittal T1" series is really axial.
    let t1 = m.series_mut(1001, SeriesKind::SagittalT1);
    for (k, sl) in t1.slices.iter_mut().enumerate() {
        sl.iop = fixture::AX_IOP;
        sl.ipp = [-32.0, -32.0, 10.0 - 4.0 * k as f64];
    }
    // 1002: the "Sagittal T1" series has T2 timing; its T2/STIR series is a STIR (fine).
    let t1 = m.series_mut(1002, SeriesKind::SagittalT1);
    t1.tr = 3000.0;
    t1.te = 100.0;
    let stir = m.series_mut(1002, SeriesKind::SagittalT2Stir);
    (stir.tr, stir.te, stir.ti) = (3500.0, 40.0, Some(150.0));
    let (_d, r) = build(&m);
    assert_kinds(
        &r,
        &[
            FindingKind::DescriptionPlaneMismatch,
            FindingKind::DescriptionContrastMismatch,
        ],
    );
    assert_eq!(
        of_kind(&r, FindingKind::DescriptionPlaneMismatch)[0]
            .study
            .unwrap()
            .0,
        1001
    );
    let f = of_kind(&r, FindingKind::DescriptionContrastMismatch)[0];
    assert_eq!(f.study.unwrap().0, 1002);
    assert!(f.message.contains("T2"), "{}", f.message);
}

#[test]
fn folders_and_descriptions_that_do_not_match() {
    let mut m = clean(2);
    m.series_mut(1002, SeriesKind::AxialT2).description = None;
    m.extra_descriptions
        .push(discus_core::formats::SeriesDescription {
            study: discus_core::StudyId(1002),
            series: SeriesId(55),
            kind: SeriesKind::AxialT2,
        });
    let dir = tempfile::tempdir().unwrap();
    m.write(dir.path());
    // A study folder with no series, and an empty series folder.
    std::fs::create_dir_all(dir.path().join("train_images/3003")).unwrap();
    std::fs::create_dir_all(dir.path().join("train_images/1001/66")).unwrap();
    let r = run(dir.path());
    assert_kinds(
        &r,
        &[
            FindingKind::EmptyStudyFolder,
            FindingKind::EmptySeriesFolder,
            FindingKind::SeriesWithoutDescription,
            FindingKind::DescriptionWithoutFolder,
            FindingKind::MissingSagittalT1,
            FindingKind::MissingSagittalT2Stir,
            FindingKind::MissingAxialT2,
            FindingKind::StudyWithoutLabels,
        ],
    );
    assert!(!r.has_errors());
    for f in of_kind(&r, FindingKind::MissingAxialT2) {
        // 3003 has nothing; 1002's axial folder has no description but 55 is described (no folder).
        assert_eq!(f.study.unwrap().0, 3003);
    }
    assert_eq!(
        of_kind(&r, FindingKind::SeriesWithoutDescription).len(),
        2 // 1002's axial and the empty 1001/66
    );
}

#[test]
fn bad_files_are_reported_and_skipped() {
    let m = clean(2);
    let dir = tempfile::tempdir().unwrap();
    m.write(dir.path());
    let t2 = dir.path().join(format!(
        "train_images/1001/{}",
        series_id(1001, SeriesKind::SagittalT2Stir)
    ));
    // Truncated inside the header, truncated inside the pixel data, not DICOM at all, empty.
    let bytes = std::fs::read(t2.join("2.dcm")).unwrap();
    std::fs::write(t2.join("2.dcm"), &bytes[..300]).unwrap();
    let bytes3 = std::fs::read(t2.join("3.dcm")).unwrap();
    std::fs::write(t2.join("3.dcm"), &bytes3[..bytes3.len() - 1000]).unwrap();
    std::fs::write(t2.join("4.dcm"), b"study_id,series_id\n1,2\n").unwrap();
    std::fs::write(t2.join("5.dcm"), b"").unwrap();
    let r = run(dir.path());
    let unreadable = of_kind(&r, FindingKind::UnreadableFile);
    let mut inst: Vec<i64> = unreadable.iter().filter_map(|f| f.instance).collect();
    inst.sort();
    assert_eq!(inst, vec![2, 4, 5], "{unreadable:#?}");
    // Files are named relative to the root, with the reason.
    assert!(unreadable
        .iter()
        .all(|f| f.message.starts_with("train_images/1001/") && !f.message.contains("tmp")));
    assert!(
        unreadable[1].message.contains("not a DICOM file"),
        "{unreadable:#?}"
    );
    let trunc = of_kind(&r, FindingKind::TruncatedFile);
    assert_eq!(trunc.len(), 1);
    assert_eq!(trunc[0].instance, Some(3));
    // Points on the unreadable slices are reported; everything else was read.
    let missing: Vec<i64> = of_kind(&r, FindingKind::PointOnMissingInstance)
        .iter()
        .filter_map(|f| f.instance)
        .collect();
    assert_eq!(missing, vec![2, 4, 5]);
    assert_kinds(
        &r,
        &[
            FindingKind::TruncatedFile,
            FindingKind::UnreadableFile,
            FindingKind::PointOnMissingInstance,
        ],
    );
    assert_eq!(r.scan.files, 30);
    assert_eq!(r.scan.files_unreadable, 3);
    assert_eq!(r.shape.slices_per_series["Sagittal T2/STIR"].min, 2.0);
    assert!(r.has_errors());
}

#[test]
fn bad_csvs_are_findings_and_the_rest_is_read() {
    let dir = tempfile::tempdir().unwrap();
    clean(2).write(dir.path());
    // An empty train.csv; a coordinates file with an unknown condition and a bad number.
    std::fs::write(dir.path().join("train.csv"), b"").unwrap();
    let coords = dir.path().join("train_label_coordinates.csv");
    let text = std::fs::read_to_string(&coords).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    lines[3] = lines[3].replace("Spinal Canal Stenosis", "Spinal Canal Narrowing");
    lines[5] = lines[5].clone() + "x"; // y is no longer a number
    std::fs::write(&coords, lines.join("\n") + "\n").unwrap();
    let r = run(dir.path());
    assert_kinds(
        &r,
        &[
            FindingKind::EmptyCsv,
            FindingKind::CsvRowError,
            FindingKind::UnknownCondition,
        ],
    );
    let u = of_kind(&r, FindingKind::UnknownCondition)[0];
    assert!(u.message.contains("line 4"), "{}", u.message);
    assert!(
        u.message.contains("Spinal Canal Narrowing"),
        "{}",
        u.message
    );
    assert!(of_kind(&r, FindingKind::CsvRowError)[0]
        .message
        .contains("line 6"));
    assert_eq!(r.shape.points, 48);
    assert_eq!(r.shape.files, 30);

    // train.csv with an unknown label column is a header finding naming it.
    let mut cols = vec!["study_id".to_string()];
    cols.extend(discus_core::LabelColumn::all().iter().map(|c| c.name()));
    cols[3] = "left_foo_l3_l4".into();
    std::fs::write(dir.path().join("train.csv"), cols.join(",") + "\n").unwrap();
    let r = run(dir.path());
    let u = of_kind(&r, FindingKind::UnknownCondition);
    assert!(
        u.iter().any(|f| f.message.contains("left_foo_l3_l4")),
        "{u:#?}"
    );
}

#[test]
fn missing_csvs_and_missing_image_folders() {
    let dir = tempfile::tempdir().unwrap();
    let r = run(dir.path());
    assert_kinds(&r, &[FindingKind::NoImageFolders]);
    clean(1).write(dir.path());
    std::fs::remove_file(dir.path().join("train_series_descriptions.csv")).unwrap();
    std::fs::remove_file(dir.path().join("train.csv")).unwrap();
    let r = run(dir.path());
    assert_kinds(
        &r,
        &[
            FindingKind::MissingDescriptionsCsv,
            FindingKind::MissingLabelsCsv,
        ],
    );
    assert_eq!(r.shape.series_per_kind["none"], 3);
    assert!(validate(
        &dir.path().join("nope"),
        &ValidateOptions::default(),
        &|_| {}
    )
    .is_err());
}

#[test]
fn rescan_reads_only_changed_files() {
    let m = clean(2);
    let dir = tempfile::tempdir().unwrap();
    m.write(dir.path());
    let progress = std::sync::Mutex::new(Vec::new());
    let r1 = validate(dir.path(), &ValidateOptions::default(), &|p| {
        progress.lock().unwrap().push(p)
    })
    .unwrap();
    let last = *progress
        .lock()
        .unwrap()
        .iter()
        .max_by_key(|p| p.files_done)
        .unwrap();
    assert_eq!((last.files_done, last.files_total), (30, 30));
    assert_eq!(r1.scan.files_read, 30);

    let r2 = run(dir.path());
    assert_eq!((r2.scan.files_read, r2.scan.files_reused), (0, 30));
    assert_eq!(r2.findings, r1.findings);
    assert_eq!(r2.shape, r1.shape);

    // Touch one file: only it is read again.
    let f = dir.path().join(format!(
        "train_images/1002/{}/3.dcm",
        series_id(1002, SeriesKind::AxialT2)
    ));
    let file = std::fs::OpenOptions::new().write(true).open(&f).unwrap();
    file.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(5))
        .unwrap();
    drop(file);
    let r3 = run(dir.path());
    assert_eq!((r3.scan.files_read, r3.scan.files_reused), (1, 29));
    assert_eq!(r3.shape, r1.shape);

    // Replace a file's content (same series, different geometry): re-read, and the change shows.
    let mut m2 = m.clone();
    let ax = m2.series_mut(1002, SeriesKind::AxialT2);
    ax.slices[2].rows = 96;
    write_slice(&f, &ax.clone(), &ax.slices[2]);
    let r4 = run(dir.path());
    assert_eq!(r4.scan.files_read, 1);
    // Slice 3 leaves its stack: a second stack, and a gap in the first.
    assert_eq!(
        kinds(&r4),
        vec![
            FindingKind::MixedMatrixSize,
            FindingKind::IrregularSliceSpacing
        ]
    );

    // Remove a series folder: the index forgets it (and the point on it is reported).
    let t1 = dir.path().join(format!(
        "train_images/1001/{}",
        series_id(1001, SeriesKind::SagittalT1)
    ));
    std::fs::remove_dir_all(&t1).unwrap();
    let r5 = run(dir.path());
    assert_eq!(r5.scan.files_read, 0);
    let ix = Index::open_read_only(&r5.index).unwrap();
    assert_eq!(ix.count(Table::Instances).unwrap(), 25);
    assert_eq!(ix.count(Table::Series).unwrap(), 5);
    assert!(kinds(&r5).contains(&FindingKind::PointOnMissingSeries));
    assert!(kinds(&r5).contains(&FindingKind::DescriptionWithoutFolder));
}

#[test]
fn an_interrupted_scan_resumes() {
    // A scan that stopped after some series left them in the index; the next run reads only the rest.
    // Simulated by scanning a dataset that then grows: the series already indexed are not re-read.
    let mut m = clean(3);
    let dir = tempfile::tempdir().unwrap();
    let later: Vec<_> = m.series.split_off(6);
    m.write(dir.path());
    let r1 = run(dir.path());
    assert_eq!(r1.scan.files_read, 30);
    for s in &later {
        fixture::write_series(dir.path(), s);
    }
    m.series.extend(later);
    m.write_csvs(dir.path());
    let r2 = run(dir.path());
    assert_eq!((r2.scan.files_read, r2.scan.files_reused), (15, 30));
    assert_kinds(&r2, &[]);
    // Grades of the clean model: severity pattern check against an independent count.
    let severe_l1l2: u64 = m
        .labels
        .iter()
        .filter(|l| l.get(Condition::SpinalCanalStenosis, Level::L1L2) == Some(Severity::Severe))
        .count() as u64;
    assert_eq!(r2.shape.labels[0].severe, severe_l1l2);
}

#[test]
fn index_option_puts_the_index_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    clean(1).write(dir.path());
    let ix = dir.path().join("elsewhere/ix.sqlite");
    let r = validate(
        dir.path(),
        &ValidateOptions {
            index_path: Some(ix.clone()),
        },
        &|_| {},
    )
    .unwrap();
    assert_eq!(r.index, ix);
    assert!(ix.exists());
    assert!(!dir.path().join(".discus").exists());
}

//! End-to-end checks of a generated cohort: determinism, read-back through discus-data and pydicom,
//! label points on the intended structures, and `discus validate` finding exactly the injected quirks.

use discus_core::formats::{read_coordinates, read_series_descriptions, read_train};
use discus_core::{ConditionGroup, SeriesKind};
use discus_data::dicom::{decode_pixels, read_header};
use discus_data::geometry::SliceGeometry;
use discus_synth::anatomy::Tissue;
use discus_synth::cohort::{generate, slice_noise_seed, CohortPlan, SynthConfig, Truth};
use discus_synth::raster::render_slice;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Small matrices keep the test fast; the anatomy and geometry are the same as at full size.
fn small_config(seed: u64, studies: usize, quirks: f64) -> SynthConfig {
    SynthConfig {
        studies,
        sites: 2,
        seed,
        readers: 3,
        quirk_rate: quirks,
        matrix_scale: 0.25,
        ..Default::default()
    }
}

struct Generated {
    dir: PathBuf,
    config: SynthConfig,
}

/// One cohort shared by the tests of this file (generated once).
fn cohort() -> &'static Generated {
    static G: OnceLock<Generated> = OnceLock::new();
    G.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let config = small_config(7, 3, 0.0);
        generate(&dir, &config, &|_| {}).unwrap();
        Generated { dir, config }
    })
}

fn files_under(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(
                    p.strip_prefix(root).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let cfg = small_config(11, 2, 0.5);
    let (a, b, c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    generate(a.path(), &cfg, &|_| {}).unwrap();
    generate(b.path(), &cfg, &|_| {}).unwrap();
    let fa = files_under(a.path());
    let fb = files_under(b.path());
    assert!(
        fa.keys()
            .filter(|p| p.extension().is_some_and(|e| e == "dcm"))
            .count()
            > 20
    );
    assert_eq!(fa.keys().collect::<Vec<_>>(), fb.keys().collect::<Vec<_>>());
    for (p, bytes) in &fa {
        assert!(
            bytes == &fb[p],
            "{} differs between two runs with the same seed",
            p.display()
        );
    }
    let other = SynthConfig {
        seed: 12,
        ..cfg.clone()
    };
    generate(c.path(), &other, &|_| {}).unwrap();
    let fc = files_under(c.path());
    assert_ne!(
        fa.get(Path::new("train.csv")),
        fc.get(Path::new("train.csv"))
    );
    // A rerun of the same command resumes: nothing is rewritten, and a different config is refused.
    let s = generate(a.path(), &cfg, &|_| {}).unwrap();
    assert_eq!(s.studies_skipped_done, 2);
    assert!(generate(a.path(), &other, &|_| {}).is_err());
}

#[test]
fn every_file_reads_back_through_discus_data_with_the_rendered_pixels() {
    let g = cohort();
    let plan = CohortPlan::new(&g.config).unwrap();
    let mut n = 0;
    for st in &plan.studies {
        for (si, s) in st.series.iter().enumerate() {
            for (k, geom) in s.slices.iter().enumerate() {
                let inst = s.instance_numbers[k];
                let path = g
                    .dir
                    .join("train_images")
                    .join(st.study.to_string())
                    .join(s.series_id.to_string())
                    .join(format!("{inst}.dcm"));
                let h = read_header(&path).unwrap();
                assert_eq!(h.study_instance_uid, st.study.to_string());
                assert_eq!(h.series_instance_uid, s.series_id.to_string());
                assert_eq!(h.instance_number, Some(inst as i64));
                assert_eq!(h.sop_class_uid, "1.2.840.10008.5.1.4.1.1.4");
                assert_eq!(h.transfer_syntax, "1.2.840.10008.1.2.1");
                assert_eq!((h.rows, h.columns), (geom.rows, geom.cols));
                assert_eq!(h.bits_allocated, 16);
                assert_eq!(h.photometric_interpretation.as_deref(), Some("MONOCHROME2"));
                assert_eq!(h.series_description.as_deref(), Some(s.kind.as_str()));
                let ipp = h.image_position_patient.unwrap();
                for i in 0..3 {
                    assert!(
                        (ipp[i] - geom.ipp[i]).abs() < 1e-4,
                        "{ipp:?} vs {:?}",
                        geom.ipp
                    );
                }
                let iop = h.image_orientation_patient.unwrap();
                for i in 0..3 {
                    assert!((iop[i] - geom.row_dir[i]).abs() < 1e-6);
                    assert!((iop[3 + i] - geom.col_dir[i]).abs() < 1e-6);
                }
                let px = decode_pixels(&path).unwrap();
                let want = render_slice(
                    &st.anatomy,
                    geom,
                    &st.signals[si],
                    slice_noise_seed(&g.config, st, si, k),
                );
                assert_eq!(px.values, discus_data::dicom::PixelValues::U16(want));
                n += 1;
            }
        }
    }
    assert!(n > 30);
}

#[test]
fn pydicom_reads_the_same_pixels_and_headers() {
    let g = cohort();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    // Pinned: pydicom 3.0.2 is the version whose test files are in shared/data; numpy 2.4.6 is the
    // version the other pydicom cross-check uses (a current release for this Python).
    let out = std::process::Command::new(root.join("scripts/pyvenv"))
        .args(["synth-check", "pydicom==3.0.2", "numpy==2.4.6"])
        .output()
        .unwrap();
    if out.status.code() == Some(3) {
        discus_core::crosscheck::skip(String::from_utf8_lossy(&out.stderr));
        return;
    }
    assert!(
        out.status.success(),
        "pyvenv failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let python = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let mut files: Vec<PathBuf> = files_under(&g.dir.join("train_images"))
        .into_keys()
        .map(|p| g.dir.join("train_images").join(p))
        .collect();
    files.sort();
    let out = std::process::Command::new(&python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/pydicom_check.py"))
        .args(&files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut seen = 0;
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let path = PathBuf::from(v["path"].as_str().unwrap());
        let h = read_header(&path).unwrap();
        let px = decode_pixels(&path).unwrap();
        let vals = px.values.to_i64_vec();
        let sum: i64 = vals.iter().sum();
        let wsum: i64 = vals
            .iter()
            .enumerate()
            .map(|(i, v)| v * ((i as i64 % 1000) + 1))
            .sum();
        assert_eq!(v["sum"].as_i64().unwrap(), sum, "{}", path.display());
        assert_eq!(v["wsum"].as_i64().unwrap(), wsum, "{}", path.display());
        assert_eq!(v["study_uid"].as_str().unwrap(), h.study_instance_uid);
        assert_eq!(v["patient_id"].as_str().unwrap(), h.study_instance_uid);
        assert_eq!(v["series_uid"].as_str().unwrap(), h.series_instance_uid);
        assert_eq!(v["instance"].as_i64(), h.instance_number);
        assert_eq!(v["rows"].as_u64().unwrap(), h.rows as u64);
        let ipp: Vec<f64> = v["ipp"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        assert_eq!(ipp, h.image_position_patient.unwrap().to_vec());
        // The file name is the instance number.
        let stem: i64 = path.file_stem().unwrap().to_str().unwrap().parse().unwrap();
        assert_eq!(Some(stem), h.instance_number);
        seen += 1;
    }
    assert_eq!(seen, files.len());
}

/// Maps each label point back to patient space through the DICOM headers (discus-data's geometry)
/// and checks the tissue model there: spinal points in the dural sac, foraminal points in the foramen
/// (fat or the exiting root), subarticular points in the lateral recess (fat or the traversing root).
#[test]
fn label_points_land_on_the_graded_structure() {
    let g = cohort();
    let plan = CohortPlan::new(&g.config).unwrap();
    let truth: Truth =
        serde_json::from_slice(&std::fs::read(g.dir.join("truth.json")).unwrap()).unwrap();
    let pts = read_coordinates(&g.dir.join("train_label_coordinates.csv"))
        .unwrap()
        .strict()
        .unwrap();
    let mut checked = 0;
    for st in &plan.studies {
        let st_truth = truth
            .studies
            .iter()
            .find(|t| t.study_id == st.study)
            .unwrap();
        for tp in &st_truth.truth_points {
            // The truth point through the written file's geometry.
            let path = g
                .dir
                .join("train_images")
                .join(st.study.to_string())
                .join(tp.series_id.to_string())
                .join(format!("{}.dcm", tp.instance_number));
            let geom = SliceGeometry::from_header(&read_header(&path).unwrap()).unwrap();
            let p = geom.pixel_to_patient(tp.x, tp.y);
            let plane = geom.patient_to_pixel(tp.patient_mm);
            assert!(
                plane.distance_mm.abs() < 3.0,
                "{tp:?}: {} mm off the slice",
                plane.distance_mm
            );
            let in_plane = discus_synth::anatomy::SpineCoord {
                ..st.anatomy.to_spine(tp.patient_mm)
            };
            let t = st.anatomy.tissue_at(tp.patient_mm);
            let ok = match tp.condition.group() {
                ConditionGroup::Spinal => matches!(t, Tissue::Csf | Tissue::Nerve),
                ConditionGroup::Foraminal => {
                    matches!(t, Tissue::Fat | Tissue::Nerve)
                        && in_plane.x.abs() > st.anatomy.canal_w
                        && in_plane.d > 0.0
                }
                ConditionGroup::Subarticular => {
                    matches!(t, Tissue::Fat | Tissue::Nerve)
                        && in_plane.x.abs() > st.anatomy.sac_rx
                        && in_plane.x.abs() < st.anatomy.canal_w
                }
            };
            assert!(
                ok,
                "{:?} {:?}: tissue {t:?} at {in_plane:?}",
                tp.condition, tp.level
            );
            // The in-plane pixel maps back to the truth point's in-plane position.
            let back = geom.patient_to_pixel(p);
            assert!((back.x - plane.x).abs() < 1e-6 && (back.y - plane.y).abs() < 1e-6);
            // Reader 0's point (train_label_coordinates.csv) is within a few mm of the truth.
            let rp = pts
                .iter()
                .find(|q| q.study == st.study && q.condition == tp.condition && q.level == tp.level)
                .unwrap();
            let rpath = path.with_file_name(format!("{}.dcm", rp.instance));
            let rgeom = SliceGeometry::from_header(&read_header(&rpath).unwrap()).unwrap();
            let rq = rgeom.pixel_to_patient(rp.x, rp.y);
            let d = ((rq[0] - tp.patient_mm[0]).powi(2)
                + (rq[1] - tp.patient_mm[1]).powi(2)
                + (rq[2] - tp.patient_mm[2]).powi(2))
            .sqrt();
            assert!(d < 12.0, "reader point {d:.1} mm from the truth");
            checked += 1;
        }
    }
    assert!(checked >= 60, "{checked}");
}

#[test]
fn csvs_are_lumbardisc_shaped_and_agree_with_the_truth() {
    let g = cohort();
    let train = read_train(&g.dir.join("train.csv")).unwrap();
    assert_eq!(train.line_ending, discus_core::formats::LineEnding::Lf);
    let train = train.strict().unwrap();
    let desc = read_series_descriptions(&g.dir.join("train_series_descriptions.csv"))
        .unwrap()
        .strict()
        .unwrap();
    let truth: Truth =
        serde_json::from_slice(&std::fs::read(g.dir.join("truth.json")).unwrap()).unwrap();
    assert_eq!(train.len(), 3);
    assert_eq!(desc.len(), 9);
    for (st, row) in truth.studies.iter().zip(&train) {
        assert_eq!(st.study_id, row.study);
        // train.csv is reader 0's reads.
        for c in discus_core::LabelColumn::all() {
            assert_eq!(st.reads[0][&c.name()], row.grades[c.index()]);
        }
        // Every study has one series of each kind, and its described kind.
        let kinds: BTreeSet<SeriesKind> = desc
            .iter()
            .filter(|d| d.study == st.study_id)
            .map(|d| d.kind)
            .collect();
        assert_eq!(kinds.len(), 3);
    }
    for r in 0..3 {
        let p = g.dir.join(format!("readers/{r}/train.csv"));
        assert_eq!(read_train(&p).unwrap().strict().unwrap().len(), 3);
    }
    // Study ids in the real range, some above 2^31 is likely but not guaranteed with 3 studies.
    assert!(train
        .iter()
        .all(|r| r.study.0 >= 4_000_000 && r.study.0 <= u32::MAX as u64));
}

/// `discus validate` on a cohort with a quirk in every study finds each injected quirk, and every
/// warning or error it reports is one the truth file expects (injected, or natural to the layout).
#[test]
fn validate_finds_exactly_the_injected_quirks() {
    let cfg = SynthConfig {
        matrix_scale: 0.15,
        // Masks beside train_images must not disturb validate.
        masks: true,
        ..small_config(5, 14, 1.0)
    };
    validate_finds_exactly(&cfg);
}

/// The same on a cohort holding both transitional types (a sacralised L5 and six lumbar
/// vertebrae): the first seed from 1 whose 12-study plan has both.
#[test]
fn validate_finds_exactly_the_injected_quirks_with_transitional_vertebrae() {
    use discus_synth::anatomy::Transitional;
    let cfg = (1..2000u64)
        .map(|seed| SynthConfig {
            matrix_scale: 0.15,
            ..small_config(seed, 12, 1.0)
        })
        .find(|cfg| {
            let plan = discus_synth::cohort::CohortPlan::new(cfg).unwrap();
            let has = |t: Transitional| plan.studies.iter().any(|s| s.anatomy.transitional == t);
            has(Transitional::SacralisedL5) && has(Transitional::SixLumbar)
        })
        .unwrap();
    validate_finds_exactly(&cfg);
}

fn validate_finds_exactly(cfg: &SynthConfig) {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), cfg, &|_| {}).unwrap();
    let truth: Truth =
        serde_json::from_slice(&std::fs::read(dir.path().join("truth.json")).unwrap()).unwrap();
    assert_eq!(truth.quirks.len(), cfg.studies);
    let report = discus_data::validate::validate(
        dir.path(),
        &discus_data::validate::ValidateOptions {
            index_path: Some(dir.path().join("index.sqlite")),
        },
        &|_| {},
    )
    .unwrap();
    let found: BTreeSet<(String, u64)> = report
        .findings
        .iter()
        .filter_map(|f| Some((f.kind.as_str().to_string(), f.study?.0)))
        .collect();
    let mut expected: BTreeSet<(String, u64)> = BTreeSet::new();
    for q in &truth.quirks {
        assert!(
            found.contains(&(q.kind.as_str().to_string(), q.study_id.0)),
            "injected {} ({}) in study {} not found; found: {found:?}",
            q.injected,
            q.kind,
            q.study_id
        );
        for k in &q.expected_findings {
            expected.insert((k.as_str().to_string(), q.study_id.0));
        }
    }
    for n in &truth.natural_findings {
        expected.insert((n.kind.as_str().to_string(), n.study_id.0));
    }
    for f in &report.findings {
        let key = (
            f.kind.as_str().to_string(),
            f.study.map(|s| s.0).unwrap_or(0),
        );
        assert!(
            expected.contains(&key),
            "unexpected finding {:?} {:?}: {}",
            f.kind,
            f.study,
            f.message
        );
    }
}

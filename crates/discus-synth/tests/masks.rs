//! `--masks` and `--rescan`: label volumes aligned with the DICOM series (checked against nibabel and
//! pydicom), label points inside their labelled structure, and rescans linking the same patients.

use discus_core::layout::Layout;
use discus_core::{ConditionGroup, SeriesKind};
use discus_synth::cohort::{generate, CohortPlan, SynthConfig, Truth};
use discus_synth::masks::{foramen_label, label_table, LABEL_SAC};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn config() -> SynthConfig {
    SynthConfig {
        studies: 2,
        sites: 3,
        seed: 21,
        readers: 1,
        quirk_rate: 0.0,
        matrix_scale: 0.3,
        rescan: true,
        masks: true,
    }
}

fn cohort() -> &'static PathBuf {
    static G: OnceLock<PathBuf> = OnceLock::new();
    G.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        generate(&dir, &config(), &|_| {}).unwrap();
        dir
    })
}

/// A NIfTI-1 label volume read back by hand: dims and voxels.
fn read_nifti(path: &Path) -> ([usize; 3], Vec<u8>) {
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_end(&mut raw)
        .unwrap();
    let i16at = |o: usize| i16::from_le_bytes([raw[o], raw[o + 1]]) as usize;
    let dims = [i16at(42), i16at(44), i16at(46)];
    let off = f32::from_le_bytes(raw[108..112].try_into().unwrap()) as usize;
    (dims, raw[off..].to_vec())
}

#[test]
fn nibabel_opens_every_mask_with_the_affine_of_its_dicom_series() {
    let root = cohort();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = std::process::Command::new(repo.join("scripts/pyvenv"))
        .args([
            "nifti-check",
            "nibabel==5.3.2",
            "pydicom==3.0.2",
            "numpy==2.4.6",
        ])
        .output()
        .unwrap();
    if out.status.code() == Some(3) {
        discus_core::crosscheck::skip(String::from_utf8_lossy(&out.stderr));
        return;
    }
    assert!(
        out.status.success(),
        "pyvenv: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let python = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let out = std::process::Command::new(&python)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/nifti_check.py"))
        .arg(root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let truth: Truth =
        serde_json::from_slice(&std::fs::read(root.join("truth.json")).unwrap()).unwrap();
    let n_series: usize = truth.studies.iter().map(|s| s.series.len()).sum();
    let mut seen = 0;
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let path = v["path"].as_str().unwrap();
        assert_eq!(v["shape"], v["dicom_shape"], "{path}");
        assert_eq!(v["dtype"], "uint8", "{path}");
        assert_eq!(v["sform_code"], 1);
        assert_eq!(v["qform_code"], 1);
        let m = |k: &str| -> Vec<f64> {
            v[k].as_array()
                .unwrap()
                .iter()
                .flat_map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()))
                .collect()
        };
        let dicom = m("dicom");
        // nibabel's affine is the sform, exact to float32. The qform's quaternion (b, c, d) is stored
        // in float32 too and its first component is rebuilt as `a = sqrt(1 - b2 - c2 - d2)`, which
        // nibabel clips to 0 below float32 precision: rotations within ~0.1 degree of 180 degrees
        // (an axial stack barely twisted: LPS -> RAS turns x and y round) lose that last bit of
        // rotation, so the qform gets 1e-4 mm only where `a` is well defined.
        // Where `a` is defined, its float32 rounding error (~1.2e-7 / a) turns the rotation by about
        // twice that, which moves a corner up to ~400 mm from the origin by 400 * 2.4e-7 / a mm.
        let qw = v["qform_w"].as_f64().unwrap();
        let qtol = if qw > 0.02 {
            1e-4 + 400.0 * 2.4e-7 / qw
        } else {
            0.5
        };
        for (k, tol) in [("affine", 1e-4), ("sform", 1e-4), ("qform", qtol)] {
            let a = m(k);
            // Compare where the affines put the corners of the volume (mm), not just the entries.
            let shape: Vec<f64> = v["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() - 1.0)
                .collect();
            for corner in 0..8 {
                let ijk = [
                    if corner & 1 == 1 { shape[0] } else { 0.0 },
                    if corner & 2 == 2 { shape[1] } else { 0.0 },
                    if corner & 4 == 4 { shape[2] } else { 0.0 },
                ];
                for r in 0..3 {
                    let p = |x: &[f64]| {
                        x[4 * r] * ijk[0]
                            + x[4 * r + 1] * ijk[1]
                            + x[4 * r + 2] * ijk[2]
                            + x[4 * r + 3]
                    };
                    assert!(
                        (p(&a) - p(&dicom)).abs() < tol,
                        "{path} {k}: corner {ijk:?} row {r}: {} vs DICOM {}",
                        p(&a),
                        p(&dicom)
                    );
                }
            }
        }
        let labels: Vec<u64> = v["labels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap())
            .collect();
        let known: Vec<u64> = label_table().iter().map(|e| e.value as u64).collect();
        assert!(
            labels.iter().all(|l| known.contains(l)),
            "{path}: {labels:?}"
        );
        assert!(
            labels.contains(&(LABEL_SAC as u64)),
            "{path}: no sac in {labels:?}"
        );
        seen += 1;
    }
    // One mask per series, more for axial series made of several angled stacks.
    assert!(seen >= n_series, "{seen} masks for {n_series} series");
}

/// Every spinal label point lies in the thecal sac of the sagittal T2 mask; every foraminal one in
/// the foramen of its level and side on the sagittal T1 mask (within a pixel).
#[test]
fn label_points_fall_in_their_labelled_structures() {
    let root = cohort();
    let plan = CohortPlan::new(&config()).unwrap();
    let layout = Layout::new(root);
    let mut checked = 0;
    for st in &plan.studies {
        for tp in &st.truth_points {
            let s = st
                .series
                .iter()
                .find(|s| s.series_id == tp.series_id)
                .unwrap();
            let group = tp.condition.group();
            let want = match (group, s.kind) {
                (ConditionGroup::Spinal, SeriesKind::SagittalT2Stir) => LABEL_SAC,
                (ConditionGroup::Foraminal, SeriesKind::SagittalT1) => {
                    foramen_label(tp.level, tp.condition.side().unwrap())
                }
                _ => continue,
            };
            let (dims, data) = read_nifti(&layout.mask(st.study, &s.series_id.to_string()));
            let k = s
                .instance_numbers
                .iter()
                .position(|&n| n == tp.instance_number)
                .unwrap();
            let (x, y) = (tp.x.round() as i64, tp.y.round() as i64);
            let mut found = false;
            for dy in -1..=1 {
                for dx in -1..=1 {
                    let (i, j) = ((x + dx) as usize, (y + dy) as usize);
                    if i < dims[0] && j < dims[1] && data[i + dims[0] * (j + dims[1] * k)] == want {
                        found = true;
                    }
                }
            }
            assert!(
                found,
                "study {} {:?} {:?}: label {want} not at the point",
                st.study, tp.condition, tp.level
            );
            checked += 1;
        }
    }
    assert!(checked >= 4 * 15, "{checked}");
}

#[test]
fn rescans_are_the_same_patients_at_another_site_with_new_ids() {
    let root = cohort();
    let truth: Truth =
        serde_json::from_slice(&std::fs::read(root.join("truth.json")).unwrap()).unwrap();
    assert_eq!(truth.studies.len(), 4);
    assert_eq!(truth.sites.len(), 3);
    for s in &truth.studies {
        assert!(truth
            .sites
            .iter()
            .any(|p| p.profile == s.site_profile && p.name == s.site));
    }
    let second: Vec<_> = truth
        .studies
        .iter()
        .filter(|s| s.rescan_of.is_some())
        .collect();
    assert_eq!(second.len(), 2);
    for r in second {
        let first = truth
            .studies
            .iter()
            .find(|s| Some(s.study_id) == r.rescan_of)
            .unwrap();
        assert_eq!(first.patient, r.patient);
        assert_ne!(first.study_id, r.study_id);
        assert_ne!(first.site, r.site, "a rescan is at another site");
        assert_eq!(first.degrees, r.degrees, "same patient, same degeneration");
        for (col, g) in &first.true_grades {
            if let (Some(a), Some(b)) = (g, r.true_grades[col]) {
                assert_eq!(*a, b, "{col}");
            }
        }
        // New series ids too, and the images exist under the new study id.
        for s in &r.series {
            assert!(first.series.iter().all(|f| f.series_id != s.series_id));
        }
        assert!(Layout::new(root)
            .study(discus_core::layout::Split::Train, r.study_id)
            .is_dir());
    }
}

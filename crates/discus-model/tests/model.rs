//! discus-model end to end on a tiny synthetic cohort (generated once, matrix scale 0.25):
//! training overfits, weights save and reload to identical outputs, checkpoints resume, a missing
//! series falls back as documented, bad model folders give clear errors, and the licence travels.

use discus_core::governance::{Licence, Use};
use discus_core::{Condition, LabelColumn, StudyId};
use discus_data::dataset::Dataset;
use discus_model::predict::{ensemble, predict_study, PointSource};
use discus_model::{train, Model, ModelError};
use std::path::Path;

mod common;
use common::{fixture, small_request, studies};

fn values<const D: usize>(t: burn::tensor::Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

/// The outputs of `a`'s and `b`'s three localisers (canal, foraminal, subarticular) on the same
/// random inputs, named.
fn localiser_outputs(a: &Model, b: &Model) -> [(&'static str, Vec<f32>, Vec<f32>); 3] {
    use burn::tensor::{Distribution, Tensor};
    let d = a.device.clone();
    let pre = a.card.preprocessing;
    let g = pre.localiser_grid;
    let x = Tensor::<4>::random(
        [2, a.card.architecture.localiser_slices, g, g],
        Distribution::Uniform(0.0, 1.0),
        &d,
    );
    let canal = (
        "canal localiser",
        values(a.net.localiser.forward(x.clone())),
        values(b.net.localiser.forward(x)),
    );
    let s = pre.point_spec();
    let x = Tensor::<4>::random(
        [2, s.slices, s.rows, s.columns],
        Distribution::Uniform(0.0, 1.0),
        &d,
    );
    [
        canal,
        (
            "foraminal localiser",
            values(a.net.foraminal_localiser.forward(x.clone())),
            values(b.net.foraminal_localiser.forward(x.clone())),
        ),
        (
            "subarticular localiser",
            values(a.net.subarticular_localiser.forward(x.clone())),
            values(b.net.subarticular_localiser.forward(x)),
        ),
    ]
}

/// Asserts that `b`'s three localisers give exactly `a`'s outputs on random inputs.
fn assert_same_localisers(a: &Model, b: &Model) {
    for (name, x, y) in localiser_outputs(a, b) {
        assert_eq!(x, y, "{name}");
    }
}

#[test]
fn fused_inference_predicts_what_burns_networks_predict() {
    // discus_model::fused runs the flex device's inference on its own kernels; burn's networks
    // are the independent reference. Whole studies: the three localisers, the point decoding and
    // the three graders. The networks agree to float rounding (src/fused.rs's tests, 2e-5 of the
    // largest output); through a study that rounding moves a decoded point by a fraction of a
    // pixel (up to 5e-5 here), the crop is resampled there, and a probability moves by up to about
    // 1e-4 (7e-5 here).
    let f = fixture();
    let ds = Dataset::open(&f.cohort).unwrap();
    let fused = Model::load(&f.model).unwrap();
    assert!(fused.fused().is_some(), "the flex device runs fused");
    let plain = Model::load(&f.model).unwrap().with_burn_inference();
    assert!(plain.fused().is_none());
    // A shape the fused kernels refuse falls back to burn: then every probability would equal
    // burn's to the bit, and this comparison would compare burn with itself.
    let mut differ = 0;
    for &study in studies(&ds).iter().take(3) {
        let a = predict_study(&fused, &ds, study).unwrap();
        let b = predict_study(&plain, &ds, study).unwrap();
        // Each prediction records what ran it.
        assert!(
            a.engine.starts_with("discus fused CPU kernels ("),
            "{}",
            a.engine
        );
        assert_eq!(b.engine, "burn flex");
        assert_eq!(a.findings.len(), b.findings.len());
        for (x, y) in a.findings.iter().zip(&b.findings) {
            differ += usize::from(x.probabilities != y.probabilities);
            for i in 0..3 {
                assert!(
                    (x.probabilities[i] - y.probabilities[i]).abs() < 2e-4,
                    "{}: fused {:?}, burn {:?}",
                    x.row_id,
                    x.probabilities,
                    y.probabilities
                );
            }
            assert_eq!(x.point_source, y.point_source, "{}", x.row_id);
            match (&x.point, &y.point) {
                (Some(p), Some(q)) => {
                    assert_eq!(
                        (p.series, p.instance),
                        (q.series, q.instance),
                        "{}",
                        x.row_id
                    );
                    assert!(
                        (p.x - q.x).abs() < 1e-3 && (p.y - q.y).abs() < 1e-3,
                        "{}: fused point ({}, {}), burn ({}, {})",
                        x.row_id,
                        p.x,
                        p.y,
                        q.x,
                        q.y
                    );
                }
                (None, None) => {}
                _ => panic!("{}: a point on one side only", x.row_id),
            }
        }
    }
    assert!(
        differ > 0,
        "every probability equals burn's to the bit: the fused kernels did not run"
    );
}

#[test]
fn a_tiny_model_overfits_a_few_studies() {
    let f = fixture();
    let (l0, g0) = f.first_loss;
    let (l1, g1) = f.last_loss;
    println!("localiser {l0:.3} -> {l1:.3}, grader {g0:.3} -> {g1:.3}");
    // The spatial cross-entropy cannot fall below the entropy of the Gaussian target (sigma 1 cell);
    // what is left above it (the KL divergence) must shrink by a large factor.
    let t = discus_model::heatmap::gaussian_target(32, 32, 15.5, 15.5, 1.0);
    let h: f64 = t
        .iter()
        .filter(|v| **v > 0.0)
        .map(|v| -(*v as f64) * (*v as f64).ln())
        .sum();
    println!("target entropy {h:.3}");
    assert!(
        l1 - h < (l0 - h) / 4.0,
        "localiser loss {l0} -> {l1} (floor {h})"
    );
    assert!(g1 < g0 / 3.0, "grader loss {g0} -> {g1}");
}

#[test]
fn the_model_folder_has_its_card_and_reloads_to_identical_outputs() {
    let f = fixture();
    let card = std::fs::read_to_string(f.model.join("model.toml")).unwrap();
    for key in [
        "format = \"discus-model\"",
        &format!("format_version = {}", discus_model::FORMAT_VERSION),
        "[architecture]",
        "[preprocessing",
        "[provenance",
        "permitted_uses",
        "hardware",
    ] {
        assert!(card.contains(key), "model.toml lacks {key}:\n{card}");
    }
    let ds = Dataset::open(&f.cohort).unwrap();
    let study = studies(&ds)[0];
    let a = Model::load(&f.model).unwrap();
    let pa = predict_study(&a, &ds, study).unwrap();
    // Save a copy and load it again: the same bytes in, the same probabilities out.
    let copy = tempfile::tempdir().unwrap();
    a.save(copy.path()).unwrap();
    let b = Model::load(copy.path()).unwrap();
    let pb = predict_study(&b, &ds, study).unwrap();
    assert_eq!(pa, pb);
    assert_eq!(pa.findings.len(), 25);
    for (f, col) in pa.findings.iter().zip(LabelColumn::all()) {
        assert_eq!((f.condition, f.level), (col.condition, col.level));
        let s: f64 = f.probabilities.iter().sum();
        assert!(
            (s - 1.0).abs() < 1e-4,
            "{}: {:?}",
            f.row_id,
            f.probabilities
        );
        assert!(f.point.is_some(), "{} has no point", f.row_id);
        assert!(f.fallback.is_none(), "{}: {:?}", f.row_id, f.fallback);
        // Every series is there: every point comes from a localiser's heat map.
        assert_eq!(f.point_source, PointSource::HeatMap, "{}", f.row_id);
    }
}

#[test]
fn the_overfitted_localiser_finds_the_canal_points() {
    let f = fixture();
    let ds = Dataset::open(&f.cohort).unwrap();
    let model = Model::load(&f.model).unwrap();
    let mut errs = Vec::new();
    for study in studies(&ds) {
        let p = predict_study(&model, &ds, study).unwrap();
        let pts = ds.points(study).unwrap();
        for fi in p
            .findings
            .iter()
            .filter(|f| f.condition == Condition::SpinalCanalStenosis)
        {
            let truth = pts
                .iter()
                .find(|q| q.condition == fi.condition && q.level == fi.level)
                .unwrap();
            let series = ds.find_series(study, truth.series).unwrap().unwrap();
            let stacks = ds.stacks(&series).unwrap();
            let (si, k) = stacks
                .iter()
                .enumerate()
                .find_map(|(i, s)| s.find_instance(truth.instance as i64).map(|k| (i, k)))
                .unwrap();
            let t = stacks[si].pixel_to_patient(k, truth.x, truth.y);
            let g = fi.point.as_ref().unwrap().patient_mm;
            // In-plane error (the truth may lie on a neighbouring slice of the mid-sagittal one).
            let n = stacks[si].normal;
            let d: Vec<f64> = (0..3).map(|i| g[i] - t[i]).collect();
            let along: f64 = (0..3).map(|i| d[i] * n[i]).sum();
            let e = (d.iter().map(|v| v * v).sum::<f64>() - along * along)
                .max(0.0)
                .sqrt();
            errs.push(e);
        }
    }
    errs.sort_by(f64::total_cmp);
    let median = errs[errs.len() / 2];
    println!("canal point errors (mm): {errs:?}");
    // The grid cell is 9 mm here; an overfitted localiser lands within about a cell.
    assert!(median < 9.0, "median canal error {median} mm");
}

#[test]
fn training_is_deterministic_and_resumes_from_its_checkpoint() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let ra = train(&small_request(&f.cohort, &a, 2), &|_| {}).unwrap();
    let ra2 = train(
        &small_request(&f.cohort, &dir.path().join("a2"), 2),
        &|_| {},
    )
    .unwrap();
    assert_eq!(
        ra.card.metrics, ra2.card.metrics,
        "same seed, different training"
    );
    // Same weights: identical outputs (the safetensors header's key order may differ, not the values).
    let ds = Dataset::open(&f.cohort).unwrap();
    let study = studies(&ds)[2];
    let pa = predict_study(&Model::load(&a).unwrap(), &ds, study).unwrap();
    let pa2 = predict_study(&Model::load(&dir.path().join("a2")).unwrap(), &ds, study).unwrap();
    assert_eq!(pa, pa2, "same seed, different weights");
    // b: one epoch, then the same request with two epochs resumes after the first, also when it
    // names the dataset another way (here through a symbolic link).
    train(&small_request(&f.cohort, &b, 1), &|_| {}).unwrap();
    let link = dir.path().join("cohort-link");
    std::os::unix::fs::symlink(&f.cohort, &link).unwrap();
    let rb = train(&small_request(&link, &b, 2), &|_| {}).unwrap();
    assert_eq!(rb.resumed_after, 1);
    assert_eq!(rb.card.metrics.len(), 2);
    // Both epochs are the uninterrupted run's: the checkpoint restores the weights, Adam's state
    // and the parameter ids that state is keyed by (before the ids were restored, Adam restarted
    // from empty moments and the resumed epoch 2 was 0.3 % off, 14 % with normalised graders).
    // The run `b` (after `a` and `a2` in the same process) differs from `a` in the last bit of
    // epoch 1's point loss (12.172722816467285 vs ...283; `a` and `a2` agree exactly, above), so
    // the losses are compared to 1e-12 relative.
    for (m, n) in rb.card.metrics.iter().zip(&ra.card.metrics) {
        assert_eq!(m.epoch, n.epoch);
        for (p, q) in [
            (m.localiser_loss, n.localiser_loss),
            (m.grader_loss, n.grader_loss),
            (m.point_loss, n.point_loss),
        ] {
            assert!((p - q).abs() <= 1e-12 * q.abs().max(1.0), "{m:?} vs {n:?}");
        }
    }
    // A different request in the same folder is refused.
    let mut other = small_request(&f.cohort, &b, 3);
    other.seed = 99;
    let e = train(&other, &|_| {}).unwrap_err();
    assert!(e.to_string().contains("different training request"), "{e}");
}

#[test]
fn a_study_missing_a_series_falls_back_and_says_so() {
    let f = fixture();
    // A copy of the cohort without one study's sagittal T1 and axial series.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("c");
    copy_dir(&f.cohort, &root);
    std::fs::remove_dir_all(root.join(".discus")).ok();
    let ds = Dataset::open(&root).unwrap();
    let study = studies(&ds)[1];
    for s in ds.series(study).unwrap() {
        if s.kind != Some(discus_core::SeriesKind::SagittalT2Stir) {
            std::fs::remove_dir_all(
                ds.layout()
                    .root()
                    .join("train_images")
                    .join(study.to_string())
                    .join(s.series.to_string()),
            )
            .unwrap();
        }
    }
    drop(ds);
    let ds = Dataset::open(&root).unwrap();
    let model = Model::load(&f.model).unwrap();
    let p = predict_study(&model, &ds, study).unwrap();
    assert_eq!(p.findings.len(), 25);
    for fi in &p.findings {
        match fi.condition.group() {
            discus_core::ConditionGroup::Spinal => assert!(fi.fallback.is_none()),
            discus_core::ConditionGroup::Foraminal => {
                let fb = fi.fallback.as_deref().unwrap();
                assert!(fb.contains("no sagittal T1"), "{fb}");
                assert!(fi.point.is_some());
                assert_eq!(fi.point_source, PointSource::CanalOffset);
            }
            discus_core::ConditionGroup::Subarticular => {
                let fb = fi.fallback.as_deref().unwrap();
                assert!(fb.contains("Axial T2") && fb.contains("prior"), "{fb}");
                assert!(fi.point.is_none());
                assert_eq!(fi.point_source, PointSource::None);
                let col = LabelColumn {
                    condition: fi.condition,
                    level: fi.level,
                };
                assert_eq!(fi.probabilities, model.card.prior_of(col));
            }
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn corrupted_and_foreign_model_folders_give_clear_errors() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("m");
    copy_dir(&f.model, &bad);
    std::fs::remove_dir_all(bad.join("checkpoint")).ok();
    // Truncated weights.
    let w = std::fs::read(bad.join("weights.safetensors")).unwrap();
    std::fs::write(bad.join("weights.safetensors"), &w[..w.len() / 2]).unwrap();
    let e = Model::load(&bad)
        .err()
        .expect("truncated weights must not load");
    assert!(matches!(e, ModelError::BadModel { .. }), "{e}");
    assert!(e.to_string().contains("weights.safetensors"), "{e}");
    // Garbage weights.
    std::fs::write(
        bad.join("weights.safetensors"),
        b"not a safetensors file at all",
    )
    .unwrap();
    let e = Model::load(&bad).err().unwrap();
    assert!(e.to_string().contains("corrupted or truncated"), "{e}");
    // A foreign format version.
    std::fs::write(bad.join("weights.safetensors"), &w).unwrap();
    let card = std::fs::read_to_string(bad.join("model.toml")).unwrap();
    std::fs::write(
        bad.join("model.toml"),
        card.replace(
            &format!("format_version = {}", discus_model::FORMAT_VERSION),
            "format_version = 7",
        ),
    )
    .unwrap();
    let e = Model::load(&bad).err().unwrap();
    assert!(
        e.to_string().contains("model format version Some(7)"),
        "{e}"
    );
    // Not a discus model at all.
    std::fs::write(bad.join("model.toml"), "format = \"onnx\"\n").unwrap();
    let e = Model::load(&bad).err().unwrap();
    assert!(e.to_string().contains("not a discus model"), "{e}");
    // Weights of another architecture.
    std::fs::write(
        bad.join("model.toml"),
        card.replace("localiser_width = 8", "localiser_width = 12"),
    )
    .unwrap();
    let e = Model::load(&bad).err().unwrap();
    assert!(e.to_string().contains("weights do not"), "{e}");
}

#[test]
fn a_model_carries_its_training_data_licence() {
    let f = fixture();
    let model = Model::load(&f.model).unwrap();
    // The synthetic cohort permits every use.
    model.card.provenance.check_use(Use::Commercial).unwrap();
    // A model trained on data licensed for research only refuses commercial use, with the reason.
    let mut card = model.card.clone();
    card.provenance.sources[0].licence = Licence {
        name: "research only".into(),
        url: None,
        permitted_uses: vec![Use::Research],
        citation_required: false,
        citation: None,
    };
    let e = card.provenance.check_use(Use::Commercial).unwrap_err();
    assert!(
        e.reason.contains("does not permit commercial"),
        "{}",
        e.reason
    );
    card.provenance.check_use(Use::Research).unwrap();
}

/// The labelled point of a finding in patient mm, with its series and instance.
fn label_point(
    ds: &Dataset,
    study: StudyId,
    condition: Condition,
    level: discus_core::Level,
) -> Option<([f64; 3], u64, i64)> {
    let pts = ds.points(study).unwrap();
    let q = pts
        .iter()
        .find(|q| q.condition == condition && q.level == level)?;
    let series = ds.find_series(study, q.series).unwrap()?;
    let stacks = ds.stacks(&series).unwrap();
    let (si, k) = stacks
        .iter()
        .enumerate()
        .find_map(|(i, s)| s.find_instance(q.instance as i64).map(|k| (i, k)))?;
    Some((
        stacks[si].pixel_to_patient(k, q.x, q.y),
        q.series.0,
        q.instance as i64,
    ))
}

#[test]
fn the_overfitted_point_localisers_find_foraminal_and_subarticular_points() {
    let f = fixture();
    let ds = Dataset::open(&f.cohort).unwrap();
    let model = Model::load(&f.model).unwrap();
    let (mut fo, mut su, mut offset) = (Vec::new(), Vec::new(), Vec::new());
    let (mut same_slice, mut slices) = (0, 0);
    let (mut in_window, mut right_in_window) = (0, 0);
    let (mut su_same, mut su_slices) = (0, 0);
    for study in studies(&ds) {
        let p = predict_study(&model, &ds, study).unwrap();
        let canal: Vec<[f64; 3]> = p.findings[..5]
            .iter()
            .map(|f| f.point.as_ref().unwrap().patient_mm)
            .collect();
        for fi in &p.findings {
            let group = fi.condition.group();
            if group == discus_core::ConditionGroup::Spinal {
                continue;
            }
            let Some((t, series, instance)) = label_point(&ds, study, fi.condition, fi.level)
            else {
                continue;
            };
            assert_eq!(fi.point_source, PointSource::HeatMap, "{}", fi.row_id);
            let pt = fi.point.as_ref().unwrap();
            let e = (0..3)
                .map(|i| (pt.patient_mm[i] - t[i]).powi(2))
                .sum::<f64>()
                .sqrt();
            if group == discus_core::ConditionGroup::Foraminal {
                fo.push(e);
                // The fallback's point for comparison: canal point plus the learned offset.
                let col = LabelColumn {
                    condition: fi.condition,
                    level: fi.level,
                };
                let o = model.card.offsets_mm[&col.name()];
                let c = canal[fi.level.index()];
                offset.push(
                    (0..3)
                        .map(|i| (c[i] + o[i] - t[i]).powi(2))
                        .sum::<f64>()
                        .sqrt(),
                );
                if pt.series.0 == series {
                    slices += 1;
                    same_slice += usize::from(pt.instance == instance);
                    // Was the labelled slice among the candidates (the expected point's slice
                    // and its neighbours)?
                    let sref = ds.find_series(study, pt.series).unwrap().unwrap();
                    let stacks = ds.stacks(&sref).unwrap();
                    let expected = [c[0] + o[0], c[1] + o[1], c[2] + o[2]];
                    let proj = discus_data::standardise::target_slice(expected, &stacks).unwrap();
                    let st = &stacks[proj.stack];
                    let lab = st.find_instance(instance).map(|k| k as i64);
                    let r = model.card.preprocessing.foraminal_candidates as i64;
                    let inside = lab.is_some_and(|k| (k - proj.slice as i64).abs() <= r);
                    in_window += usize::from(inside);
                    right_in_window += usize::from(inside && pt.instance == instance);
                }
            } else {
                su.push(e);
                if pt.series.0 == series {
                    su_slices += 1;
                    su_same += usize::from(pt.instance == instance);
                }
            }
        }
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (mf, ms, mo) = (med(&mut fo), med(&mut su), med(&mut offset));
    println!(
        "foraminal {mf:.1} mm (offset fallback {mo:.1} mm), subarticular {ms:.1} mm; \
         foraminal slice right {same_slice}/{slices}; labelled slice among the candidates \
         {in_window}/{slices}, right when it is {right_in_window}/{in_window}; \
         subarticular slice right {su_same}/{su_slices}"
    );
    assert!(
        fo.len() >= 30 && su.len() >= 20,
        "{} {}",
        fo.len(),
        su.len()
    );
    // The point grid's cell is 4 mm here: an overfitted localiser lands within about a cell.
    // Slice choice: the candidates are the slice of the expected point (the canal point plus the
    // median offset learned over the training studies) and its two neighbours (2n + 1 = 3, chance
    // 1/3). The median offset misses the labelled slice by 2 slices in some findings (one median
    // offset for every patient, and a foramen's slice varies by patient), so the labelled slice is
    // not a candidate there and no localiser can pick it. With the first graders, 28 of the 40
    // findings had the labelled slice among the candidates and the localiser picked it in 25;
    // since the graders gained normalisation the fixture's training ends elsewhere (the networks
    // train together from one seed): 35 candidates, 25 right. The bar is twice chance where the
    // labelled slice is a candidate.
    assert!(
        right_in_window * 3 >= in_window * 2 && in_window * 2 >= slices,
        "{right_in_window}/{in_window} on the labelled slice when it is a candidate"
    );
    // The subarticular localiser chooses among the canal point's projected axial slice and one
    // neighbour each side (chance 1/3), trained on windows holding the labelled slice anywhere:
    // 38 of 40 right here.
    assert!(
        su_same * 4 >= su_slices * 3 && su_slices >= 20,
        "{su_same}/{su_slices} subarticular points on the labelled slice"
    );
    assert!(mf < 6.0, "median foraminal error {mf} mm");
    assert!(ms < 6.0, "median subarticular error {ms} mm");
    assert!(
        same_slice * 2 >= slices,
        "{same_slice}/{slices} on the labelled slice"
    );
}

#[test]
fn predict_applies_the_card_temperature() {
    let f = fixture();
    let ds = Dataset::open(&f.cohort).unwrap();
    let study = studies(&ds)[2];
    let mut model = Model::load(&f.model).unwrap();
    // No held-out fold in the fixture: no temperature was fitted.
    assert!(model.card.temperatures.is_empty());
    let p1 = predict_study(&model, &ds, study).unwrap();
    model.card.temperatures.insert("spinal".into(), 2.0);
    let p2 = predict_study(&model, &ds, study).unwrap();
    for (a, b) in p1.findings.iter().zip(&p2.findings) {
        if a.condition == Condition::SpinalCanalStenosis {
            // softmax(z / 2) = p^(1/2) / sum p^(1/2) for p = softmax(z).
            let s: f64 = a.probabilities.iter().map(|p| p.sqrt()).sum();
            for i in 0..3 {
                let want = a.probabilities[i].sqrt() / s;
                assert!(
                    (b.probabilities[i] - want).abs() < 1e-4,
                    "{}: {:?} vs {:?}",
                    a.row_id,
                    b.probabilities,
                    a.probabilities
                );
            }
        } else {
            assert_eq!(a.probabilities, b.probabilities);
        }
    }
}

#[test]
fn the_crop_cache_resumes_and_equals_fresh_crops() {
    use discus_model::cache::{build, CacheOptions, CropCache};
    use discus_model::prep::study_sample;
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let pre = small_request(&f.cohort, dir.path(), 1).preprocessing;
    let sources = vec![f.cohort.clone()];
    // An interrupted build: one shard of two studies, then it stops.
    let interrupted = CacheOptions {
        shard_studies: 2,
        max_new_shards: Some(1),
    };
    let b = build(&cache, &sources, &pre, interrupted, &|_, _| {}).unwrap();
    assert_eq!((b.new_shards, b.studies_cut, b.complete), (1, 2, false));
    // Resumed: only the other two studies are cut.
    let all = CacheOptions {
        shard_studies: 2,
        max_new_shards: None,
    };
    let cut = std::sync::atomic::AtomicUsize::new(0);
    let b = build(&cache, &sources, &pre, all, &|_, _| {
        cut.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    })
    .unwrap();
    assert_eq!((b.reused_shards, b.new_shards, b.studies_cut), (1, 1, 2));
    assert!(b.complete && b.invalidated.is_none());
    assert_eq!(cut.into_inner(), 2);
    // Crops from the cache equal freshly computed ones, bit for bit.
    let c = CropCache::open(&cache, &sources, &pre).unwrap();
    let cached = c.samples().unwrap();
    let ds = Dataset::open(&f.cohort).unwrap();
    let labels = ds.labels().unwrap();
    assert_eq!(cached.len(), labels.len());
    for (s, l) in cached.iter().zip(&labels) {
        let fresh = study_sample(&ds, l.study, l, &pre).unwrap();
        assert_eq!(s.study, fresh.study);
        assert_eq!(s.localiser, fresh.localiser);
        assert_eq!(s.points_mm, fresh.points_mm);
        assert_eq!(s.crops.len(), fresh.crops.len());
        for (g, ex) in &fresh.crops {
            let got = &s.crops[g];
            assert_eq!(got.len(), ex.len());
            for (a, b) in got.iter().zip(ex) {
                assert_eq!(
                    (&a.data, a.condition, a.level, a.grade),
                    (&b.data, b.condition, b.level, b.grade)
                );
            }
        }
        for (a, b) in [
            (&s.foraminal_points, &fresh.foraminal_points),
            (&s.subarticular_points, &fresh.subarticular_points),
        ] {
            assert_eq!(a.len(), b.len());
            for (x, y) in a.iter().zip(b.iter()) {
                assert_eq!(
                    (&x.data, &x.targets, x.level),
                    (&y.data, &y.targets, y.level)
                );
            }
        }
    }
    // A changed parameter invalidates it: everything is cut again.
    let mut other = pre;
    other.crop.spacing_mm = 2.5;
    let b = build(&cache, &sources, &other, all, &|_, _| {}).unwrap();
    assert_eq!(b.studies_cut, labels.len());
    assert!(b.invalidated.unwrap().contains("preprocessing"));
    let e = CropCache::open(&cache, &sources, &pre).err().unwrap();
    assert!(e.to_string().contains("manifest.json"), "{e}");
}

#[test]
fn subarticular_training_windows_hold_the_labelled_slice_anywhere() {
    // The subarticular localiser is trained to choose the axial slice: each level's example is a
    // window of 2n + 1 candidate slices around the labelled one, moved by a seeded shift. The
    // labelled candidate must be the labelled slice's crop: the same values and target as the
    // window of the labelled slice alone (n = 0, the in-plane jitter being drawn first), wherever it
    // sits in the window.
    use discus_model::prep::study_sample;
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let ds = Dataset::open(&f.cohort).unwrap();
    let labels = ds.labels().unwrap();
    let mut one = small_request(&f.cohort, dir.path(), 1).preprocessing;
    one.subarticular_candidates = 0;
    let per = one.point_spec().len();
    let mut at = std::collections::BTreeMap::<(usize, usize), usize>::new();
    let mut absent = 0;
    for n in [1usize, 2] {
        let mut pre = one;
        pre.subarticular_candidates = n;
        for l in &labels {
            let single = study_sample(&ds, l.study, l, &one).unwrap();
            let window = study_sample(&ds, l.study, l, &pre).unwrap();
            assert_eq!(
                single.subarticular_points.len(),
                window.subarticular_points.len()
            );
            for (a, b) in single
                .subarticular_points
                .iter()
                .zip(&window.subarticular_points)
            {
                assert_eq!(
                    (a.level, a.candidates, b.candidates),
                    (b.level, 1, 2 * n + 1)
                );
                assert_eq!(b.data.len(), (2 * n + 1) * per);
                for (ta, tb) in a.targets.iter().zip(&b.targets) {
                    let (Some((0, r, c)), Some((j, rb, cb))) = (ta, tb) else {
                        // A side labelled on another slice than the window's may fall outside.
                        absent += usize::from(ta.is_some() != tb.is_some());
                        continue;
                    };
                    assert!(*j <= 2 * n, "{j}");
                    assert_eq!((r, c), (rb, cb), "{:?} {:?}", l.study, a.level);
                    assert_eq!(
                        &a.data[..],
                        &b.data[j * per..(j + 1) * per],
                        "{:?} {:?}: candidate {j} is not the labelled slice",
                        l.study,
                        a.level
                    );
                    *at.entry((n, *j)).or_default() += 1;
                }
            }
        }
    }
    println!("labelled candidate by window: {at:?}; {absent} sides outside their window");
    // The labelled slice is not always the middle candidate: the localiser has to choose.
    for n in [1, 2] {
        let places = at.keys().filter(|(m, _)| *m == n).count();
        assert!(places >= 2, "window {n}: labelled slice at {at:?}");
    }
}

#[test]
fn canal_targets_decode_back_to_the_label_points() {
    // The canal localiser's target chain with the default preprocessing (64 x 64 cells of 4.5 mm):
    // label point (patient mm) -> grid (row, column) -> Gaussian target -> its log as logits (what a
    // perfect localiser outputs, up to a constant), channels shuffled -> peaks in level order ->
    // patient mm on the middle sagittal slice. The label may lie on a neighbouring slice, so the
    // error is measured in-plane; the oracle must be exact there, and name the levels right.
    use discus_model::heatmap::{decode_levels, gaussian_target};
    use discus_model::prep::{Loaded, LocaliserView, Preprocessing, StudySeries};
    let f = fixture();
    let ds = Dataset::open(&f.cohort).unwrap();
    let pre = Preprocessing::default();
    let g = pre.localiser_grid;
    let mut worst = 0.0f64;
    for study in studies(&ds) {
        let pts = ds.points(study).unwrap();
        let series = StudySeries::of(&ds, study).unwrap();
        let mut l = Loaded::new(&ds, series.t2.as_ref().unwrap()).unwrap();
        let main = l.main_stack();
        let v = l.volume(&ds, main, &pre).unwrap();
        let view = LocaliserView::new(v, &pre, study).unwrap();
        let normal = v.stack.normal;
        let labels: Vec<[f64; 3]> = discus_core::Level::ALL
            .iter()
            .map(|lv| {
                let q = pts
                    .iter()
                    .find(|q| q.condition == Condition::SpinalCanalStenosis && q.level == *lv)
                    .unwrap();
                let s = ds.find_series(study, q.series).unwrap().unwrap();
                let stacks = ds.stacks(&s).unwrap();
                let (si, k) = stacks
                    .iter()
                    .enumerate()
                    .find_map(|(i, s)| s.find_instance(q.instance as i64).map(|k| (i, k)))
                    .unwrap();
                stacks[si].pixel_to_patient(k, q.x, q.y)
            })
            .collect();
        let mut logits = Vec::new();
        for &i in &[2usize, 4, 0, 3, 1] {
            let (r, c) = view.patient_to_grid(v, labels[i]);
            assert!(r > 1.0 && c > 1.0 && r < g as f64 - 2.0 && c < g as f64 - 2.0);
            logits.extend(
                gaussian_target(g, g, r, c, pre.heat_sigma)
                    .iter()
                    .map(|t| t.max(1e-30).ln()),
            );
        }
        let peaks = decode_levels(&logits, g, g, |r, c| view.grid_to_patient(v, r, c)[2]);
        for (p, t) in peaks.iter().zip(&labels) {
            let m = view.grid_to_patient(v, p.row, p.column);
            let d: Vec<f64> = (0..3).map(|i| m[i] - t[i]).collect();
            let along: f64 = (0..3).map(|i| d[i] * normal[i]).sum();
            let e = (d.iter().map(|x| x * x).sum::<f64>() - along * along)
                .max(0.0)
                .sqrt();
            worst = worst.max(e);
        }
    }
    println!("worst in-plane oracle error {worst:.4} mm");
    assert!(worst < 0.05, "oracle canal error {worst} mm");
}

#[test]
fn the_training_schedule_and_the_localiser_shift() {
    use discus_model::train::{scheduled_rate, shifted_localiser};
    // Half cosine from 3e-3 to 5 % over 4 epochs of 10 steps: cos(pi / 2) = 0 halfway.
    assert!((scheduled_rate(3e-3, 4, 10, 0) - 3e-3).abs() < 1e-15);
    assert!((scheduled_rate(3e-3, 4, 10, 20) - 3e-3 * 0.525).abs() < 1e-15);
    assert!((scheduled_rate(3e-3, 4, 10, 40) - 1.5e-4).abs() < 1e-15);
    assert_eq!(scheduled_rate(3e-3, 0, 10, 40), 3e-3);
    // A bright pixel at row 2, column 3 of a 1-slice 8 x 8 input, shifted by (+3, -2), gain 0.5.
    let mut x = vec![0f32; 64];
    x[2 * 8 + 3] = 1.0;
    let t = [(2.0, 3.0), (3.0, 3.0), (4.0, 3.0), (5.0, 3.0), (6.0, 3.5)];
    let (y, u) = shifted_localiser(&x, &t, 1, 8, (3, -2), 0.5);
    assert_eq!(y[5 * 8 + 1], 0.5);
    assert_eq!(y.iter().filter(|v| **v != 0.0).count(), 1);
    assert_eq!(u[0], (5.0, 1.0));
    assert_eq!(u[4], (9.0, 1.5));
}

#[test]
fn graders_only_training_leaves_the_localisers_as_they_were() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    // Without an initial model there are no localisers to keep: refused before any data is read
    // (the dataset here does not exist).
    let mut r = small_request(
        &tmp.path().join("no-such-cohort"),
        &tmp.path().join("alone"),
        1,
    );
    r.graders_only = true;
    match train(&r, &|_| {}) {
        Err(ModelError::Request(m)) => assert!(m.contains("--init"), "{m}"),
        other => panic!("expected a request error, got {other:?}"),
    }
    let out = tmp.path().join("graders");
    let mut r = small_request(&f.cohort, &out, 2);
    r.init = Some(f.model.clone());
    r.graders_only = true;
    let res = train(&r, &|_| {}).unwrap();
    assert!(res.card.training.graders_only);
    // No localiser loss was computed.
    assert!(res
        .card
        .metrics
        .iter()
        .all(|m| m.localiser_loss == 0.0 && m.point_loss == 0.0));
    let (a, b) = (Model::load(&f.model).unwrap(), Model::load(&out).unwrap());
    assert_same_localisers(&a, &b);
    assert!(!graders_equal(&a, &b), "the graders did not train");
}

/// Whether `b`'s three graders give exactly `a`'s outputs on random crops.
fn graders_equal(a: &Model, b: &Model) -> bool {
    use burn::tensor::{Distribution, Tensor};
    let c = a.card.preprocessing.crop;
    let x = Tensor::<4>::random(
        [3, c.slices, c.rows, c.columns],
        Distribution::Uniform(0.0, 1.0),
        &a.device,
    );
    values(a.net.spinal.forward(x.clone())) == values(b.net.spinal.forward(x.clone()))
        && values(a.net.foraminal.forward(x.clone())) == values(b.net.foraminal.forward(x.clone()))
        && values(a.net.subarticular.forward(x.clone())) == values(b.net.subarticular.forward(x))
}

#[test]
fn localisers_only_training_leaves_the_graders_and_trains_the_localisers_as_a_joint_run() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    // Both parts alone: nothing to train, refused before any data is read.
    let mut r = small_request(&tmp.path().join("no-such-cohort"), &tmp.path().join("x"), 1);
    r.init = Some(f.model.clone());
    r.graders_only = true;
    r.localisers_only = true;
    match train(&r, &|_| {}) {
        Err(ModelError::Request(m)) => assert!(m.contains("localisers only"), "{m}"),
        other => panic!("expected a request error, got {other:?}"),
    }
    // From the fixture's model: the graders stay exactly as they were, the localisers move.
    let out = tmp.path().join("tuned");
    // A fold split holding out some but not all of the cohort's studies.
    let ids: Vec<u64> = std::fs::read_to_string(f.cohort.join("train.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect();
    let (folds, held_fold) = (2..8u64)
        .flat_map(|k| (0..k).map(move |h| (k, h)))
        .find(|(k, h)| {
            let n = ids.iter().filter(|id| *id % k == *h).count();
            n > 0 && n < ids.len()
        })
        .unwrap();
    let held_n = ids.iter().filter(|id| *id % folds == held_fold).count();
    let mut r = small_request(&f.cohort, &out, 1);
    r.init = Some(f.model.clone());
    r.localisers_only = true;
    (r.folds, r.held_fold) = (folds as usize, held_fold as usize);
    let res = train(&r, &|_| {}).unwrap();
    assert!(res.card.training.localisers_only);
    // The graders took no part, so they keep the initial model's temperatures, held-out fold or not.
    let init_card = Model::load(&f.model).unwrap().card;
    assert_eq!(res.card.temperatures, init_card.temperatures);
    assert!(res.card.metrics.iter().all(|m| m.grader_loss == 0.0));
    assert!(res.card.metrics.iter().all(|m| m.point_loss > 0.0));
    let (a, b) = (Model::load(&f.model).unwrap(), Model::load(&out).unwrap());
    assert!(graders_equal(&a, &b), "the graders changed");
    let [_, _, (name, x, y)] = localiser_outputs(&a, &b);
    assert_ne!(x, y, "the {name} did not train");
    // From a seed: the localisers equal a joint run's (each network's gradient comes from its own
    // loss), and the graders are the untrained ones.
    let (joint, alone) = (tmp.path().join("joint"), tmp.path().join("alone"));
    train(&small_request(&f.cohort, &joint, 2), &|_| {}).unwrap();
    let mut r = small_request(&f.cohort, &alone, 2);
    r.localisers_only = true;
    train(&r, &|_| {}).unwrap();
    // Untrained graders get no temperatures, even with a held-out fold to fit them on.
    let seeded = tmp.path().join("seeded");
    let mut r = small_request(&f.cohort, &seeded, 1);
    r.localisers_only = true;
    (r.folds, r.held_fold) = (folds as usize, held_fold as usize);
    let res = train(&r, &|_| {}).unwrap();
    assert_eq!(
        res.card.training.held_out_studies, held_n,
        "{:?}",
        res.card.training
    );
    assert!(
        res.card.temperatures.is_empty(),
        "{:?}",
        res.card.temperatures
    );
    let (j, l) = (Model::load(&joint).unwrap(), Model::load(&alone).unwrap());
    assert_same_localisers(&j, &l);
    assert!(
        !graders_equal(&j, &l),
        "the joint run's graders did not train"
    );
}

#[test]
fn another_grader_head_starts_new_graders_on_the_models_localisers() {
    use burn::tensor::{Distribution, Tensor};
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("ordinal");
    let mut r = small_request(&f.cohort, &out, 60);
    r.init = Some(f.model.clone());
    r.graders_only = true;
    r.grader_ordinal = Some(true);
    let res = train(&r, &|_| {}).unwrap();
    let (a, b) = (Model::load(&f.model).unwrap(), Model::load(&out).unwrap());
    assert!(!a.card.architecture.grader_ordinal);
    assert!(
        b.card.architecture.grader_ordinal,
        "the card names the head"
    );
    assert!(
        b.card.training.fresh_graders,
        "and that the graders are new"
    );
    // The localisers are the initial model's.
    assert_same_localisers(&a, &b);
    let d = a.device.clone();
    let pre = a.card.preprocessing;
    // The new graders start afresh (their first epoch's loss is far above where the initial
    // model's graders ended) and fit the few studies' crops.
    let first = res.card.metrics.first().unwrap().grader_loss;
    let last = res.card.metrics.last().unwrap().grader_loss;
    let (_, init_last) = f.last_loss;
    println!("ordinal graders: {first:.3} -> {last:.3} (initial model's graders ended at {init_last:.3})");
    assert!(first > 2.0 * init_last, "{first} vs {init_last}");
    assert!(last < first / 3.0, "grader loss {first} -> {last}");
    // Every finding still gets three probabilities that sum to one.
    let c = pre.crop;
    let x = Tensor::<4>::random(
        [3, c.slices, c.rows, c.columns],
        Distribution::Uniform(0.0, 1.0),
        &d,
    );
    let p = values(burn::tensor::activation::softmax(
        b.net.spinal.forward(x),
        1,
    ));
    for row in p.chunks(3) {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{row:?}");
        assert!(row.iter().all(|v| *v > 0.0 && v.is_finite()), "{row:?}");
    }
}

#[test]
fn fresh_graders_start_anew_with_the_same_head() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("fresh");
    let mut r = small_request(&f.cohort, &out, 1);
    r.fresh_graders = true;
    // Without an initial model there are no localisers to keep: refused before any data is read.
    let e = train(&r, &|_| {}).unwrap_err().to_string();
    assert!(e.contains("--init"), "{e}");
    r.init = Some(f.model.clone());
    r.graders_only = true;
    let res = train(&r, &|_| {}).unwrap();
    let (a, b) = (Model::load(&f.model).unwrap(), Model::load(&out).unwrap());
    assert_eq!(a.card.architecture, b.card.architecture, "the head is kept");
    assert!(
        b.card.training.fresh_graders,
        "the card says the graders are new"
    );
    assert!(!a.card.training.fresh_graders);
    assert_same_localisers(&a, &b);
    // One epoch from new graders: the loss is far above where the initial model's graders ended
    // (without fresh_graders it would start there).
    let first = res.card.metrics.first().unwrap().grader_loss;
    let (_, init_last) = f.last_loss;
    println!(
        "fresh graders: first epoch {first:.3} (initial model's graders ended at {init_last:.3})"
    );
    assert!(first > 2.0 * init_last, "{first} vs {init_last}");
}

#[test]
fn another_fold_can_be_held_out_and_an_ensemble_averages_its_members() {
    let f = fixture();
    let tmp = tempfile::tempdir().unwrap();
    // A held-out fold beyond the folds: refused before any data is read.
    let mut r = small_request(&tmp.path().join("no-such-cohort"), &tmp.path().join("x"), 1);
    r.folds = 2;
    r.held_fold = 2;
    match train(&r, &|_| {}) {
        Err(ModelError::Request(m)) => assert!(m.contains("--folds 2"), "{m}"),
        other => panic!("expected a request error, got {other:?}"),
    }
    // A fold other than 0 that splits the fixture's studies: the card says which, and the held-out
    // count is the studies whose id falls in it (counted here from the ids).
    let ds = Dataset::open_indexed(&f.cohort).unwrap();
    let ids = studies(&ds);
    let count = |k: u64, fold: u64| ids.iter().filter(|s| s.0 % k == fold).count();
    let (folds, fold) = (2..=7u64)
        .flat_map(|k| (1..k).map(move |j| (k, j)))
        .find(|&(k, j)| (1..ids.len()).contains(&count(k, j)))
        .expect("a fold that splits the studies");
    let out = tmp.path().join("other-fold");
    let mut r = small_request(&f.cohort, &out, 1);
    r.init = Some(f.model.clone());
    r.graders_only = true;
    r.fresh_graders = true;
    r.folds = folds as usize;
    r.held_fold = fold as usize;
    let res = train(&r, &|_| {}).unwrap();
    assert_eq!(res.card.training.held_fold, fold as usize);
    assert_eq!(res.card.training.held_out_studies, count(folds, fold));
    assert_eq!(
        res.card.training.train_studies,
        ids.len() - count(folds, fold)
    );
    // The ensemble of the two models: each finding's probabilities are the members' mean (summed
    // here by hand), the grade its argmax, the point the first model's; one member is itself.
    let (a, b) = (Model::load(&f.model).unwrap(), Model::load(&out).unwrap());
    let (pa, pb) = (
        predict_study(&a, &ds, ids[0]).unwrap(),
        predict_study(&b, &ds, ids[0]).unwrap(),
    );
    assert_eq!(ensemble(vec![pa.clone()]).unwrap(), pa);
    let e = ensemble(vec![pa.clone(), pb.clone()]).unwrap();
    let mut differ = 0;
    for ((fe, fa), fb) in e.findings.iter().zip(&pa.findings).zip(&pb.findings) {
        for k in 0..3 {
            let mean = 0.5 * fa.probabilities[k] + 0.5 * fb.probabilities[k];
            assert!((fe.probabilities[k] - mean).abs() < 1e-12, "{}", fe.row_id);
        }
        let top = (0..3)
            .max_by(|&i, &j| fe.probabilities[i].total_cmp(&fe.probabilities[j]))
            .unwrap();
        assert_eq!(fe.grade.index(), top, "{}", fe.row_id);
        assert_eq!(fe.members, vec![fa.probabilities, fb.probabilities]);
        assert_eq!(fe.point, fa.point);
        differ += usize::from(fa.probabilities != fb.probabilities);
    }
    assert!(differ > 0, "the two models' graders agree everywhere");
    assert!(e.notes.iter().any(|n| n.contains("ensemble of 2 models")));
    // Members of other studies, or none: errors.
    let other = predict_study(&a, &ds, ids[1]).unwrap();
    assert!(matches!(
        ensemble(vec![pa, other]),
        Err(ModelError::Input { .. })
    ));
    assert!(matches!(ensemble(vec![]), Err(ModelError::Request(_))));
}

//! The other backends give the CPU backend's outputs: the same model folder loaded on `flex` and
//! on `wgpu` (behind the `wgpu` feature; Mesa's software Vulkan driver, lavapipe, from Debian's
//! `mesa-vulkan-drivers`, when no GPU is present) or on libtorch (behind the `tch` feature, PyTorch's
//! CPU kernels) runs the same fixed inputs through the localiser and a grader.
//!
//! Run with `cargo test -p discus-model --features wgpu --test backends` (lavapipe:
//! `apt-get install mesa-vulkan-drivers`), or with `--features tch` (an installed PyTorch: README,
//! "Backends"). Not in `.ci/run`: the features' builds are longer than CI can spare, and libtorch
//! is a 4 GB download.
//!
//! A second test runs one training step (`discus_model::train`, one epoch of one batch holding
//! every study of a tiny cohort: one Adam step) on each backend from the same initial weights and
//! compares the losses before the step and the networks' outputs after it.
//!
//! Tolerance: every backend computes in f32 but sums in its own order (tiled WGSL kernels, oneDNN's
//! blocked kernels, flex's SIMD im2col). Each output is a chain of at most 9 convolutions whose dot products have
//! at most 3·3·64 = 576 terms; with unit-scale activations the rounding difference of one dot
//! product is below 576 · 2⁻²⁴ ≈ 3.4e-5 relative to the sum of absolute terms, and the chain adds
//! such errors. We allow 1e-4 · max(1, max |output|) absolute: orders of magnitude below any real
//! disagreement (a wrong kernel or layout changes outputs by O(1)), which the test also checks by
//! asserting that a different seed's weights are far outside it.
#![cfg(any(feature = "wgpu", feature = "tch"))]

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use discus_model::backend::Backend;
use discus_model::export::{input_shape, sample_input};
use discus_model::net::Net;
use discus_model::train::seeded_net;
use discus_model::Model;
use std::path::Path;
use std::sync::Mutex;

mod common;

/// The backend selection is process-wide: the training-step tests take turns.
static SELECTION: Mutex<()> = Mutex::new(());

#[cfg(feature = "wgpu")]
fn vulkan_icd_present() -> bool {
    ["/usr/share/vulkan/icd.d", "/etc/vulkan/icd.d"]
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flatten()
        .any(|e| e.is_ok())
}

fn outputs(net: &Net, model: &Model, device: &Device) -> Vec<Vec<f32>> {
    ["localiser", "spinal"]
        .iter()
        .map(|name| {
            let shape = input_shape(&model.card, name, 2);
            let x =
                Tensor::<4>::from_data(TensorData::new(sample_input(shape, 0.7), shape), device);
            if *name == "localiser" {
                net.localiser
                    .forward(x)
                    .into_data()
                    .try_to_vec::<f32>()
                    .unwrap()
            } else {
                net.spinal
                    .forward(x)
                    .into_data()
                    .try_to_vec::<f32>()
                    .unwrap()
            }
        })
        .collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[cfg(feature = "wgpu")]
#[test]
fn wgpu_gives_the_cpu_outputs() {
    if !vulkan_icd_present() {
        discus_core::crosscheck::skip(
            "no Vulkan driver (install mesa-vulkan-drivers for the software one)",
        );
        return;
    }
    gives_the_cpu_outputs(Backend::Wgpu);
}

#[cfg(feature = "tch")]
#[test]
fn libtorch_gives_the_cpu_outputs() {
    gives_the_cpu_outputs(Backend::LibTorch);
}

#[cfg(feature = "wgpu")]
#[test]
fn one_training_step_matches_between_wgpu_and_flex() {
    if !vulkan_icd_present() {
        discus_core::crosscheck::skip(
            "no Vulkan driver (install mesa-vulkan-drivers for the software one)",
        );
        return;
    }
    one_training_step_matches(Backend::Wgpu);
}

#[cfg(feature = "tch")]
#[test]
fn one_training_step_matches_between_libtorch_and_flex() {
    one_training_step_matches(Backend::LibTorch);
}

fn gives_the_cpu_outputs(backend: Backend) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("model");
    // A model folder (seeded weights) saved on the CPU.
    {
        let mut r = discus_model::TrainRequest::new(Vec::new(), dir.clone());
        r.seed = 4;
        let cpu = Device::flex();
        let net = seeded_net(&r.architecture, r.seed, &cpu);
        save(&dir, &net, &r);
    }
    let cpu = Backend::Cpu.device().unwrap();
    let gpu = backend.device().unwrap();
    let on_cpu = Model::load_on(&dir, &cpu).unwrap();
    let on_gpu = Model::load_on(&dir, &gpu).unwrap();
    let a = outputs(&on_cpu.net, &on_cpu, &cpu);
    let b = outputs(&on_gpu.net, &on_gpu, &gpu);
    let other = seeded_net(&on_cpu.card.architecture, 5, &cpu).valid();
    let c = outputs(&other, &on_cpu, &cpu);
    // A seed gives the same initial network on every backend (drawn on the CPU, then copied).
    let drawn_there = seeded_net(&on_cpu.card.architecture, 4, &gpu);
    let e = outputs(&drawn_there, &on_cpu, &gpu);
    for (k, name) in ["localiser", "spinal grader"].iter().enumerate() {
        let scale = a[k].iter().fold(1.0f32, |m, v| m.max(v.abs()));
        let tol = 1e-4 * scale;
        let d = max_diff(&a[k], &b[k]);
        eprintln!("{name}: max |{backend} - flex| = {d:.2e} (tolerance {tol:.1e})");
        assert!(
            d <= tol,
            "{name}: {backend} differs from flex by {d} (> {tol})"
        );
        let far = max_diff(&a[k], &c[k]);
        assert!(far > 100.0 * tol, "{name}: other weights only {far} apart");
        let seeded = max_diff(&a[k], &e[k]);
        eprintln!("{name}: seed 4 drawn for {backend}: max |{backend} - flex| = {seeded:.2e}");
        assert!(
            seeded <= tol,
            "{name}: seed 4 on {backend} gives another network ({seeded} > {tol})"
        );
    }
}

fn save(dir: &Path, net: &Net, r: &discus_model::TrainRequest) {
    common::save_untrained(
        dir,
        net,
        r.architecture,
        r.preprocessing,
        r.seed,
        discus_core::governance::Provenance::new("backend test", Vec::new()),
    );
}

/// One training step on each backend from the same seeded initial weights: the same losses, and
/// the same outputs after the Adam step.
///
/// Tolerances: the losses (before the step) are sums of the same f32 terms in another order:
/// relative 1e-4. After the step the weights differ by Adam's update of the gradients' rounding
/// differences; Adam divides each gradient by its own magnitude (plus epsilon), so a gradient
/// component near zero whose rounding differs moves its weight by a larger share of the learning
/// rate: the outputs after the step get 1e-3 · max(1, max |output|), still far below the change
/// the step itself makes, which the test asserts (> 10 times the tolerance).
fn one_training_step_matches(backend: Backend) {
    let _turn = SELECTION.lock().unwrap_or_else(|e| e.into_inner());
    use discus_synth::cohort::{generate, SynthConfig};
    let tmp = tempfile::tempdir().unwrap();
    let cohort = tmp.path().join("cohort");
    let config = SynthConfig {
        studies: 2,
        sites: 1,
        seed: 41,
        readers: 1,
        quirk_rate: 0.0,
        matrix_scale: 0.25,
        ..Default::default()
    };
    generate(&cohort, &config, &|_| {}).unwrap();
    let base = |out: &Path| {
        let mut r = discus_model::TrainRequest::new(vec![cohort.clone()], out.to_path_buf());
        r.seed = 7;
        r.epochs = 1;
        r.batch_studies = 2; // both studies in one batch: one epoch is one Adam step
        r.learning_rate = 1e-2;
        r.cosine_epochs = 0;
        r.architecture.localiser_width = 8;
        r.architecture.grader_width = 8;
        r.preprocessing.localiser_grid = 32;
        r.preprocessing.localiser_spacing_mm = 9.0;
        r.preprocessing.crop.rows = 16;
        r.preprocessing.crop.columns = 16;
        r.preprocessing.crop.spacing_mm = 3.0;
        r.preprocessing.point_grid = 16;
        r.preprocessing.point_spacing_mm = 4.0;
        r
    };
    // The same initial weights on both backends: a seeded network saved on the CPU and given as
    // `init` (each backend's own random initialisation would differ).
    let init = tmp.path().join("init");
    save(
        &init,
        &seeded_net(&base(&init).architecture, 7, &Device::flex()),
        &base(&init),
    );
    let request = |out: &Path| {
        let mut r = base(out);
        r.init = Some(init.clone());
        r
    };
    let mut cards = Vec::new();
    for b in [Backend::Cpu, backend] {
        discus_model::backend::select(b).unwrap();
        let out = tmp.path().join(b.name());
        let t0 = std::time::Instant::now();
        let r = discus_model::train(&request(&out), &|_| {}).unwrap();
        eprintln!(
            "{b}: one step in {:.1} s on {}",
            t0.elapsed().as_secs_f64(),
            r.card.training.hardware
        );
        assert_eq!(r.card.metrics.len(), 1);
        cards.push(r.card);
    }
    discus_model::backend::select(Backend::Cpu).unwrap();
    assert!(
        cards[1]
            .training
            .hardware
            .to_lowercase()
            .contains(discus_model::backend_name(&backend.device().unwrap()).as_str()),
        "{}",
        cards[1].training.hardware
    );
    let (a, b) = (&cards[0].metrics[0], &cards[1].metrics[0]);
    for (name, x, y) in [
        ("localiser", a.localiser_loss, b.localiser_loss),
        ("grader", a.grader_loss, b.grader_loss),
        ("point localisers", a.point_loss, b.point_loss),
    ] {
        eprintln!("{name} loss: flex {x:.6}, {backend} {y:.6}");
        assert!(
            x > 0.0 && (x - y).abs() <= 1e-4 * x.abs(),
            "{name} loss {x} vs {y}"
        );
    }
    // The networks after the step, both evaluated on the CPU, and the initial weights.
    let cpu = Device::flex();
    let on_cpu = Model::load_on(&tmp.path().join("cpu"), &cpu).unwrap();
    let on_gpu = Model::load_on(&tmp.path().join(backend.name()), &cpu).unwrap();
    let init = seeded_net(&on_cpu.card.architecture, 7, &cpu).valid();
    let (x, y, z) = (
        outputs(&on_cpu.net, &on_cpu, &cpu),
        outputs(&on_gpu.net, &on_cpu, &cpu),
        outputs(&init, &on_cpu, &cpu),
    );
    for (k, name) in ["localiser", "spinal grader"].iter().enumerate() {
        let scale = x[k].iter().fold(1.0f32, |m, v| m.max(v.abs()));
        let tol = 1e-3 * scale;
        let d = max_diff(&x[k], &y[k]);
        let step = max_diff(&x[k], &z[k]);
        eprintln!("{name} after one step: max |{backend} - flex| = {d:.2e} (tolerance {tol:.1e}), the step moved it {step:.2e}");
        assert!(
            d <= tol,
            "{name}: after one step {backend} differs from flex by {d} (> {tol})"
        );
        assert!(
            step > 10.0 * tol,
            "{name}: the step moved the outputs only {step}"
        );
    }
}

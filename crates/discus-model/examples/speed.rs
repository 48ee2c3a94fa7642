//! Training and inference images per second of discus-model's networks (the default grader and
//! localiser, see `net.rs`) on fixed random data, for `bench/torch_speed.sh`, which runs the same
//! architectures in PyTorch and prints the ratios.
//!
//! `cargo run --release -p discus-model --example speed -- [ROUNDS]` prints one JSON object per
//! line: `{"net", "mode", "replicas", "batch", "images_per_second"}`. Training is Adam (lr 1e-3)
//! on the same losses as PyTorch's side (cross-entropy for the grader, spatial softmax
//! cross-entropy against a fixed target for the localiser), first with one model on one thread,
//! then data parallel ([`discus_model::parallel`]) with one replica per core. Inference is in
//! eval mode on a plain (non-autodiff) device; on the `cpu` device it is also run through
//! [`discus_model::fused`] (mode `infer-fused`), as `discus predict` runs it there. Threads:
//! RAYON_NUM_THREADS (the script sets 2).
//!
//! The backend is `DISCUS_DEVICE` (default `cpu`, burn flex; `libtorch` in a build with the `tch`
//! feature runs the same model code on PyTorch's C++ kernels). Data parallel training is flex's
//! (libtorch threads its own kernels), so other backends report one replica only. Each line also
//! names the backend: `"device"`.

use burn::optim::{AdamConfig, ModuleOptimizer};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Tensor, TensorData};
use discus_model::fused::{FusedGrader, FusedLocaliser};
use discus_model::net::{Architecture, Grader, Localiser};
use discus_model::parallel::{data_parallel_grads, default_replicas, shards};
use std::time::Instant;

const GRADER_BATCH: usize = 32;
const LOCALISER_BATCH: usize = 8;
const WARMUP: usize = 2;

fn data(n: usize, seed: u32) -> Vec<f32> {
    // A fixed pseudo-random sequence (xorshift), the same every run.
    let mut s = 0x9E37_79B9u32 ^ seed;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s as f32 / u32::MAX as f32) * 2.0 - 1.0
        })
        .collect()
}

fn x4(shape: [usize; 4], seed: u32, d: &Device) -> Tensor<4> {
    Tensor::from_data(
        TensorData::new(data(shape.iter().product(), seed), shape),
        d,
    )
}

fn onehot(n: usize, d: &Device) -> Tensor<2> {
    let v: Vec<f32> = (0..n)
        .flat_map(|i| {
            let mut o = [0f32; 3];
            o[i % 3] = 1.0;
            o
        })
        .collect();
    Tensor::from_data(TensorData::new(v, [n, 3]), d)
}

fn device() -> Device {
    discus_model::backend::selected()
        .device()
        .expect("the selected backend is built")
}

fn report(net: &str, mode: &str, replicas: usize, batch: usize, ips: f64) {
    let device = discus_model::backend::selected().name();
    println!(
        "{{\"net\":\"{net}\",\"mode\":\"{mode}\",\"device\":\"{device}\",\"replicas\":{replicas},\"batch\":{batch},\"images_per_second\":{ips:.2}}}"
    );
}

/// Timed steps of `step`, after warm-up: images per second.
fn time(steps: usize, images_per_step: usize, mut step: impl FnMut()) -> f64 {
    for _ in 0..WARMUP {
        step();
    }
    let t = Instant::now();
    for _ in 0..steps {
        step();
    }
    (steps * images_per_step) as f64 / t.elapsed().as_secs_f64()
}

fn grader_train(arch: &Architecture, replicas: usize, steps: usize) -> f64 {
    let d = device().autodiff();
    d.seed(1);
    let mut net = Grader::new(arch, &d);
    let mut optim: ModuleOptimizer = AdamConfig::new().init();
    let s = 32;
    let x = x4([GRADER_BATCH, arch.grader_slices, s, s], 1, &d);
    let y = onehot(GRADER_BATCH, &d);
    let idx: Vec<usize> = (0..GRADER_BATCH).collect();
    let cases: Vec<(Tensor<4>, Tensor<2>)> = shards(&idx, replicas)
        .iter()
        .map(|sh| {
            let r = sh[0]..sh[0] + sh.len();
            (x.clone().slice([r.clone()]), y.clone().slice([r]))
        })
        .collect();
    time(steps, GRADER_BATCH, || {
        // Each shard's summed loss over the whole batch size: the shards add up to the batch mean.
        let grads = data_parallel_grads(&net, &cases, |g: &Grader, (x, y)| {
            Some(
                (log_softmax(g.forward(x.clone()), 1) * y.clone())
                    .sum()
                    .neg()
                    / GRADER_BATCH as f64,
            )
        })
        .expect("a loss");
        net = optim.step(1e-3, net.clone(), grads);
    })
}

fn localiser_train(arch: &Architecture, replicas: usize, steps: usize, grid: usize) -> f64 {
    let d = device().autodiff();
    d.seed(2);
    let mut net = Localiser::new(arch, &d);
    let mut optim: ModuleOptimizer = AdamConfig::new().init();
    let b = LOCALISER_BATCH;
    let x = x4([b, arch.localiser_slices, grid, grid], 2, &d);
    // A fixed target distribution per (image, level): a softmax of random numbers.
    let t: Tensor<2> = burn::tensor::activation::softmax(
        Tensor::from_data(
            TensorData::new(data(b * 5 * grid * grid, 3), [b * 5, grid * grid]),
            &d,
        ) * 4.0,
        1,
    );
    let idx: Vec<usize> = (0..b).collect();
    let cases: Vec<(Tensor<4>, Tensor<2>)> = shards(&idx, replicas)
        .iter()
        .map(|sh| {
            let r = sh[0]..sh[0] + sh.len();
            let tr = sh[0] * 5..(sh[0] + sh.len()) * 5;
            (x.clone().slice([r]), t.clone().slice([tr]))
        })
        .collect();
    time(steps, b, || {
        let grads = data_parallel_grads(&net, &cases, |m: &Localiser, (x, t)| {
            let n = x.dims()[0];
            let logits = m.forward(x.clone()).reshape([n * 5, grid * grid]);
            Some((t.clone() * log_softmax(logits, 1)).sum().neg() / (b * 5) as f64)
        })
        .expect("a loss");
        net = optim.step(1e-3, net.clone(), grads);
    })
}

fn infer(arch: &Architecture, steps: usize, grid: usize) -> (f64, f64) {
    let d = device();
    d.seed(3);
    let g = Grader::new(arch, &d);
    let x = x4([GRADER_BATCH, arch.grader_slices, 32, 32], 4, &d);
    let gi = time(steps * 4, GRADER_BATCH, || {
        let _ = g.forward(x.clone()).into_data();
    });
    let l = Localiser::new(arch, &d);
    let x = x4([LOCALISER_BATCH, arch.localiser_slices, grid, grid], 5, &d);
    let li = time(steps, LOCALISER_BATCH, || {
        let _ = l.forward(x.clone()).into_data();
    });
    (gi, li)
}

/// The same networks and inputs through [`discus_model::fused`], how `discus predict` runs them
/// on the `cpu` device.
fn infer_fused(arch: &Architecture, steps: usize, grid: usize) -> (f64, f64) {
    let d = device();
    d.seed(3);
    let g = FusedGrader::new(&Grader::new(arch, &d)).expect("the grader runs fused");
    let shape = [GRADER_BATCH, arch.grader_slices, 32, 32];
    let x = data(shape.iter().product(), 4);
    let gi = time(steps * 4, GRADER_BATCH, || {
        let _ = g.forward(&x, shape).expect("the shape fits");
    });
    let l = FusedLocaliser::new(&Localiser::new(arch, &d)).expect("the localiser runs fused");
    let shape = [LOCALISER_BATCH, arch.localiser_slices, grid, grid];
    let x = data(shape.iter().product(), 5);
    let li = time(steps, LOCALISER_BATCH, || {
        let _ = l.forward(&x, shape).expect("the shape fits");
    });
    (gi, li)
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1);
    let arch = Architecture::default();
    let grid = discus_model::prep::Preprocessing::default().localiser_grid;
    let par = default_replicas().max(2);
    let flex = discus_model::backend::selected() == discus_model::backend::Backend::Cpu;
    let replica_counts: &[usize] = if flex { &[1, par] } else { &[1] };
    for _ in 0..rounds {
        for &replicas in replica_counts {
            report(
                "grader",
                "train",
                replicas,
                GRADER_BATCH,
                grader_train(&arch, replicas, 10),
            );
            report(
                "localiser",
                "train",
                replicas,
                LOCALISER_BATCH,
                localiser_train(&arch, replicas, 6, grid),
            );
        }
        let (gi, li) = infer(&arch, 10, grid);
        report("grader", "infer", 1, GRADER_BATCH, gi);
        report("localiser", "infer", 1, LOCALISER_BATCH, li);
        if flex {
            let (gi, li) = infer_fused(&arch, 10, grid);
            report("grader", "infer-fused", 1, GRADER_BATCH, gi);
            report("localiser", "infer-fused", 1, LOCALISER_BATCH, li);
        }
    }
}

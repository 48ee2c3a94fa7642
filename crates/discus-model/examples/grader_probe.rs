//! Diagnostic: how far the graders alone learn from a crop cache (no localisers), per epoch.
//!
//! `cargo run --release -p discus-model --example grader_probe -- CACHE DATASET EPOCHS [BATCH] [LR] [FOLDS]`
//!
//! Trains the three graders on the cached crops of the studies outside fold 0 (study id % FOLDS,
//! default 5), minibatches of BATCH crops of one group (default 32), Adam at LR (default 1e-3),
//! plain weighted cross-entropy (1/2/4). Prints per epoch and group the weighted cross-entropy on
//! the training and held-out crops, and the prior's (training frequencies) on the held-out crops.
//! `VARIANT=plain|norm|double|norm,double` (add `,ordinal` for the ordinal head) and `WIDTH=C`
//! choose the grader's shape (default: the default architecture's). `MODEL=DIR` instead evaluates
//! that model's graders on the held-out and training crops, and on the held-out crops shifted by 2
//! and 4 cells along each axis.

use burn::module::Module;
use burn::optim::{AdamConfig, ModuleOptimizer};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Tensor, TensorData};
use discus_core::ConditionGroup;
use discus_model::cache::CropCache;
use discus_model::net::{Architecture, Grader};
use discus_model::prep::{CropExample, Preprocessing};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::path::PathBuf;

fn weight(g: usize) -> f32 {
    [1.0, 2.0, 4.0][g]
}

fn batch(
    ex: &[&CropExample],
    pre: &Preprocessing,
    d: &Device,
) -> (Tensor<4>, Tensor<2>, Tensor<2>, f32) {
    let c = &pre.crop;
    let n = ex.len();
    let mut x = Vec::with_capacity(n * c.len());
    let mut oh = vec![0f32; n * 3];
    let mut w = Vec::with_capacity(n);
    for (i, e) in ex.iter().enumerate() {
        x.extend_from_slice(&e.data);
        oh[i * 3 + e.grade] = 1.0;
        w.push(weight(e.grade));
    }
    let sw: f32 = w.iter().sum();
    (
        Tensor::from_data(TensorData::new(x, [n, c.slices, c.rows, c.columns]), d),
        Tensor::from_data(TensorData::new(oh, [n, 3]), d),
        Tensor::from_data(TensorData::new(w, [n, 1]), d),
        sw,
    )
}

/// Weighted cross-entropy of a grader on `ex`.
fn wce(g: &Grader, ex: &[&CropExample], pre: &Preprocessing, d: &Device) -> f64 {
    let (mut s, mut sw) = (0.0, 0.0);
    for ch in ex.chunks(256) {
        let (x, oh, w, swc) = batch(ch, pre, d);
        let nll = (log_softmax(g.forward(x), 1) * oh).sum_dim(1).neg();
        s += (nll * w).sum().into_scalar::<f32>() as f64;
        sw += swc as f64;
    }
    s / sw
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let cache = PathBuf::from(&a[1]);
    let ds = PathBuf::from(&a[2]);
    let epochs: usize = a[3].parse().unwrap();
    let bs: usize = a.get(4).map(|v| v.parse().unwrap()).unwrap_or(32);
    let lr: f64 = a.get(5).map(|v| v.parse().unwrap()).unwrap_or(1e-3);
    let folds: u64 = a.get(6).map(|v| v.parse().unwrap()).unwrap_or(5);
    let pre = Preprocessing::default();
    let samples = CropCache::open(&cache, &[ds], &pre)
        .unwrap()
        .samples()
        .unwrap();
    let dev = Device::flex();
    let ad = dev.clone().autodiff();
    let only = std::env::var("GROUP").ok();
    for group in ConditionGroup::ALL {
        if only.as_deref().is_some_and(|o| o != group.as_str()) {
            continue;
        }
        let (mut tr, mut he): (Vec<&CropExample>, Vec<&CropExample>) = (vec![], vec![]);
        for s in &samples {
            for e in s.crops.get(&group).into_iter().flatten() {
                if s.study.0 % folds == 0 {
                    he.push(e)
                } else {
                    tr.push(e)
                }
            }
        }
        let mut f = [1f64; 3];
        for e in &tr {
            f[e.grade] += 1.0;
        }
        let t: f64 = f.iter().sum();
        let (mut ps, mut pw) = (0.0, 0.0);
        for e in &he {
            ps -= weight(e.grade) as f64 * (f[e.grade] / t).ln();
            pw += weight(e.grade) as f64;
        }
        println!(
            "{group:?}: {} train, {} held crops; prior held wCE {:.4}",
            tr.len(),
            he.len(),
            ps / pw
        );
        if let Ok(m) = std::env::var("MODEL") {
            let model = discus_model::Model::load_on(std::path::Path::new(&m), &dev).unwrap();
            println!(
                "  model {m}: held wCE {:.4}, train wCE {:.4}",
                wce(model.net.grader(group), &he, &pre, &dev),
                wce(model.net.grader(group), &tr, &pre, &dev)
            );
            for d in [
                (0i64, 0i64),
                (2, 0),
                (-2, 0),
                (0, 2),
                (0, -2),
                (4, 0),
                (-4, 0),
                (0, 4),
                (0, -4),
            ] {
                let c = &pre.crop;
                let moved: Vec<CropExample> = he
                    .iter()
                    .map(|e| CropExample {
                        data: discus_model::train::shifted_planes(
                            &e.data,
                            c.slices,
                            (c.rows, c.columns),
                            d,
                            1.0,
                        ),
                        ..(*e).clone()
                    })
                    .collect();
                let refs: Vec<&CropExample> = moved.iter().collect();
                println!(
                    "    shift {d:?} cells: held wCE {:.4}",
                    wce(model.net.grader(group), &refs, &pre, &dev)
                );
            }
            continue;
        }
        ad.seed(1);
        // The default grader, or VARIANT (a list of "norm", "double", "ordinal"; "plain" for
        // none) and WIDTH for another shape of the same network.
        let mut arch = Architecture::default();
        if let Ok(v) = std::env::var("VARIANT") {
            arch.grader_norm = v.contains("norm");
            arch.grader_convs = if v.contains("double") { 2 } else { 1 };
            arch.grader_ordinal = v.contains("ordinal");
        }
        if let Ok(w) = std::env::var("WIDTH") {
            arch.grader_width = w.parse().expect("WIDTH: a number of channels");
        }
        let mut g = Grader::new(&arch, &ad);
        let mut opt: ModuleOptimizer = AdamConfig::new().init();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        for ep in 1..=epochs {
            tr.shuffle(&mut rng);
            let t0 = std::time::Instant::now();
            let (mut ls, mut n) = (0.0, 0);
            for ch in tr.chunks(bs) {
                let (x, oh, w, sw) = batch(ch, &pre, &ad);
                let nll = (log_softmax(g.forward(x), 1) * oh).sum_dim(1).neg();
                let l = (nll * w).sum() / sw as f64;
                ls += l.clone().into_scalar::<f32>() as f64;
                n += 1;
                let grads = l.backward();
                let gp = burn::optim::GradientsParams::from_grads(grads, &g);
                g = opt.step(lr, g, gp);
            }
            let v = g.valid();
            println!(
                "  epoch {ep}: train {:.4} held {:.4} ({:.1} s)",
                ls / n as f64,
                wce(&v, &he, &pre, &dev),
                t0.elapsed().as_secs_f64()
            );
        }
    }
}

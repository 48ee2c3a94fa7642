//! Data parallelism on the CPU: one optimiser step's gradients computed on several threads.
//!
//! burn's `flex` backend runs a forward pass on all cores (rayon) but its backward pass on one
//! (measured: user time equals wall time during training). [`data_parallel_grads`] splits a batch
//! into shards, runs each shard's forward and backward pass on its own thread against the same
//! weights (the module is shared, not copied), and adds the shards' gradients in a fixed order, so
//! the result does not depend on thread timing. With `loss` returning each shard's share of the
//! batch loss (a mean over the shard scaled by shard size / batch size), the sum is the gradient
//! of the batch's mean loss, up to float rounding.

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;

/// Threads worth using for data parallelism here: the available cores, at least 1.
pub fn default_replicas() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Splits `items` into at most `n` contiguous shards of near-equal size (none empty).
pub fn shards<T>(items: &[T], n: usize) -> Vec<&[T]> {
    let n = n.clamp(1, items.len().max(1));
    let base = items.len() / n;
    let extra = items.len() % n;
    let mut out = Vec::with_capacity(n);
    let mut start = 0;
    for k in 0..n {
        let len = base + usize::from(k < extra);
        if len > 0 {
            out.push(&items[start..start + len]);
        }
        start += len;
    }
    out
}

/// The gradients of `Σ loss(module, shard)` over `shards`, each shard's forward and backward pass
/// on its own thread (the first on the calling thread). A shard whose `loss` is `None` adds
/// nothing; `None` when every shard's is. `module` must live on an autodiff device.
pub fn data_parallel_grads<M, S, F>(module: &M, shards: &[S], loss: F) -> Option<GradientsParams>
where
    M: Module + Sync,
    S: Sync,
    F: Fn(&M, &S) -> Option<Tensor<1>> + Sync,
{
    let one = &|m: &M, s: &S| loss(m, s).map(|l| GradientsParams::from_grads(l.backward(), m));
    let parts: Vec<Option<GradientsParams>> = match shards {
        [] => Vec::new(),
        [only] => vec![one(module, only)],
        [first, rest @ ..] => std::thread::scope(|scope| {
            // Each other thread differentiates its own fork of the module: the same weights and
            // parameter ids, but its own autodiff leaves. Threads sharing leaves race: the first
            // backward pass to finish consumes the shared nodes and the other's then fails.
            let device = module.devices().into_iter().next();
            let handles: Vec<_> = rest
                .iter()
                .map(|s| {
                    let m = match &device {
                        Some(d) => module.clone().fork(d),
                        None => module.clone(),
                    };
                    scope.spawn(move || one(&m, s))
                })
                .collect();
            let mut parts = vec![one(module, first)];
            for h in handles {
                parts.push(match h.join() {
                    Ok(g) => g,
                    Err(panic) => std::panic::resume_unwind(panic),
                });
            }
            parts
        }),
    };
    let mut parts = parts.into_iter().flatten();
    let first = parts.next()?;
    let rest: Vec<GradientsParams> = parts.collect();
    if rest.is_empty() {
        return Some(first);
    }
    let mut sum = SumGrads {
        acc: first,
        others: rest,
    };
    module.visit(&mut sum);
    Some(sum.acc)
}

/// Adds the gradients of `others` into `acc`, parameter by parameter, in the module's order.
struct SumGrads {
    acc: GradientsParams,
    others: Vec<GradientsParams>,
}

impl SumGrads {
    fn add<const D: usize>(&mut self, id: ParamId) {
        let mut total: Option<Tensor<D>> = self.acc.remove::<D>(id);
        for g in &mut self.others {
            if let Some(t) = g.remove::<D>(id) {
                total = Some(match total {
                    Some(a) => a + t,
                    None => t,
                });
            }
        }
        if let Some(t) = total {
            self.acc.register::<D>(id, t);
        }
    }
}

impl ModuleVisitor for SumGrads {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.add::<D>(param.id);
    }
}

/// The environment variable that sets the number of training replicas (threads); default 1.
pub const REPLICAS_ENV: &str = "DISCUS_TRAIN_REPLICAS";

/// Training replicas: `DISCUS_TRAIN_REPLICAS` when it is a positive number, else 1 (one shard on
/// the calling thread: exactly the single-threaded step). Opt-in until the speed-up is measured
/// with `bench/torch_speed.sh` and `discus train` is tested with it. Weights trained with
/// different replica counts differ by float rounding and by the per-shard normalisation of the
/// grader losses; the same count gives the same weights.
pub fn train_replicas() -> usize {
    std::env::var(REPLICAS_ENV)
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(1)
}

/// One training step's gradients for a batch of studies, data parallel over `replicas` threads:
/// the batch is split into contiguous shards, each shard's loss (`train::batch_loss`) is scaled by
/// its share of the batch's studies, and the shards' gradients are added in order. Returns the
/// gradients (`None` when no study has data) and, like `batch_loss`, the localiser and grader
/// losses (shard values weighted the same way), the images seen and the point-localiser loss.
pub(crate) fn batch_grads(
    net: &crate::net::Net,
    batch: &[&crate::prep::StudySample],
    pre: &crate::prep::Preprocessing,
    device: &burn::tensor::Device,
    replicas: usize,
    any_severe_weight: f64,
) -> (Option<GradientsParams>, f64, f64, usize, f64) {
    let parts = shards(batch, replicas);
    let stats = std::sync::Mutex::new(vec![(0.0, 0.0, 0usize, 0.0); parts.len()]);
    let indexed: Vec<(usize, &[&crate::prep::StudySample])> =
        parts.iter().copied().enumerate().collect();
    let n = batch.len() as f64;
    let grads = data_parallel_grads(net, &indexed, |m, (k, shard)| {
        let (loss, l, g, im, pl) =
            crate::train::batch_loss(m, shard, pre, device, any_severe_weight);
        let share = shard.len() as f64 / n;
        stats.lock().unwrap_or_else(|e| e.into_inner())[*k] =
            (l * share, g * share, im, pl * share);
        loss.map(|t| t * share)
    });
    let stats = stats.into_inner().unwrap_or_else(|e| e.into_inner());
    let (l, g, im, pl) = stats.iter().fold((0.0, 0.0, 0, 0.0), |a, s| {
        (a.0 + s.0, a.1 + s.1, a.2 + s.2, a.3 + s.3)
    });
    (grads, l, g, im, pl)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_the_batch_in_order() {
        let v: Vec<u32> = (0..7).collect();
        let s = shards(&v, 3);
        assert_eq!(s, vec![&v[0..3], &v[3..5], &v[5..7]]);
        assert_eq!(shards(&v, 10).len(), 7);
        assert_eq!(shards(&v, 0), vec![&v[..]]);
        assert!(shards::<u32>(&[], 2).iter().all(|s| s.is_empty()));
    }

    /// The gradients summed over three threads' shards equal burn's gradient of the whole batch
    /// computed in one pass (the reference), parameter by parameter.
    #[test]
    fn sharded_gradients_equal_the_whole_batch_gradient() {
        use crate::net::{Architecture, Grader};
        use burn::tensor::activation::log_softmax;
        use burn::tensor::{Device, TensorData};
        let d = Device::flex().autodiff();
        let a = Architecture::default();
        let g = crate::train::seeded_net(&a, 3, &d).spinal;
        let n = 7;
        let xs: Vec<f32> = (0..n * 3 * 16 * 16)
            .map(|i| ((i as f32) * 0.618).sin())
            .collect();
        let x = Tensor::<4>::from_data(TensorData::new(xs, [n, 3, 16, 16]), &d);
        let y: Vec<f32> = (0..n)
            .flat_map(|i| {
                let mut o = [0f32; 3];
                o[(i * 2) % 3] = 1.0;
                o
            })
            .collect();
        let y = Tensor::<2>::from_data(TensorData::new(y, [n, 3]), &d);
        let loss = |m: &Grader, r: &std::ops::Range<usize>| {
            let l = log_softmax(m.forward(x.clone().slice([r.clone()])), 1)
                * y.clone().slice([r.clone()]);
            Some(l.sum().neg() / n as f64)
        };
        let whole = data_parallel_grads(&g, std::slice::from_ref(&(0..n)), loss).unwrap();
        let split = data_parallel_grads(&g, &[0..3, 3..5, 5..7], loss).unwrap();
        let mut compare = Compare {
            a: whole,
            b: split,
            worst: 0.0,
            count: 0,
        };
        g.visit(&mut compare);
        assert_eq!(
            compare.count, 26,
            "weights and biases of 6 convs, gamma and beta of 6 normalisations, and a linear"
        );
        assert!(
            compare.worst < 1e-5,
            "sharded gradients differ by {}",
            compare.worst
        );
    }

    /// Optimiser steps in a row, each one's gradients from two threads, the second on its fork of
    /// the module: every step still gives every parameter of the module a gradient (a fork keeps
    /// the parameter ids). Before the forks, threads differentiating the same autodiff leaves
    /// raced: the first backward pass to finish could consume the shared nodes and the other then
    /// panicked ("graph tape has already been consumed"), once in `bench/torch_speed.sh`'s data
    /// parallel rounds. That race was rare; this test did not catch it on the old code in three
    /// runs, so it guards the forks' gradients, not the race itself.
    #[test]
    fn parallel_steps_in_a_row_do_not_race() {
        use crate::net::{Architecture, Grader};
        use burn::optim::{AdamConfig, ModuleOptimizer};
        use burn::tensor::activation::log_softmax;
        use burn::tensor::{Device, TensorData};
        let d = Device::flex().autodiff();
        let a = Architecture::default();
        let mut g = crate::train::seeded_net(&a, 4, &d).spinal;
        let mut optim: ModuleOptimizer = AdamConfig::new().init();
        let n = 8;
        let xs: Vec<f32> = (0..n * 3 * 16 * 16)
            .map(|i| ((i as f32) * 0.377).cos())
            .collect();
        let x = Tensor::<4>::from_data(TensorData::new(xs, [n, 3, 16, 16]), &d);
        let y = Tensor::<2>::from_data(
            TensorData::new((0..n * 3).map(|i| (i % 3) as f32 / 3.0).collect(), [n, 3]),
            &d,
        );
        let cases: Vec<(Tensor<4>, Tensor<2>)> = [0..4, 4..8]
            .into_iter()
            .map(|r| (x.clone().slice([r.clone()]), y.clone().slice([r])))
            .collect();
        for _ in 0..12 {
            let grads = data_parallel_grads(&g, &cases, |m: &Grader, (x, y)| {
                Some(
                    (log_softmax(m.forward(x.clone()), 1) * y.clone())
                        .sum()
                        .neg()
                        / n as f64,
                )
            })
            .expect("a loss");
            let mut count = Count(&grads, 0);
            g.visit(&mut count);
            assert_eq!(count.1, 26, "a gradient for every parameter");
            g = optim.step(1e-3, g.clone(), grads);
        }
    }

    struct Count<'a>(&'a GradientsParams, usize);

    impl ModuleVisitor for Count<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.1 += usize::from(self.0.get::<D>(param.id).is_some());
        }
    }

    struct Compare {
        a: GradientsParams,
        b: GradientsParams,
        worst: f32,
        count: usize,
    }

    impl ModuleVisitor for Compare {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let a = self
                .a
                .get::<D>(param.id)
                .expect("gradient in the whole batch");
            let b = self.b.get::<D>(param.id).expect("gradient in the shards");
            let a: Vec<f32> = a.into_data().try_to_vec::<f32>().unwrap();
            let b: Vec<f32> = b.into_data().try_to_vec::<f32>().unwrap();
            let scale = a.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
            for (x, y) in a.iter().zip(&b) {
                self.worst = self.worst.max((x - y).abs() / scale);
            }
            self.count += 1;
        }
    }
}

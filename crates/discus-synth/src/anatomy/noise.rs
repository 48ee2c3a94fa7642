//! Band-limited value noise, deterministic per patient seed: organic outlines (smooth deformation
//! of the analytic shapes) and tissue textures (trabecular marrow, bowel content).
//!
//! Lattice values come from an integer hash of the lattice point and the seed, interpolated with a
//! smoothstep: no allocation, a few dozen integer operations per call, so it can sit in the
//! per-pixel path.

/// A 32-bit integer hash (lowbias32 by Chris Wellons), mixed with a seed.
#[inline]
fn hash(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^= x >> 16;
    x
}

/// Per-axis lattice keys: odd multipliers spread neighbouring lattice indices over the word.
const KX: u32 = 0x8da6_b343;
const KY: u32 = 0xd816_3841;
const KZ: u32 = 0xcb1a_b31f;

/// `x.floor()` as an integer, inline (without SSE4.1 `floor` is a library call, and it sat at
/// 4 % of the generator's time), for |x| < 2^31.
#[inline]
fn ifloor(x: f64) -> i32 {
    let i = x as i32;
    if (i as f64) > x {
        i - 1
    } else {
        i
    }
}

#[inline]
fn smooth(t: f64) -> f64 {
    t * t * (3.0 - 2.0 * t)
}

#[inline]
fn unit(h: u32) -> f64 {
    h as f64 * (2.0 / u32::MAX as f64) - 1.0
}

/// Value noise in `[-1, 1]` at a point, with lattice spacing 1 (scale the coordinates for other
/// feature sizes). Continuous, band-limited around a wavelength of 2 lattice cells.
///
/// The value at lattice point `(i, j, k)` is `hash(hash(seed) ^ i*KX ^ j*KY ^ k*KZ)`: one hash per
/// corner (this sits in the per-pixel path of every outline and texture).
#[inline]
pub fn noise3(seed: u32, x: f64, y: f64, z: f64) -> f64 {
    let (i, j, k) = (ifloor(x), ifloor(y), ifloor(z));
    let (fx, fy, fz) = (i as f64, j as f64, k as f64);
    let (i, j, k) = (i as u32, j as u32, k as u32);
    let (u, v, w) = (smooth(x - fx), smooth(y - fy), smooth(z - fz));
    let sh = hash(seed ^ 0x85eb_ca6b);
    let (x0, x1) = (i.wrapping_mul(KX), i.wrapping_add(1).wrapping_mul(KX));
    let (y0, y1) = (j.wrapping_mul(KY), j.wrapping_add(1).wrapping_mul(KY));
    let (z0, z1) = (
        sh ^ k.wrapping_mul(KZ),
        sh ^ k.wrapping_add(1).wrapping_mul(KZ),
    );
    let c = |a: u32, b: u32, cz: u32| unit(hash(a ^ b ^ cz));
    let l = |a: f64, b: f64, t: f64| a + (b - a) * t;
    l(
        l(
            l(c(x0, y0, z0), c(x1, y0, z0), u),
            l(c(x0, y1, z0), c(x1, y1, z0), u),
            v,
        ),
        l(
            l(c(x0, y0, z1), c(x1, y0, z1), u),
            l(c(x0, y1, z1), c(x1, y1, z1), u),
            v,
        ),
        w,
    )
}

/// Two octaves of [`noise3`] (the second at twice the frequency and half the amplitude),
/// normalised to about `[-1, 1]`.
pub fn fbm3(seed: u32, x: f64, y: f64, z: f64) -> f64 {
    (noise3(seed, x, y, z) + 0.5 * noise3(seed ^ 0x5bd1_e995, 2.0 * x, 2.0 * y, 2.0 * z)) / 1.5
}

/// Value noise in one dimension (for outlines that vary along a curve).
pub fn noise1(seed: u32, x: f64) -> f64 {
    noise3(seed, x, 0.5, 0.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_is_continuous_bounded_and_seeded() {
        let mut max_step: f64 = 0.0;
        let mut prev = noise3(7, 0.0, 0.3, 0.7);
        let (mut lo, mut hi) = (1.0f64, -1.0f64);
        for i in 1..20_000 {
            let x = i as f64 * 0.001;
            let v = noise3(7, x, 0.3, 0.7);
            assert!((-1.0..=1.0).contains(&v));
            max_step = max_step.max((v - prev).abs());
            prev = v;
            lo = lo.min(v);
            hi = hi.max(v);
        }
        // Slope at most 1.5 * (max lattice difference 2) per unit: under 0.004 per 0.001 step.
        assert!(max_step < 0.004, "{max_step}");
        assert!(hi - lo > 0.8, "spans the range: {lo} {hi}");
        assert_ne!(noise3(7, 1.3, 2.1, 0.2), noise3(8, 1.3, 2.1, 0.2));
        assert_eq!(noise3(7, 1.3, 2.1, 0.2), noise3(7, 1.3, 2.1, 0.2));
    }
}

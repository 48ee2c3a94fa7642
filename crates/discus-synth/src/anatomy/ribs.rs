//! The lowest ribs, the lumbar transverse processes and the nerve root sleeves beyond the foramina:
//! what makes the count from T12 visible on the images, and the roots' way out.
//!
//! - **Ribs** of the rib-bearing (thoracic) vertebrae in the field of view, T10-T12 (T11-T12 with six
//!   lumbar vertebrae, whose top modelled vertebra is a lumbar L1): each rib's head articulates with
//!   the posterolateral corner of its own body (a costovertebral joint: cartilage and a fluid line;
//!   T11 and T12 have no costotransverse joint), the neck runs posterolaterally, the shaft turns
//!   forwards round the body wall with a radius of half the torso's width and descends laterally.
//!   The cross-section is a flattened oval, taller than thick, with a cortical shell. Lengths (K,
//!   estimates from standard anatomy, the 12th rib the most variable): T10 220 mm, T11 175 +- 20,
//!   T12 125 +- 30 (hypoplastic 12th ribs occur); descent about 0.4 mm per mm of length (K).
//!   `truth.json`'s `level_counting.last_rib` names the vertebra that carries the last rib.
//! - **Transverse processes** of the lumbar vertebrae: plates from the junction of pedicle and
//!   lamina, projecting laterally and a little posteriorly (every axial inclination posterior, the
//!   coronal inclination horizontal at L1-L3 and a little upward at L4-L5: Li 2003, Chin J Bone
//!   Joint Injury, CT of 100 vertebrae, V; Suck 1975, J Korean Neurosurg Soc 4:227, AP films of 500
//!   patients, V). Lengths from the root: L1 about 10 mm (the shortest), L2, L4 and L5 about 15, L3
//!   about 19 (the longest) (Li 2003, V); thickness constant L1-L4 and doubled at L5 (Li 2003, V);
//!   left and right differ by 4 +- 3 mm on average (Fausone 2022, cadavers, V), drawn here as an
//!   independent 2.8 mm SD per side (K). Coefficient of variation 15 % (K). A sacralised L5 has no
//!   free transverse process on its fused side (the ala reaches up instead).
//! - **Root sleeves**: each exiting root continues beyond its foramen for about 26 mm, laterally,
//!   forwards and down towards the psoas, in a thin rim of fat (K: standard anatomy).

use super::noise::noise3;
use super::{Anatomy, Tissue, N_VERT};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// Step (mm of length) between the points of a rib's axis.
pub const RIB_STEP: f64 = 5.0;
/// Thickness of the costovertebral joint (cartilage on both sides of a fluid line), mm.
const JOINT: f64 = 1.6;

/// One rib: its axis as points in the anatomical frame and its cross-section.
#[derive(Debug, Clone, PartialEq)]
pub struct Rib {
    /// The vertebra (index into [`super::VERTEBRAE`]) that carries it.
    pub vertebra: usize,
    /// Side: 0 = left (+x), 1 = right.
    pub side: usize,
    /// Axis points `(s, |x|, d)`, every [`RIB_STEP`] mm of length from the head.
    pub axis: Vec<[f64; 3]>,
    /// Half-height (mm) of the cross-section at the head; it tapers to 70 % at the tip.
    pub half_height: f64,
    /// Half-thickness (mm) of the cross-section at the head; it tapers to 70 % at the tip.
    pub half_thickness: f64,
    /// Bounding box `[min, max]` of s, |x| and d, with the cross-section and the joint.
    bbox: [[f64; 2]; 3],
}

/// One transverse process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TransverseProcess {
    /// The vertebra (index into [`super::VERTEBRAE`]).
    pub vertebra: usize,
    /// Side: 0 = left (+x), 1 = right.
    pub side: usize,
    /// Root: (s, |x|, d) where it leaves the pedicle.
    pub root: [f64; 3],
    /// Length from the root to the tip (mm).
    pub length: f64,
    /// Rise towards the head (mm of -s per mm of length): 0 at L1-L3, upward at L4-L5.
    pub rise: f64,
    /// Posterior inclination (mm of d per mm of length).
    pub back: f64,
    /// Half-height (s) and half-thickness (d) at the root (mm).
    pub half: [f64; 2],
}

/// The extraforaminal part of an exiting nerve root: a straight sleeve from the foramen's lateral
/// edge running laterally, forwards and down towards the psoas (the ventral ramus), in a thin rim
/// of fat.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RootSleeve {
    /// The disc (index) whose foramen it leaves.
    pub disc: usize,
    /// Side: 0 = left (+x), 1 = right.
    pub side: usize,
    /// Start (s, |x|, d), inside the pedicle band at the root's foraminal position.
    pub from: [f64; 3],
    /// End (s, |x|, d).
    pub to: [f64; 3],
    /// Radius at the start (mm); 80 % of it at the end.
    pub radius: f64,
}

/// Mean transverse process length from the root by anatomical lumbar name (Li 2003).
pub fn tp_mean_length(name: &str) -> Option<f64> {
    match name {
        "L1" => Some(10.0),
        "L2" => Some(15.0),
        "L3" => Some(19.0),
        "L4" | "L5" | "L6" => Some(15.0),
        _ => None,
    }
}

impl Anatomy {
    /// Draws the ribs and transverse processes of this patient (a stream of their own, seeded by
    /// the noise seed, so that no other draw moves).
    pub(super) fn sample_ribs_and_processes(&mut self) {
        let mut rng = ChaCha8Rng::seed_from_u64(0x71b5_0000_0000 ^ self.nseed as u64);
        let z = |r: &mut ChaCha8Rng| -> f64 { StandardNormal.sample(r) };
        let names = self.transitional.anatomical_names();
        let mut ribs = Vec::new();
        let mut tps = Vec::new();
        for (v, name) in names.iter().enumerate().take(N_VERT) {
            let h = self.s_bot[v] - self.s_top[v];
            let (w, dd) = (self.body_w[v], self.body_d[v]);
            if name.starts_with('T') {
                let (mean, sd) = match *name {
                    "T12" => (125.0, 30.0),
                    "T11" => (175.0, 20.0),
                    _ => (220.0, 20.0),
                };
                for side in 0..2 {
                    let len = (mean + sd * z(&mut rng)).clamp(45.0, 260.0);
                    let slope = (0.4 + 0.06 * z(&mut rng)).clamp(0.25, 0.55);
                    let phi0 = (40.0 + 5.0 * z(&mut rng)).to_radians();
                    let radius = 0.5 * self.torso_w * (1.0 + 0.08 * z(&mut rng));
                    // The head beside the body's posterolateral outline, pushed out by the
                    // joint and the body outline's noise (4 % of the half-width).
                    let th = 55f64.to_radians();
                    let (hx, hd) = (w * th.cos(), -dd + dd * th.sin());
                    let (nx, nd) = (th.cos() / w, th.sin() / dd);
                    let nn = (nx * nx + nd * nd).sqrt();
                    let off = JOINT + 0.04 * w;
                    let (mut x, mut d) = (hx + off * nx / nn, hd + off * nd / nn);
                    let mut s = self.s_top[v] + 0.35 * h;
                    let n = (len / RIB_STEP).ceil() as usize + 1;
                    let mut axis = Vec::with_capacity(n);
                    for k in 0..n {
                        axis.push([s, x, d]);
                        let phi = phi0 - (k as f64 + 0.5) * RIB_STEP / radius;
                        x += phi.cos() * RIB_STEP;
                        d += phi.sin() * RIB_STEP;
                        s += slope * RIB_STEP;
                    }
                    let half_height = (5.5 + 0.5 * z(&mut rng)).clamp(4.5, 6.5);
                    let half_thickness = (3.0 + 0.3 * z(&mut rng)).clamp(2.4, 3.6);
                    let m = half_height.max(half_thickness) + JOINT + 0.5;
                    let mut bbox = [[f64::INFINITY, f64::NEG_INFINITY]; 3];
                    for p in &axis {
                        for a in 0..3 {
                            bbox[a][0] = bbox[a][0].min(p[a] - m);
                            bbox[a][1] = bbox[a][1].max(p[a] + m);
                        }
                    }
                    ribs.push(Rib {
                        vertebra: v,
                        side,
                        axis,
                        half_height,
                        half_thickness,
                        bbox,
                    });
                }
            } else if let Some(mean) = tp_mean_length(name) {
                let last = v + 1 < N_VERT && !names[v + 1].starts_with('L');
                let upward = matches!(*name, "L4" | "L5" | "L6") || last;
                let lumbar5 = last;
                for side in 0..2 {
                    let length = (mean * (1.0 + 0.15 * z(&mut rng)) + 2.8 * z(&mut rng))
                        .clamp(0.4 * mean, 1.8 * mean);
                    if lumbar5
                        && self.transitional == super::Transitional::SacralisedL5
                        && self.fused_sides[side]
                    {
                        continue;
                    }
                    let t = if lumbar5 { 5.0 } else { 2.5 };
                    tps.push(TransverseProcess {
                        vertebra: v,
                        side,
                        root: [
                            self.s_top[v] + 0.45 * h,
                            self.canal_w + 9.0,
                            0.6 * self.lamina_d,
                        ],
                        length,
                        rise: if upward { 0.25 } else { 0.0 },
                        back: 0.3,
                        half: [(4.5 + 0.4 * z(&mut rng)).clamp(3.5, 5.5), t],
                    });
                }
            }
        }
        // Root sleeves of the lumbar foramina (every labelled level), both sides.
        let mut sleeves = Vec::new();
        for j in 3..8 {
            for side in 0..2 {
                let (_, fd, _, _, root_s) = self.foramen(j, side);
                let x0 = self.canal_w + 10.0;
                let len = 26.0 + 4.0 * z(&mut rng);
                let (ds, dx, dd): (f64, f64, f64) = (0.45, 0.75, -0.5);
                let k = len / (ds * ds + dx * dx + dd * dd).sqrt();
                sleeves.push(RootSleeve {
                    disc: j,
                    side,
                    from: [root_s, x0, fd],
                    to: [root_s + ds * k, x0 + dx * k, fd + dd * k],
                    radius: super::FORAMEN_ROOT_R * 0.9,
                });
            }
        }
        let mut boxes = [[[f64::INFINITY, f64::NEG_INFINITY]; 3]; 3];
        for sl in &sleeves {
            let m = sl.radius + 1.5;
            let ext: [[f64; 2]; 3] = std::array::from_fn(|a| {
                [sl.from[a].min(sl.to[a]) - m, sl.from[a].max(sl.to[a]) + m]
            });
            grow(&mut boxes[2], &ext);
        }
        for tp in &tps {
            let end = tp.length + 1.0;
            let ext = [
                [
                    tp.root[0] - tp.rise * end - 1.3 * tp.half[0],
                    tp.root[0] + 1.3 * tp.half[0],
                ],
                [tp.root[1] - 0.3 * tp.length, tp.root[1] + end],
                [
                    tp.root[2] - 1.3 * tp.half[1],
                    tp.root[2] + tp.back * end + 1.3 * tp.half[1],
                ],
            ];
            grow(&mut boxes[0], &ext);
        }
        for rib in &ribs {
            grow(&mut boxes[1], &rib.bbox);
        }
        self.ribs = ribs;
        self.transverse = tps;
        self.root_sleeves = sleeves;
        self.process_boxes = boxes;
    }

    /// The index (into [`super::VERTEBRAE`]) of the lowest vertebra carrying a rib.
    pub fn last_rib_vertebra(&self) -> Option<usize> {
        self.ribs.iter().map(|r| r.vertebra).max()
    }

    /// A rib, costovertebral joint or transverse process at anatomical (s, x, d), if any.
    pub(super) fn rib_or_process(&self, s: f64, x: f64, d: f64) -> Option<Tissue> {
        let ax = x.abs();
        let side = if x >= 0.0 { 0 } else { 1 };
        let inside = |b: &[[f64; 2]; 3]| {
            s >= b[0][0]
                && s <= b[0][1]
                && ax >= b[1][0]
                && ax <= b[1][1]
                && d >= b[2][0]
                && d <= b[2][1]
        };
        let (in_tp, in_rib) = (
            inside(&self.process_boxes[0]),
            inside(&self.process_boxes[1]),
        );
        if inside(&self.process_boxes[2]) {
            for sl in self.root_sleeves.iter().filter(|r| r.side == side) {
                if let Some(t) = in_sleeve(sl, s, ax, d) {
                    return Some(t);
                }
            }
        }
        if !in_tp && !in_rib {
            return None;
        }
        for tp in self.transverse.iter().filter(|_| in_tp) {
            if tp.side != side {
                continue;
            }
            if let Some(t) = self.in_process(tp, s, ax, d) {
                return Some(t);
            }
        }
        for rib in self.ribs.iter().filter(|_| in_rib) {
            if rib.side != side {
                continue;
            }
            let b = &rib.bbox;
            if s < b[0][0] || s > b[0][1] || ax < b[1][0] || ax > b[1][1] {
                continue;
            }
            if d < b[2][0] || d > b[2][1] {
                continue;
            }
            if let Some(t) = self.in_rib(rib, s, ax, d) {
                return Some(t);
            }
        }
        None
    }

    fn in_process(&self, tp: &TransverseProcess, s: f64, ax: f64, d: f64) -> Option<Tissue> {
        let t = (ax - tp.root[1]) / tp.length;
        if !(-0.3..=1.0 + 1.0 / tp.length).contains(&t) {
            return None;
        }
        let u = (ax - tp.root[1]).max(0.0);
        let sc = tp.root[0] - tp.rise * u;
        let dc = tp.root[2] + tp.back * u;
        let taper = 1.0 - 0.3 * t.clamp(0.0, 1.0);
        let (hs, hd) = (tp.half[0] * taper, tp.half[1] * taper);
        let (a, b) = ((s - sc) / hs, (d - dc) / hd);
        if a.abs() > 1.3 || b.abs() > 1.3 {
            return None;
        }
        // Outline bent by noise; a rounded tip (a half-ellipse ending at the length).
        let n = 0.12 * noise3(self.nseed ^ 0xb1, s / 5.0, ax / 5.0, d / 5.0);
        let core = (tp.length - hs).max(0.0);
        let tip = ((u - core).max(0.0) / hs).powi(2);
        let q = a * a + b * b + tip;
        if q > (1.0 + n).powi(2) {
            return None;
        }
        // Cortex within about 1 mm of the outline.
        let inner = (1.0 - 1.0 / hd.min(hs)).max(0.0);
        Some(if q > (inner * (1.0 + n)).powi(2) {
            Tissue::Cortex
        } else {
            Tissue::Marrow
        })
    }

    fn in_rib(&self, rib: &Rib, s: f64, ax: f64, d: f64) -> Option<Tissue> {
        // The nearest point of the axis polyline (3D), its parameter along the rib and the offset.
        let p = [s, ax, d];
        let mut best = (f64::INFINITY, 0usize, 0.0f64);
        // s grows by the same step along the axis: only the segments within reach in s (one more
        // either way for the joint before the head and the rounding beyond the tip), and of those
        // only the ones whose box in (x, d) is within reach.
        let m = rib.half_height.max(rib.half_thickness) + JOINT;
        let n = rib.axis.len();
        let step = rib.axis[1][0] - rib.axis[0][0];
        let k_lo = ((s - m - rib.axis[0][0]) / step).floor() - 1.0;
        let k_hi = ((s + m - rib.axis[0][0]) / step).ceil() + 1.0;
        let k_lo = k_lo.clamp(0.0, (n - 2) as f64) as usize;
        let k_hi = k_hi.clamp(0.0, (n - 2) as f64) as usize;
        for k in k_lo..=k_hi {
            let (a, b) = (rib.axis[k], rib.axis[k + 1]);
            let reach = m + 2.0 * RIB_STEP;
            if ax < a[1].min(b[1]) - reach
                || ax > a[1].max(b[1]) + reach
                || d < a[2].min(b[2]) - reach
                || d > a[2].max(b[2]) + reach
            {
                continue;
            }
            let v = [b[0] - a[0], b[1] - a[1], b[2] - a[2]];
            let w = [p[0] - a[0], p[1] - a[1], p[2] - a[2]];
            let vv = v[0] * v[0] + v[1] * v[1] + v[2] * v[2];
            let t = (w[0] * v[0] + w[1] * v[1] + w[2] * v[2]) / vv;
            // Before the head (the joint) and beyond the tip (its rounding) on the end segments.
            let lo = if k == 0 { -1.0 } else { 0.0 };
            let hi = if k + 2 == rib.axis.len() { 2.0 } else { 1.0 };
            let tc = t.clamp(lo, hi);
            let e = [w[0] - tc * v[0], w[1] - tc * v[1], w[2] - tc * v[2]];
            let d2 = e[0] * e[0] + e[1] * e[1] + e[2] * e[2];
            if d2 < best.0 {
                best = (d2, k, tc);
            }
        }
        let (d2, k, t) = best;
        if d2 > m * m {
            return None;
        }
        let (a, b) = (rib.axis[k], rib.axis[k + 1]);
        let v = [b[0] - a[0], b[1] - a[1], b[2] - a[2]];
        let len = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
        let tan = [v[0] / len, v[1] / len, v[2] / len];
        let q0 = [a[0] + t * v[0], a[1] + t * v[1], a[2] + t * v[2]];
        let e = [p[0] - q0[0], p[1] - q0[1], p[2] - q0[2]];
        // Thickness direction: horizontal (no s), normal to the rib's course; height: the rest.
        let hn = (tan[1] * tan[1] + tan[2] * tan[2]).sqrt().max(1e-9);
        let nrm = [0.0, -tan[2] / hn, tan[1] / hn];
        let up = [
            tan[1] * nrm[2] - tan[2] * nrm[1],
            tan[2] * nrm[0] - tan[0] * nrm[2],
            tan[0] * nrm[1] - tan[1] * nrm[0],
        ];
        let bt = e[0] * nrm[0] + e[1] * nrm[1] + e[2] * nrm[2];
        let bh = e[0] * up[0] + e[1] * up[1] + e[2] * up[2];
        let ell = (k as f64 + t) * RIB_STEP; // length from the head (negative: the joint)
        let total = (rib.axis.len() - 1) as f64 * RIB_STEP;
        let taper = 1.0 - 0.3 * (ell / total).clamp(0.0, 1.0);
        let n = 0.1
            * noise3(
                self.nseed ^ 0xb2 ^ rib.vertebra as u32,
                ell / 12.0,
                bh / 4.0,
                0.5,
            );
        let (hh, ht) = (
            rib.half_height * taper * (1.0 + n),
            rib.half_thickness * taper,
        );
        let q = (bh / hh).powi(2) + (bt / ht).powi(2);
        if ell < 0.0 {
            // The costovertebral joint in front of the head: cartilage with a fluid line.
            if q > 1.0 || ell < -JOINT {
                return None;
            }
            return Some(if (ell + 0.5 * JOINT).abs() < 0.25 {
                Tissue::JointFluid
            } else {
                Tissue::Cartilage
            });
        }
        // A rounded tip.
        let tip = ((ell - total).max(0.0) / ht).powi(2);
        if q + tip > 1.0 {
            return None;
        }
        let inner_h = (hh - 1.0).max(0.5) / hh;
        let inner_t = (ht - 1.0).max(0.5) / ht;
        Some(
            if (bh / (hh * inner_h)).powi(2) + (bt / (ht * inner_t)).powi(2) + tip > 1.0 {
                Tissue::Cortex
            } else {
                Tissue::Marrow
            },
        )
    }
}

/// Grows the box `b` (`[axis][min, max]`) to contain `ext`.
fn grow(b: &mut [[f64; 2]; 3], ext: &[[f64; 2]; 3]) {
    for (bb, e) in b.iter_mut().zip(ext) {
        bb[0] = bb[0].min(e[0]);
        bb[1] = bb[1].max(e[1]);
    }
}

/// A root sleeve's nerve, or its rim of fat, at (s, |x|, d).
fn in_sleeve(sl: &RootSleeve, s: f64, ax: f64, d: f64) -> Option<Tissue> {
    let (a, b) = (sl.from, sl.to);
    let v = [b[0] - a[0], b[1] - a[1], b[2] - a[2]];
    let w = [s - a[0], ax - a[1], d - a[2]];
    let vv = v[0] * v[0] + v[1] * v[1] + v[2] * v[2];
    let t = ((w[0] * v[0] + w[1] * v[1] + w[2] * v[2]) / vv).clamp(0.0, 1.0);
    let e = [w[0] - t * v[0], w[1] - t * v[1], w[2] - t * v[2]];
    let dist = (e[0] * e[0] + e[1] * e[1] + e[2] * e[2]).sqrt();
    let r = sl.radius * (1.0 - 0.2 * t);
    if dist < r {
        Some(Tissue::Nerve)
    } else if dist < r + 1.0 {
        Some(Tissue::Fat)
    } else {
        None
    }
}

//! The anterior column: vertebral bodies (cortical rim, concave endplates, trabecular marrow with
//! fatty islands, basivertebral vein, Modic changes, Schmorl nodes) and discs (annulus, nucleus
//! with its cleft, dehydration and height loss, vacuum phenomenon, high-intensity zone, and the
//! posterior contour: bulge, protrusion or extrusion in its zone, with migration).
//!
//! The graded spaces keep priority: the disc never enters the dural sac or the lateral recess
//! drawn by [`Anatomy::sac_at`] and [`Anatomy::recess_at`], so the grades still follow from the
//! narrowing degrees (spec section 7) whatever the herniation looks like.

use super::noise::{fbm3, noise3};
use super::pathology::{Herniation, HerniationType};
use super::{Anatomy, Tissue, N_DISC, S1};

/// Cortical shell thickness of the side walls (mm).
const WALL: f64 = 1.3;
/// Endplate thickness (mm).
const ENDPLATE: f64 = 0.9;

impl Anatomy {
    /// Organic outline factor of vertebra `v` at a point: the body's radius scaled by ~ +-4 %.
    fn body_wobble(&self, v: usize, x: f64, d: f64, s: f64) -> f64 {
        1.0 + 0.04 * noise3(self.nseed ^ (v as u32 * 0x9e37), x / 9.0, d / 9.0, s / 14.0)
    }

    /// Irregularity (mm, positive into the body) of the upper (`which` 0) or lower (1) endplate
    /// of vertebra `v` at (x, d): smooth noise with features of a few millimetres, amplitude 0.3 mm
    /// rising to 0.7 mm next to a collapsed disc (`dg` its degeneration; K: endplate irregularity
    /// and sclerosis go with disc degeneration), over the central endplate, fading to nothing at
    /// the smooth ring apophysis of the rim (`q` the normalised radius squared, 1 at the rim).
    fn endplate_roughness(&self, v: usize, x: f64, d: f64, which: u32, dg: f64, q: f64) -> f64 {
        let seed = self.nseed ^ 0xe9d0 ^ (v as u32 * 97) ^ (which * 0x51);
        let central = ((0.7 - q) / 0.4).clamp(0.0, 1.0);
        (0.3 + 0.4 * dg) * central * noise3(seed, x / 3.0, d / 3.0, 0.5 * which as f64)
    }

    /// Depth of the endplate's central concavity at normalised radius `q` (0 centre, 1 rim).
    fn concavity(&self, q: f64) -> f64 {
        self.endplate_cav * (1.0 - q).max(0.0).powi(2)
    }

    /// The column's tissue at anatomical (s, x, d), or `None` outside bodies and discs. `j` is the
    /// nearest disc.
    pub(super) fn column(&self, s: f64, x: f64, d: f64, j: usize) -> Option<Tissue> {
        let (above, below) = (j, j + 1);
        for &v in &[above, below] {
            let (w, dd) = (self.body_w[v], self.body_d[v]);
            if s < self.s_top[v] - 0.8 || s > self.s_bot[v] + 0.8 {
                continue;
            }
            let r2 = (x / w).powi(2) + ((d + dd) / dd).powi(2);
            if r2 > 1.2 {
                continue;
            }
            let wob2 = self.body_wobble(v, x, d, s).powi(2);
            let q = r2 / wob2;
            if q > 1.0 {
                continue;
            }
            // Endplates: the central concavity, and an irregular surface (zero-mean, rougher
            // next to a degenerated disc), its noise only near the endplate.
            let cav = self.concavity(q);
            let top = self.s_top[v]
                + cav
                + if s < self.s_top[v] + self.endplate_cav + 1.5 && v > 0 {
                    self.endplate_roughness(v, x, d, 0, self.disc_deg[v - 1], q)
                } else {
                    0.0
                };
            let bot = self.s_bot[v]
                - cav
                - if s > self.s_bot[v] - self.endplate_cav - 1.5 && v < N_DISC {
                    self.endplate_roughness(v, x, d, 1, self.disc_deg[v], q)
                } else {
                    0.0
                };
            // Schmorl nodes: disc material through the endplate, rimmed by sclerotic bone.
            let mut node_rim = false;
            for n in &self.findings.schmorl {
                let (ep, dir) = if n.upward && n.disc == v {
                    (bot, -1.0)
                } else if !n.upward && n.disc + 1 == v {
                    (top, 1.0)
                } else {
                    continue;
                };
                let dn = -2.0 * dd * n.depth_frac;
                let r = ((x - n.x).powi(2) + (d - dn).powi(2) + ((s - ep) * dir).powi(2)).sqrt();
                if (s - ep) * dir > -0.5 && r < n.radius + 0.9 {
                    if r < n.radius {
                        return Some(Tissue::Annulus);
                    }
                    node_rim = true;
                }
            }
            if node_rim {
                return Some(Tissue::Cortex);
            }
            if s < top || s > bot {
                continue;
            }
            let edge = (s - top).min(bot - s);
            let qi = (x / (w - WALL)).powi(2) + ((d + dd) / (dd - WALL)).powi(2);
            if edge < ENDPLATE || qi > wob2 {
                return Some(Tissue::Cortex);
            }
            if v >= N_DISC || v > S1 + 1 {
                return Some(Tissue::Marrow);
            }
            // Basivertebral vein: a notch in the middle of the posterior wall.
            let mid = 0.5 * (self.s_top[v] + self.s_bot[v]);
            if x.abs() < 2.2
                && d > -5.0 - 2.0 * (1.0 - ((s - mid) / 2.0).powi(2)).max(0.0)
                && (s - mid).abs() < 2.0
            {
                return Some(Tissue::Fat);
            }
            // Modic changes in a band along the endplate of a degenerated disc (the band's noise
            // only where a band can reach: it is at most 8.5 mm deep).
            let modic = if s - top < 8.5 || bot - s < 8.5 {
                let band = 6.0 + 2.5 * noise3(self.nseed ^ 0x4d0d, x / 6.0, d / 6.0, v as f64);
                if s - top < band && v > 0 {
                    self.findings.modic_at(v - 1, false)
                } else if bot - s < band {
                    self.findings.modic_at(v, true)
                } else {
                    0
                }
            } else {
                0
            };
            if modic > 0 && q < 0.8 {
                return Some(if modic == 1 {
                    Tissue::MarrowOedema
                } else {
                    Tissue::MarrowFat
                });
            }
            // Trabecular texture: fatty islands, more with age.
            let thr = 0.7 - 0.004 * (self.morph.age - 50.0);
            let t = fbm3(self.nseed ^ (v as u32), x / 3.5, d / 3.5, s / 3.5);
            return Some(if t > thr {
                Tissue::MarrowFat
            } else {
                Tissue::Marrow
            });
        }
        // The disc, including the endplates' concavities.
        let cmax = self.endplate_cav;
        if s > self.s_bot[above] - cmax && s < self.s_top[below] + cmax && above < N_DISC {
            let in_margin = s <= self.s_bot[above] || s >= self.s_top[below];
            let dg = self.disc_deg[j];
            let w = 0.5 * (self.body_w[above] + self.body_w[below]) + 1.0 + 1.5 * dg;
            let dd = 0.5 * (self.body_d[above] + self.body_d[below]);
            if in_margin && (x / w).powi(2) + ((d + dd) / dd).powi(2) > 0.95 {
                return None;
            }
            let ax = x.abs();
            let side = if x >= 0.0 { 0 } else { 1 };
            let in_sac = d > 0.0 && self.in_sac(s, x, d, j);
            let in_recess = d > 0.0 && ax > 0.6 * self.sac_rx && ax < self.canal_w && {
                let (xr, dr, hx, hd) = self.recess_at(s, j, side);
                ((ax - xr) / hx).powi(2) + ((d - dr) / hd).powi(2) <= 1.0
            };
            if in_sac || in_recess {
                return None;
            }
            // A paracentral herniation reaches back to the sac wall it indents.
            if d >= -0.5 && self.sac_indent(s, j, x) > 0.25 {
                let (dc, rx, rd) = self.sac_at(s, j);
                let e = (1.0 - (x / rx).powi(2)).max(0.0).sqrt();
                if d < dc - rd * e + self.sac_indent(s, j, x) {
                    return Some(Tissue::Annulus);
                }
            }
            // Posterior contour: a broad bulge from degeneration, the part that meets the narrowed
            // sac centrally, and the focal herniation of this level.
            let central = (1.0 - (x / self.sac_rx).powi(2)).max(0.0);
            let mut bulge = 0.8 + 2.0 * dg + 1.2 * self.sac_rd * self.spinal_deg[j] * central;
            let hern = self.herniation(j);
            if let Some(h) = hern {
                bulge += h.amplitude * (-0.5 * ((x - h.x) / h.width).powi(2)).exp();
            }
            let dback = if d > -dd { dd + bulge } else { dd + 1.0 };
            let q = (x / w).powi(2) + ((d + dd) / dback).powi(2);
            if q <= 1.0 {
                if j >= S1 {
                    return Some(Tissue::Cortex); // fused sacral segments
                }
                // A sacralised L5: bone bridges the rudimentary disc's lateral part on a fused
                // side.
                if j == S1 - 1
                    && self.transitional == super::Transitional::SacralisedL5
                    && self.fused_sides[side]
                    && ax > (0.72 + 0.06 * noise3(self.nseed ^ 0x5ac, d / 6.0, s / 3.0, 0.0)) * w
                {
                    return Some(Tissue::Cortex);
                }
                let h = self.s_top[below] - self.s_bot[above] + cmax;
                let ds = self.disc_s(j);
                // Annular fissure: a bright dot in the posterior annulus.
                if (3..8).contains(&j) && self.findings.hiz[j - 3] {
                    let xh = 3.0 * self.findings.hiz_side(j - 3);
                    if ((x - xh) / 2.0).powi(2)
                        + ((d + 1.8) / 1.0).powi(2)
                        + ((s - ds) / 1.4).powi(2)
                        <= 1.0
                    {
                        return Some(Tissue::JointFluid);
                    }
                }
                // Vacuum phenomenon in collapsed discs.
                if dg > 0.85 && fbm3(self.nseed ^ 0x7ac, x / 3.0, d / 3.0, s) > 0.55 && d < -3.0 {
                    return Some(Tissue::Air);
                }
                let wob = 1.0 + 0.12 * noise3(self.nseed ^ (j as u32 * 31), x / 7.0, d / 7.0, 0.3);
                let (nw, nd, nh) = (
                    0.5 * w * wob * (1.0 - 0.35 * dg),
                    0.45 * dd * wob,
                    0.38 * h * (1.0 - 0.45 * dg),
                );
                let qn = (x / nw).powi(2) + ((d + dd + 1.5) / nd).powi(2) + ((s - ds) / nh).powi(2);
                if qn <= 1.0 {
                    let cleft = (3..8).contains(&j) && self.findings.cleft[j - 3];
                    if cleft && (s - ds).abs() < 0.55 && qn < 0.7 {
                        return Some(Tissue::Annulus);
                    }
                    return Some(Tissue::Nucleus(j as u8));
                }
                return Some(Tissue::Annulus);
            }
            // An extruded fragment migrating behind the body above or below (epidural space).
            if let Some(h) = hern {
                if h.kind == HerniationType::Extrusion && d >= 0.0 {
                    let c = self.disc_s(j) + h.migration_mm;
                    let r = ((x - h.x) / (h.width + 1.0)).powi(2)
                        + ((d - 1.0) / (0.6 * h.amplitude + 1.0)).powi(2)
                        + ((s - c) / (0.5 * h.migration_mm.abs() + 3.0)).powi(2);
                    if r <= 1.0 {
                        return Some(Tissue::Annulus);
                    }
                }
            }
        } else if let Some(h) = self.herniation(j) {
            // A migrated fragment can reach beyond the disc space.
            if h.kind == HerniationType::Extrusion && (0.0..6.0).contains(&d) {
                let ax = x.abs();
                let side = if x >= 0.0 { 0 } else { 1 };
                let in_sac = self.in_sac(s, x, d, j);
                let in_recess = ax > 0.6 * self.sac_rx && ax < self.canal_w && {
                    let (xr, dr, hx, hd) = self.recess_at(s, j, side);
                    ((ax - xr) / hx).powi(2) + ((d - dr) / hd).powi(2) <= 1.0
                };
                let c = self.disc_s(j) + h.migration_mm;
                let r = ((x - h.x) / (h.width + 1.0)).powi(2)
                    + ((d - 1.0) / (0.6 * h.amplitude + 1.0)).powi(2)
                    + ((s - c) / (0.5 * h.migration_mm.abs() + 3.0)).powi(2);
                if r <= 1.0 && !in_sac && !in_recess {
                    return Some(Tissue::Annulus);
                }
            }
        }
        None
    }

    /// The focal herniation of disc `j` (lumbar discs only).
    pub fn herniation(&self, j: usize) -> Option<&Herniation> {
        if (3..8).contains(&j) {
            self.findings.herniation[j - 3].as_ref()
        } else {
            None
        }
    }
}

//! Soft tissue and organs around the spine, in the anatomical frame: paraspinal muscles (multifidus
//! and erector spinae, with fatty infiltration growing with age), psoas, quadratus lumborum,
//! kidneys with sinus and perirenal fat, the liver's lower edge on the right, bowel loops with
//! varied content and gas, retroperitoneal fat, and on the low slices the sacral alae, sacroiliac
//! joints and iliac wings. Outlines are deformed by smooth noise so that no two patients (or
//! levels) share a silhouette.

use super::noise::{fbm3, noise3};
use super::{Anatomy, Tissue, L1, S1};

impl Anatomy {
    /// The soft tissue or organ at anatomical (s, x, d) outside the spinal column.
    pub(super) fn soft_tissue(&self, s: f64, x: f64, d: f64) -> Tissue {
        let ax = x.abs();
        let seed = self.nseed;
        let wob = |k: u32, scale: f64| noise3(seed ^ k, x / scale, d / scale, s / (2.0 * scale));
        // Pelvis: sacral alae, sacroiliac joints and iliac wings.
        if let Some(t) = self.pelvis(s, x, d) {
            return t;
        }
        // Ribs with their costovertebral joints, transverse processes.
        if let Some(t) = self.rib_or_process(s, x, d) {
            return t;
        }
        // Paraspinal muscles: multifidus medially, erector spinae laterally, a fat plane between.
        let pd = self.lamina_d + 16.0;
        let q0 = ((ax - (self.canal_w + 20.0)) / 32.0).powi(2) + ((d - pd) / 28.0).powi(2);
        let near_para = q0 < 1.45;
        // The outline's noise scales both half-axes by `pr` in [0.92, 1.08]: inside for sure when
        // q0 <= 0.92^2, outside for sure beyond 1.08^2; the noise only in between.
        let pr = if near_para && q0 > 0.8464 {
            1.0 + 0.08 * wob(0x11, 20.0)
        } else {
            1.0
        };
        if near_para
            && ax > 4.0
            && (q0 <= 0.8464
                || ((ax - (self.canal_w + 20.0)) / (32.0 * pr)).powi(2)
                    + ((d - pd) / (28.0 * pr)).powi(2)
                    <= 1.0)
        {
            let plane0 = self.canal_w + 14.0;
            if (ax - plane0).abs() < 3.9 && d > self.lamina_d + 6.0 {
                let plane = plane0 + 3.0 * wob(0x12, 15.0);
                if (ax - plane).abs() < 0.9 {
                    return Tissue::Fat;
                }
            }
            // Fatty infiltration: streaks, more with age and lower down.
            let low = ((s - self.s_top[L1 + 2]) / 80.0).clamp(0.0, 1.0);
            let thr = 0.9 - 0.005 * (self.morph.age - 40.0).max(0.0) - 0.1 * low;
            if fbm3(seed ^ 0x13, x / 5.0, d / 5.0, s / 12.0) > thr {
                return Tissue::Fat;
            }
            return Tissue::Muscle;
        }
        // A fat plane around the paraspinal muscles (the thoracolumbar fascia's fat).
        if near_para
            && ax > 4.0
            && d > self.lamina_d - 6.0
            && ((ax - (self.canal_w + 20.0)) / (32.0 * pr + 2.0)).powi(2)
                + ((d - pd) / (28.0 * pr + 2.0)).powi(2)
                <= 1.0
        {
            return Tissue::Fat;
        }
        // Psoas: from L1, growing towards the pelvis.
        if s > self.s_top[L1] && s < self.s_bot[S1 + 1] {
            let grow =
                ((s - self.s_top[L1]) / (self.s_bot[S1 - 1] - self.s_top[L1])).clamp(0.0, 1.0);
            let r0 = 6.0 + 16.0 * grow;
            let px = self.body_w[L1 + 2]
                + r0 * 0.6
                + 4.0
                + 10.0 * ((s - self.s_bot[S1 - 1]) / 60.0).max(0.0);
            let q0 =
                ((ax - px) / (1.1 * r0)).powi(2) + ((d + 18.0 + r0 * 0.3) / (0.9 * r0)).powi(2);
            if q0 < 1.3 {
                let r = r0 * (1.0 + 0.1 * wob(0x21, 12.0));
                if ((ax - px) / (1.1 * r)).powi(2) + ((d + 18.0 + r0 * 0.3) / (0.9 * r)).powi(2)
                    < 1.0
                {
                    return Tissue::Muscle;
                }
            }
        }
        // Quadratus lumborum, lateral to the psoas.
        if s > self.s_top[L1] && s < self.s_bot[L1 + 3] {
            let qx = self.body_w[L1 + 2] + 42.0;
            if ((ax - qx) / 14.0).powi(2) + ((d - 5.0) / 10.0).powi(2) <= 1.25 {
                let r = 1.0 + 0.1 * wob(0x22, 10.0);
                if ((ax - qx) / (14.0 * r)).powi(2) + ((d - 5.0) / (10.0 * r)).powi(2) <= 1.0 {
                    return Tissue::Muscle;
                }
            }
        }
        // Kidneys: posterior, beside the psoas, T12-L3 (the right one lower), with sinus fat and a
        // rim of perirenal fat.
        for (sign, drop) in [(1.0, 0.0), (-1.0, 15.0)] {
            let cs = 0.5 * (self.s_top[L1] + self.s_bot[L1]) + 10.0 + drop;
            let cx = sign * (self.body_w[L1 + 2] + 50.0);
            let q0 =
                ((x - cx) / 25.0).powi(2) + ((d + 12.0) / 20.0).powi(2) + ((s - cs) / 55.0).powi(2);
            if q0 > 1.6 {
                continue;
            }
            let r = 1.0 + 0.06 * wob(0x31, 15.0);
            let q = ((x - cx) / (25.0 * r)).powi(2)
                + ((d + 12.0) / (20.0 * r)).powi(2)
                + ((s - cs) / (55.0 * r)).powi(2);
            if q <= 1.0 {
                // Renal sinus: the medial hilum.
                let qs = ((x - cx + sign * 10.0) / 9.0).powi(2)
                    + ((d + 12.0) / 8.0).powi(2)
                    + ((s - cs) / 25.0).powi(2);
                return if qs <= 1.0 {
                    Tissue::Fat
                } else {
                    Tissue::Kidney
                };
            }
            if q <= 1.35 {
                return Tissue::Fat;
            }
        }
        if d >= -8.0 {
            // Posterior body wall (latissimus, obliques' posterior fibres, gluteal muscles low
            // down) in a rounded compartment behind the spine; flank fat beside it.
            let rd = self.back_d + 8.0;
            let q0 = (ax / (0.6 * self.torso_w)).powi(2) + ((d - self.back_d) / rd).powi(2);
            let inside = if (q0 - 1.0).abs() < 0.2 {
                let rx = 0.6 * self.torso_w * (1.0 + 0.08 * wob(0x42, 40.0));
                (ax / rx).powi(2) + ((d - self.back_d) / rd).powi(2) <= 1.0
            } else {
                q0 <= 1.0
            };
            if inside {
                if wob(0x41, 40.0).abs() < 0.015 {
                    return Tissue::Fat;
                }
                return Tissue::Muscle;
            }
            return Tissue::Fat;
        }
        // Liver: right upper quadrant, down to about L2, with an irregular lower edge.
        if x < -15.0 && d < -25.0 && s < self.s_top[L1 + 1] + 16.0 {
            let edge = self.s_top[L1 + 1] + 15.0 * wob(0x51, 30.0);
            if s < edge + 0.15 * (x + 15.0) {
                return Tissue::Liver;
            }
        }
        // Retroperitoneal fat around the spine.
        let bd = self.body_d[L1 + 2];
        let near = (x / (self.body_w[L1 + 2] + 14.0)).powi(2) + ((d + bd) / (bd + 12.0)).powi(2);
        if near <= 1.2 && near * (1.0 + 0.15 * wob(0x61, 20.0)) <= 1.0 {
            return Tissue::Fat;
        }
        self.bowel(x, d, s, bd)
    }

    /// Bowel loops as tubes: each is the neighbourhood of the curve where two smooth noise fields
    /// both vanish (a tangled network, cut as circles, ovals and sausages by any plane), with a
    /// wall, content that changes along the bowel (fluid, mottled stool, gas), gas rising to the
    /// anterior (non-dependent) side of a supine patient's loop above an air-fluid level, and
    /// mesentery (fat with collapsed loops) between them.
    fn bowel(&self, x: f64, d: f64, s: f64, bd: f64) -> Tissue {
        let seed = self.nseed;
        let sc = 34.0;
        const R: f64 = 0.3;
        const WALL: f64 = 0.055;
        // The tube's radius in noise units; the second field only when the first is small enough
        // for the point to be within a tube (the answer is the same).
        let rho = |k: u32, d: f64| {
            let n1 = noise3(seed ^ k, x / sc, d / sc, s / sc);
            if n1.abs() >= R + WALL {
                return n1.abs();
            }
            let n2 = noise3(seed ^ (k + 1), x / sc + 5.3, d / sc + 1.7, s / sc + 3.1);
            (n1 * n1 + n2 * n2).sqrt()
        };
        for k in [0x71u32, 0x171] {
            let r = rho(k, d);
            if r >= R + WALL {
                continue;
            }
            if r >= R {
                return Tissue::Viscera; // the wall
            }
            // Content, varying slowly along the bowel.
            let c = noise3(seed ^ (k + 2), x / 45.0, d / 45.0, s / 45.0);
            if c > 0.2 && d < -2.0 * bd - 15.0 && rho(k, d - 4.0) >= R {
                return Tissue::Air; // gas above the level
            }
            if c < -0.15 {
                return Tissue::Bowel; // fluid
            }
            // Stool: mottled, with gas bubbles.
            let m = noise3(seed ^ (k + 3), x / 3.0, d / 3.0, s / 3.0);
            return if m > 0.55 {
                Tissue::Air
            } else if m > -0.1 {
                Tissue::Viscera
            } else {
                Tissue::Bowel
            };
        }
        // Mesentery: fat with vessels and collapsed loops.
        if noise3(seed ^ 0x79, x / 11.0, d / 11.0, s / 14.0) > 0.15 {
            Tissue::Viscera
        } else {
            Tissue::Fat
        }
    }

    /// Sacral alae, sacroiliac joints and iliac wings. On the fused side(s) of a sacralised L5 the
    /// ala reaches up beside the L5 body: its enlarged transverse process fused to the sacrum.
    fn pelvis(&self, s: f64, x: f64, d: f64) -> Option<Tissue> {
        let ax = x.abs();
        let crest = self.disc_s(S1 - 2) - 5.0; // iliac crests about the L4/5 disc
        if s < crest || s > self.s_bot[S1 + 2] + 10.0 {
            return None;
        }
        let bw = self.body_w[S1];
        let bd = self.body_d[S1];
        // Sacral ala: bone lateral to the S1-S3 bodies, up to the sacroiliac joint.
        let joint_x = bw + 24.0 + 2.0 * noise3(self.nseed ^ 0x81, s / 15.0, d / 15.0, 0.0);
        let fused = self.transitional == super::Transitional::SacralisedL5
            && self.fused_sides[if x >= 0.0 { 0 } else { 1 }];
        let ala_top = if fused {
            let h5 = self.s_bot[S1 - 1] - self.s_top[S1 - 1];
            self.s_top[S1 - 1]
                + (0.4 + 0.08 * noise3(self.nseed ^ 0x83, ax / 12.0, d / 12.0, 0.5)) * h5
        } else {
            self.s_top[S1] + 2.0
        };
        let in_sacrum = s > ala_top && s < self.s_bot[S1 + 2];
        if in_sacrum && ax >= bw - 2.0 && ax < joint_x && d > -2.0 * bd + 6.0 && d < 14.0 {
            let edge = (ax - joint_x).abs().min(d + 2.0 * bd - 6.0).min(14.0 - d);
            return Some(if edge < 1.2 {
                Tissue::Cortex
            } else {
                Tissue::Marrow
            });
        }
        if in_sacrum && ax >= joint_x && ax < joint_x + 2.0 && d > -2.0 * bd + 6.0 && d < 14.0 {
            return Some(if (ax - joint_x - 1.0).abs() < 0.4 {
                Tissue::JointFluid
            } else {
                Tissue::Cartilage
            });
        }
        // Iliac wing: a curved plate from the joint forwards and outwards; only its lateral rim
        // near the crest.
        let (ax0, d0) = (joint_x + 2.0, 10.0);
        let (ax1, d1) = (bw + 110.0, -60.0);
        let (vx, vd) = (ax1 - ax0, d1 - d0);
        let len2 = vx * vx + vd * vd;
        let t = ((ax - ax0) * vx + (d - d0) * vd) / len2;
        let t_min = (0.75 - (s - crest) / 40.0).max(0.0);
        if t < t_min || t > 1.0 {
            return None;
        }
        // Bow the plate outwards (concave inner table).
        let bow = 12.0 * (std::f64::consts::PI * t).sin();
        let px = ax0 + vx * t - bow * vd / len2.sqrt();
        let pd = d0 + vd * t + bow * vx / len2.sqrt();
        let dist = ((ax - px).powi(2) + (d - pd).powi(2)).sqrt();
        let thick = 4.0 + 5.0 * (1.0 - t) + 1.5 * noise3(self.nseed ^ 0x82, s / 10.0, t * 4.0, 0.0);
        if dist < thick {
            return Some(if dist > thick - 1.3 {
                Tissue::Cortex
            } else {
                Tissue::Marrow
            });
        }
        None
    }
}

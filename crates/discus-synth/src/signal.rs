//! MR signal: tissue relaxation times and proton densities, spin-echo and STIR signal equations.
//!
//! Values are literature figures at 1.5 T and 3 T (T1 lengthens with field, T2 shortens slightly);
//! fat's T2 is the apparent T2 under fast spin echo (J-coupling makes fat bright on FSE T2).
//! - spin echo: `S = PD (1 - exp(-TR/T1)) exp(-TE/T2)`
//! - STIR (inversion recovery): `S = PD |1 - 2 exp(-TI/T1) + exp(-TR/T1)| exp(-TE/T2)`, with TI near
//!   `T1_fat ln 2`, which nulls fat.

use crate::anatomy::{Tissue, NUCLEUS_BASE, N_DISC, N_TISSUE_CODES};
use serde::{Deserialize, Serialize};

/// Relaxation parameters of one tissue at one field strength (ms; PD relative).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Relax {
    /// Longitudinal relaxation time T1 (ms).
    pub t1: f64,
    /// Transverse relaxation time T2 (ms).
    pub t2: f64,
    /// Proton density, relative to water.
    pub pd: f64,
}

/// The pulse sequence of a series.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Sequence {
    /// Spin echo (fast spin echo) with its RepetitionTime and EchoTime (ms).
    SpinEcho {
        /// RepetitionTime (0018,0080), ms.
        tr: f64,
        /// EchoTime (0018,0081), ms.
        te: f64,
    },
    /// Short-tau inversion recovery: fat-nulled by the inversion time.
    Stir {
        /// RepetitionTime (0018,0080), ms.
        tr: f64,
        /// EchoTime (0018,0081), ms.
        te: f64,
        /// InversionTime (0018,0082), ms.
        ti: f64,
    },
}

impl Sequence {
    /// RepetitionTime (0018,0080), ms.
    pub fn tr(&self) -> f64 {
        match *self {
            Sequence::SpinEcho { tr, .. } | Sequence::Stir { tr, .. } => tr,
        }
    }
    /// EchoTime (0018,0081), ms.
    pub fn te(&self) -> f64 {
        match *self {
            Sequence::SpinEcho { te, .. } | Sequence::Stir { te, .. } => te,
        }
    }
    /// InversionTime (0018,0082) in ms, for STIR; `None` for spin echo.
    pub fn ti(&self) -> Option<f64> {
        match *self {
            Sequence::SpinEcho { .. } => None,
            Sequence::Stir { ti, .. } => Some(ti),
        }
    }
    /// The signal of a tissue.
    pub fn signal(&self, r: Relax) -> f64 {
        match *self {
            Sequence::SpinEcho { tr, te } => r.pd * (1.0 - (-tr / r.t1).exp()) * (-te / r.t2).exp(),
            Sequence::Stir { tr, te, ti } => {
                r.pd * (1.0 - 2.0 * (-ti / r.t1).exp() + (-tr / r.t1).exp()).abs()
                    * (-te / r.t2).exp()
            }
        }
    }
}

/// Relaxation parameters of a tissue at a field strength (T). Nuclei interpolate between a hydrated
/// and a desiccated disc by `disc_degeneration`.
pub fn relax(t: Tissue, field_t: f64, disc_degeneration: f64) -> Relax {
    let hi = field_t > 2.0;
    let r = |t1_15: f64, t1_3: f64, t2_15: f64, t2_3: f64, pd: f64| Relax {
        t1: if hi { t1_3 } else { t1_15 },
        t2: if hi { t2_3 } else { t2_15 },
        pd,
    };
    match t {
        Tissue::Air => Relax {
            t1: 1000.0,
            t2: 1.0,
            pd: 0.0,
        },
        Tissue::Fat => r(260.0, 380.0, 130.0, 120.0, 1.0),
        Tissue::Muscle => r(870.0, 1420.0, 55.0, 50.0, 0.8),
        Tissue::Viscera => r(700.0, 1000.0, 70.0, 60.0, 0.8),
        Tissue::Vessel => r(1200.0, 1600.0, 150.0, 130.0, 0.04), // flow void
        Tissue::Marrow => r(550.0, 700.0, 75.0, 65.0, 0.85),
        Tissue::Cortex => r(1000.0, 1200.0, 1.5, 1.2, 0.05),
        Tissue::Annulus => r(900.0, 1100.0, 45.0, 38.0, 0.65),
        Tissue::Csf => r(4000.0, 4300.0, 2000.0, 1800.0, 1.0),
        Tissue::Nerve => r(800.0, 1050.0, 75.0, 70.0, 0.72),
        Tissue::Ligament => r(600.0, 800.0, 25.0, 22.0, 0.45),
        Tissue::JointFluid => r(3000.0, 3500.0, 500.0, 450.0, 0.95),
        // Yellow marrow: close to fat, a little water (Baum 2018 fat fractions; K).
        Tissue::MarrowFat => r(320.0, 420.0, 110.0, 100.0, 0.95),
        // Modic 1: oedematous marrow, long T1 and T2 (K).
        Tissue::MarrowOedema => r(1100.0, 1300.0, 110.0, 95.0, 0.95),
        // Hyaline cartilage (Stanisz 2005: 1.5 T 1024/30, 3 T 1168/27).
        Tissue::Cartilage => r(1024.0, 1168.0, 30.0, 27.0, 0.7),
        // Liver (Stanisz 2005: 1.5 T 576/46, 3 T 812/42).
        Tissue::Liver => r(576.0, 812.0, 46.0, 42.0, 0.75),
        // Kidney, cortex and medulla averaged (de Bazelaire 2004 at 3 T: 1142/76 and 1545/81;
        // 1.5 T: 966/87 and 1412/85).
        Tissue::Kidney => r(1190.0, 1340.0, 86.0, 78.0, 0.85),
        // Bowel wall and mixed content (K: fluid-rich, intermediate T1).
        Tissue::Bowel => r(900.0, 1100.0, 120.0, 110.0, 0.85),
        Tissue::Nucleus(_) => {
            let g = disc_degeneration.clamp(0.0, 1.0);
            let healthy = r(1100.0, 1250.0, 160.0, 140.0, 1.0);
            let dry = r(900.0, 1050.0, 45.0, 40.0, 0.65);
            Relax {
                t1: healthy.t1 + (dry.t1 - healthy.t1) * g,
                t2: healthy.t2 + (dry.t2 - healthy.t2) * g,
                pd: healthy.pd + (dry.pd - healthy.pd) * g,
            }
        }
    }
}

/// Signal per tissue code for one series of one patient.
pub fn signal_table(
    seq: &Sequence,
    field_t: f64,
    disc_deg: &[f64; N_DISC],
) -> [f32; N_TISSUE_CODES] {
    let mut out = [0f32; N_TISSUE_CODES];
    for t in Tissue::PLAIN {
        out[t.code()] = seq.signal(relax(t, field_t, 0.0)) as f32;
    }
    for (i, &g) in disc_deg.iter().enumerate() {
        out[NUCLEUS_BASE + i] = seq.signal(relax(Tissue::Nucleus(i as u8), field_t, g)) as f32;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_contrasts() {
        let t1 = Sequence::SpinEcho {
            tr: 550.0,
            te: 12.0,
        };
        let t2 = Sequence::SpinEcho {
            tr: 4000.0,
            te: 100.0,
        };
        let stir = Sequence::Stir {
            tr: 4000.0,
            te: 50.0,
            ti: 180.0,
        };
        for field in [1.5, 3.0] {
            let s = |q: &Sequence, t: Tissue, g: f64| q.signal(relax(t, field, g));
            // CSF dark on T1, bright on T2; fat bright on both; fat nulled on STIR (at 1.5 T TI).
            assert!(s(&t1, Tissue::Csf, 0.0) < 0.5 * s(&t1, Tissue::Fat, 0.0));
            assert!(s(&t2, Tissue::Csf, 0.0) > s(&t2, Tissue::Muscle, 0.0) * 3.0);
            assert!(s(&t2, Tissue::Fat, 0.0) > s(&t2, Tissue::Muscle, 0.0) * 2.0);
            assert!(s(&t2, Tissue::Nucleus(0), 0.0) > 2.0 * s(&t2, Tissue::Nucleus(0), 1.0));
            if field < 2.0 {
                assert!(s(&stir, Tissue::Fat, 0.0) < 0.1 * s(&stir, Tissue::Csf, 0.0));
            }
        }
    }
}

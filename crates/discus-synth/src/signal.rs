//! MR signal: tissue relaxation times, proton densities and fat fractions at 1.5 T and 3 T, and the
//! signal of the two compartments (water, fat) of a tissue under spin echo / turbo spin echo, spectral
//! fat saturation and STIR.
//!
//! Values are literature figures (see /work/shared/spec/anatomy-mr.md section 5; \[n\] below are its
//! sources): T1 lengthens with field, T2 shortens slightly.
//! - muscle 1008/44 at 1.5 T, 1412/50 at 3 T (Stanisz 2005 \[38\]), PD 0.8 of water; the in-vivo
//!   multi-echo 856/27 and 898/29 \[36, 37\] would make muscle darker than the annulus on T2, which
//!   clinical FSE images do not show; annulus T2 38/35 ms (the degenerated end of \[42\]), PD 0.6;
//! - CSF 4280/2030 (1.5 T), 4160/2100 (3 T) \[36\];
//! - subcutaneous fat 382/68 at 3 T \[37\], T1 260 at 1.5 T (the T1 that puts the STIR null at the
//!   clinical 1.5 T TI of 150-180 ms \[44-46\]); fat's spin-echo T2 is lengthened under a turbo spin echo
//!   train by J-coupling suppression (fat is bright on FSE T2, [`Sequence::fat_t2_factor`]);
//! - marrow is two compartments: fat (fraction 0.4: 27-35 % at age 20-39, rising with age \[39\]) with
//!   fat's relaxation, and water with T1 ~1000 ms, T2 ~40 ms;
//! - nucleus pulposus by degeneration `g` in \[0, 1\] (Pfirrmann grade `1 + 4 g`): T2 log-linear through
//!   the published grade means I 210, II 129, III 84, IV 51 ms \[42\]; T1 and PD from the SyMRI normal
//!   (1165 ms, PD 79) to desiccated (554 ms, PD 48) discs \[41\], PD relative to CSF's 107.5;
//! - cortical bone PD 0.05, T2 < 1 ms \[36, 38\]; flowing blood is a flow void (PD ~0).
//!
//! Signal of one compartment (PD, T1, T2):
//! - spin echo / TSE: `S = PD (1 - exp(-TR/T1)) exp(-TE/T2)` (TE the effective echo time);
//! - STIR (inversion recovery): `S = PD |1 - 2 exp(-TI/T1) + exp(-TR/T1)| exp(-TE/T2)`, with TI near
//!   `T1_fat ln 2`, which nulls fat;
//! - spectral fat saturation leaves a `residual` fraction of the fat compartment (more where B0 is
//!   less homogeneous: see [`crate::raster`]).

use crate::anatomy::{Tissue, N_DISC, N_TISSUE_CODES};
use serde::{Deserialize, Serialize};

/// Relaxation parameters of one tissue at one field strength (ms; PD relative).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Relax {
    /// Longitudinal relaxation time T1 (ms) of the water compartment.
    pub t1: f64,
    /// Transverse relaxation time T2 (ms) of the water compartment.
    pub t2: f64,
    /// Proton density, relative to water.
    pub pd: f64,
    /// Fraction of the protons in fat (0 for water tissues, 1 for fat); the fat compartment relaxes
    /// like [`Tissue::Fat`].
    #[serde(default)]
    pub fat: f64,
}

/// The pulse sequence of a series.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Sequence {
    /// Spin echo / turbo (fast) spin echo with its RepetitionTime, EchoTime (ms), echo train length
    /// and optional spectral fat saturation.
    SpinEcho {
        /// RepetitionTime (0018,0080), ms.
        tr: f64,
        /// EchoTime (0018,0081), ms (the effective echo time of a TSE train).
        te: f64,
        /// EchoTrainLength (0018,0091); 1 for conventional spin echo.
        #[serde(default = "one_u32")]
        etl: u32,
        /// Spectral fat saturation: the fraction of fat signal left at the isocentre (`None`: no fat
        /// saturation).
        #[serde(default)]
        fat_sat: Option<f64>,
    },
    /// Short-tau inversion recovery: fat-nulled by the inversion time.
    Stir {
        /// RepetitionTime (0018,0080), ms.
        tr: f64,
        /// EchoTime (0018,0081), ms.
        te: f64,
        /// InversionTime (0018,0082), ms.
        ti: f64,
        /// EchoTrainLength (0018,0091).
        #[serde(default = "one_u32")]
        etl: u32,
    },
}

fn one_u32() -> u32 {
    1
}

/// A tissue's signal split into its water and fat compartments (fat is displaced by chemical shift).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Compartments {
    /// Signal of the water compartment.
    pub water: f64,
    /// Signal of the fat compartment.
    pub fat: f64,
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
    /// EchoTrainLength (0018,0091).
    pub fn etl(&self) -> u32 {
        match *self {
            Sequence::SpinEcho { etl, .. } | Sequence::Stir { etl, .. } => etl,
        }
    }
    /// The fat saturation residual (spin echo with spectral fat saturation only).
    pub fn fat_sat(&self) -> Option<f64> {
        match *self {
            Sequence::SpinEcho { fat_sat, .. } => fat_sat,
            Sequence::Stir { .. } => None,
        }
    }
    /// How much a turbo spin echo train lengthens fat's apparent T2: closely spaced refocusing pulses
    /// suppress J-coupling (Henkelman et al. 1992), so fat stays bright on FSE T2. 1 for a single echo,
    /// about 1.2 for a T1 TSE train of 3 and 1.5 for trains of 15 or more.
    pub fn fat_t2_factor(&self) -> f64 {
        let e = self.etl().max(1) as f64;
        1.0 + 0.5 * (1.0 - (-(e - 1.0) / 4.0).exp())
    }
    /// The signal of one compartment with relaxation `r` (its `pd`, `t1`, `t2`; `fat` is ignored).
    pub fn signal(&self, r: Relax) -> f64 {
        match *self {
            Sequence::SpinEcho { tr, te, .. } => {
                r.pd * (1.0 - (-tr / r.t1).exp()) * (-te / r.t2).exp()
            }
            Sequence::Stir { tr, te, ti, .. } => {
                r.pd * (1.0 - 2.0 * (-ti / r.t1).exp() + (-tr / r.t1).exp()).abs()
                    * (-te / r.t2).exp()
            }
        }
    }
    /// The water and fat signals of a tissue at a field strength (nuclei: with their disc's
    /// degeneration `g`). The fat compartment relaxes like [`Tissue::Fat`] with the echo train's
    /// apparent T2 and is reduced by spectral fat saturation (STIR nulls it through its TI).
    pub fn compartments(&self, t: Tissue, field_t: f64, g: f64) -> Compartments {
        self.compartments_scaled(t, field_t, g, [1.0; 3])
    }

    /// [`Sequence::compartments`] with the tissue's (T1, T2, PD) multiplied by `f` (one patient's
    /// values; the fat compartment keeps fat's own relaxation).
    pub fn compartments_scaled(
        &self,
        t: Tissue,
        field_t: f64,
        g: f64,
        f: [f64; 3],
    ) -> Compartments {
        let r0 = relax(t, field_t, g);
        let r = Relax {
            t1: r0.t1 * f[0],
            t2: r0.t2 * f[1],
            pd: r0.pd * f[2],
            ..r0
        };
        let water = self.signal(Relax {
            pd: r.pd * (1.0 - r.fat),
            ..r
        });
        let fat = if r.fat > 0.0 {
            // Fat's own relaxation (the patient's factors when the tissue is fat itself).
            let f0 = relax(Tissue::Fat, field_t, 0.0);
            let ff = if t == Tissue::Fat { f } else { [1.0; 3] };
            let f = Relax {
                t1: f0.t1 * ff[0],
                t2: f0.t2 * ff[1],
                ..f0
            };
            let s = self.signal(Relax {
                pd: r.pd * r.fat,
                t2: f.t2 * self.fat_t2_factor(),
                ..f
            });
            s * self.fat_sat().unwrap_or(1.0)
        } else {
            0.0
        };
        Compartments { water, fat }
    }
}

/// The inversion time that nulls fat at a field strength for a repetition time (ms):
/// `T1_fat ln(2 / (1 + exp(-TR/T1_fat)))`.
pub fn fat_null_ti(field_t: f64, tr: f64) -> f64 {
    let t1 = relax(Tissue::Fat, field_t, 0.0).t1;
    t1 * (2.0 / (1.0 + (-tr / t1).exp())).ln()
}

/// Relaxation parameters of a tissue at a field strength (T). Nuclei follow their disc's degeneration
/// `g` (0 healthy, Pfirrmann I; 1 collapsed, Pfirrmann V). This is the one place for tissue MR values.
pub fn relax(t: Tissue, field_t: f64, disc_degeneration: f64) -> Relax {
    let hi = field_t > 2.0;
    let r = |t1_15: f64, t1_3: f64, t2_15: f64, t2_3: f64, pd: f64| Relax {
        t1: if hi { t1_3 } else { t1_15 },
        t2: if hi { t2_3 } else { t2_15 },
        pd,
        fat: 0.0,
    };
    match t {
        Tissue::Air => Relax {
            t1: 1000.0,
            t2: 1.0,
            pd: 0.0,
            fat: 0.0,
        },
        // Spin-echo T2; the echo train lengthens it (Sequence::fat_t2_factor).
        Tissue::Fat => Relax {
            fat: 1.0,
            ..r(260.0, 382.0, 60.0, 68.0, 1.0)
        },
        Tissue::Muscle => r(1008.0, 1412.0, 44.0, 50.0, 0.8),
        Tissue::Viscera => r(700.0, 1000.0, 70.0, 60.0, 0.8),
        Tissue::Vessel => r(1441.0, 1932.0, 290.0, 275.0, 0.04), // flow void
        // Water compartment of red/yellow marrow; 40 % of its protons are fat.
        Tissue::Marrow => Relax {
            fat: 0.4,
            ..r(900.0, 1100.0, 25.0, 22.0, 0.85)
        },
        Tissue::Cortex => r(200.0, 302.0, 0.5, 0.25, 0.05),
        Tissue::Annulus => r(1000.0, 1150.0, 38.0, 35.0, 0.6),
        Tissue::Csf => r(4280.0, 4160.0, 2030.0, 2100.0, 1.0),
        Tissue::Nerve => r(745.0, 993.0, 74.0, 78.0, 0.7),
        Tissue::Ligament => r(800.0, 1000.0, 32.0, 30.0, 0.45),
        Tissue::JointFluid => r(3000.0, 3500.0, 500.0, 450.0, 0.95),
        // Yellow marrow (fatty islands): mostly fat protons (Baum 2018 fat fractions; K).
        Tissue::MarrowFat => Relax {
            fat: 0.8,
            ..r(900.0, 1100.0, 25.0, 22.0, 0.9)
        },
        // Modic 1: oedematous marrow, long T1 and T2, little fat (K).
        Tissue::MarrowOedema => Relax {
            fat: 0.1,
            ..r(1100.0, 1300.0, 110.0, 95.0, 0.95)
        },
        // Hyaline cartilage (Stanisz 2005: 1.5 T 1024/30, 3 T 1168/27).
        Tissue::Cartilage => r(1024.0, 1168.0, 30.0, 27.0, 0.7),
        // Liver (Stanisz 2005: 1.5 T 576/46, 3 T 812/42).
        Tissue::Liver => r(576.0, 812.0, 46.0, 42.0, 0.75),
        // Kidney, cortex and medulla averaged (de Bazelaire 2004 at 3 T: 1142/76 and 1545/81;
        // 1.5 T: 966/87 and 1412/85).
        Tissue::Kidney => r(1190.0, 1340.0, 86.0, 78.0, 0.85),
        // Bowel wall and mixed content (K: fluid-rich, intermediate T1).
        Tissue::Bowel => r(900.0, 1100.0, 120.0, 110.0, 0.85),
        Tissue::Nucleus(_) => nucleus_relax(field_t, disc_degeneration),
    }
}

/// Published mean nucleus T2 by Pfirrmann grade I-IV (ms) \[42\].
pub const NUCLEUS_T2_BY_GRADE: [f64; 4] = [210.0, 129.0, 84.0, 51.0];

/// Nucleus pulposus relaxation at degeneration `g` (Pfirrmann grade `1 + 4 g`): T2 log-linear through
/// [`NUCLEUS_T2_BY_GRADE`] (extrapolated to grade V), T1 and PD linear from the SyMRI normal disc
/// (1165 ms, PD 79/107.5) at grade I to the desiccated one (554 ms, PD 48/107.5) at grade IV.
pub fn nucleus_relax(field_t: f64, g: f64) -> Relax {
    let p = 4.0 * g.clamp(0.0, 1.0); // Pfirrmann grade - 1, continuous
    let k = (p.floor() as usize).min(2);
    let f = p - k as f64;
    let lt = |i: usize| NUCLEUS_T2_BY_GRADE[i].ln();
    let t2 = (lt(k) + (lt(k + 1) - lt(k)) * f).exp();
    let u = (p / 3.0).min(4.0 / 3.0);
    let t1 = (1165.0 + (554.0 - 1165.0) * u) * if field_t > 2.0 { 1.1 } else { 1.0 };
    let pd = (79.0 + (48.0 - 79.0) * u) / 107.5;
    Relax {
        t1,
        t2,
        pd,
        fat: 0.0,
    }
}

/// Water and fat signal per tissue code ([`Tissue::code`]) for one series of one patient.
#[derive(Debug, Clone, PartialEq)]
pub struct SignalTable {
    /// Water-compartment signal per tissue code.
    pub water: [f32; N_TISSUE_CODES],
    /// Fat-compartment signal per tissue code (shifted by chemical shift when rendered).
    pub fat: [f32; N_TISSUE_CODES],
    /// Relative change of the water signal per relative change of T1 (`d ln S / d ln T1`): the
    /// within-tissue texture's weight ([`TEXTURE_CV`]).
    pub t1_slope: [f32; N_TISSUE_CODES],
    /// Relative change of the water signal per relative change of T2 (`d ln S / d ln T2`).
    pub t2_slope: [f32; N_TISSUE_CODES],
}

/// Within-tissue variation of T1 and T2 (coefficient of variation of the smooth relaxation fields
/// the renderer lays over every tissue; K: a few per cent, the scale of regional T2 differences
/// within muscle and marrow). Its signal effect follows each sequence's sensitivity: strong where
/// TE is long against T2 (muscle, annulus on T2), nil for CSF.
pub const TEXTURE_CV: f64 = 0.025;

/// Patient-to-patient coefficient of variation of (T1, T2, PD) of every plain tissue around its
/// literature value (K: the in-vivo spreads of de Bazelaire 2004 at 3 T are 3-12 % for T1 and 6-14
/// % for T2, measurement error included; half-way values are used so that the tissue order of
/// each sequence holds). Nuclei vary through their degeneration instead.
pub const PATIENT_CV: [f64; 3] = [0.04, 0.05, 0.03];

/// One patient's factors on (T1, T2, PD) per tissue code, from the patient's seed: log-normal
/// around 1 with [`PATIENT_CV`]; 1 for the nuclei, air and cortex.
pub fn patient_relax_factors(seed: u32) -> [[f64; 3]; N_TISSUE_CODES] {
    use rand::SeedableRng;
    use rand_distr::{Distribution, StandardNormal};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0xc0_27a5_7000 ^ seed as u64);
    let mut out = [[1.0; 3]; N_TISSUE_CODES];
    for (code, f) in out
        .iter_mut()
        .enumerate()
        .take(crate::anatomy::NUCLEUS_BASE)
    {
        for (k, v) in f.iter_mut().enumerate() {
            let z: f64 = StandardNormal.sample(&mut rng);
            let keep = code == Tissue::Air.code() || code == Tissue::Cortex.code();
            if !keep {
                *v = (PATIENT_CV[k] * z.clamp(-3.0, 3.0)).exp();
            }
        }
    }
    out
}

impl SignalTable {
    /// Total (water + fat) signal of a tissue code.
    pub fn total(&self, code: usize) -> f32 {
        self.water[code] + self.fat[code]
    }
}

/// The signal table of one series: every tissue at its literature values, and each disc's nucleus
/// with its degeneration.
pub fn signal_table(seq: &Sequence, field_t: f64, disc_deg: &[f64; N_DISC]) -> SignalTable {
    signal_table_for(seq, field_t, disc_deg, &[[1.0; 3]; N_TISSUE_CODES])
}

/// [`signal_table`] for one patient, whose tissues' (T1, T2, PD) are the literature values times
/// `factors` (per tissue code, see [`patient_relax_factors`]).
pub fn signal_table_for(
    seq: &Sequence,
    field_t: f64,
    disc_deg: &[f64; N_DISC],
    factors: &[[f64; 3]; N_TISSUE_CODES],
) -> SignalTable {
    let mut out = SignalTable {
        water: [0f32; N_TISSUE_CODES],
        fat: [0f32; N_TISSUE_CODES],
        t1_slope: [0f32; N_TISSUE_CODES],
        t2_slope: [0f32; N_TISSUE_CODES],
    };
    let mut put = |t: Tissue, g: f64| {
        let f = factors[t.code()];
        let c = seq.compartments_scaled(t, field_t, g, f);
        out.water[t.code()] = c.water as f32;
        out.fat[t.code()] = c.fat as f32;
        // Sensitivities of the water signal by central differences (+-1 %).
        let w = |k: usize, e: f64| {
            let mut g2 = f;
            g2[k] *= 1.0 + e;
            seq.compartments_scaled(t, field_t, g, g2).water
        };
        if c.water > 0.0 {
            out.t1_slope[t.code()] = ((w(0, 0.01) - w(0, -0.01)) / (0.02 * c.water)) as f32;
            out.t2_slope[t.code()] = ((w(1, 0.01) - w(1, -0.01)) / (0.02 * c.water)) as f32;
        }
    };
    for t in Tissue::PLAIN {
        put(t, 0.0);
    }
    for (i, &g) in disc_deg.iter().enumerate() {
        put(Tissue::Nucleus(i as u8), g);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn total(q: &Sequence, t: Tissue, field: f64, g: f64) -> f64 {
        let c = q.compartments(t, field, g);
        c.water + c.fat
    }

    #[test]
    fn classic_contrasts() {
        for field in [1.5, 3.0] {
            let t1 = Sequence::SpinEcho {
                tr: 550.0,
                te: 12.0,
                etl: 3,
                fat_sat: None,
            };
            let t2 = Sequence::SpinEcho {
                tr: 4000.0,
                te: 100.0,
                etl: 16,
                fat_sat: None,
            };
            let stir = Sequence::Stir {
                tr: 4000.0,
                te: 50.0,
                ti: fat_null_ti(field, 4000.0),
                etl: 12,
            };
            let s = |q: &Sequence, t: Tissue, g: f64| total(q, t, field, g);
            // CSF dark on T1, bright on T2; fat bright on both; fat nulled on STIR.
            assert!(s(&t1, Tissue::Csf, 0.0) < 0.5 * s(&t1, Tissue::Fat, 0.0));
            assert!(s(&t2, Tissue::Csf, 0.0) > s(&t2, Tissue::Muscle, 0.0) * 3.0);
            assert!(s(&t2, Tissue::Fat, 0.0) > s(&t2, Tissue::Muscle, 0.0) * 2.0);
            assert!(s(&t2, Tissue::Nucleus(0), 0.0) > 2.0 * s(&t2, Tissue::Nucleus(0), 1.0));
            assert!(s(&stir, Tissue::Fat, 0.0) < 0.01 * s(&stir, Tissue::Csf, 0.0));
            // Fat saturation removes most of the fat, not the water.
            let fs = Sequence::SpinEcho {
                tr: 4000.0,
                te: 100.0,
                etl: 16,
                fat_sat: Some(0.1),
            };
            assert!(s(&fs, Tissue::Fat, 0.0) < 0.11 * s(&t2, Tissue::Fat, 0.0));
            assert_eq!(s(&fs, Tissue::Csf, 0.0), s(&t2, Tissue::Csf, 0.0),);
        }
    }

    #[test]
    fn nucleus_t2_passes_through_the_published_grade_means() {
        for (k, want) in NUCLEUS_T2_BY_GRADE.iter().enumerate() {
            let got = nucleus_relax(1.5, k as f64 / 4.0).t2;
            assert!(
                (got - want).abs() < 1e-9,
                "grade {}: {got} vs {want}",
                k + 1
            );
        }
        // Grade V is darker still; the relaxation never goes negative.
        let v = nucleus_relax(1.5, 1.0);
        assert!(v.t2 < 51.0 && v.t2 > 20.0 && v.pd > 0.3 && v.t1 > 300.0);
    }

    #[test]
    fn stir_null_matches_the_clinical_inversion_times() {
        // 1.5 T: 150-180 ms in practice; 3 T: 200-265 ms (spec section 5).
        let a = fat_null_ti(1.5, 4000.0);
        let b = fat_null_ti(3.0, 4000.0);
        assert!((150.0..=185.0).contains(&a), "{a}");
        assert!((200.0..=270.0).contains(&b), "{b}");
    }

    #[test]
    fn texture_sensitivities_are_the_analytic_derivatives_of_spin_echo() {
        // S = PD (1 - exp(-TR/T1)) exp(-TE/T2): d ln S / d ln T2 = TE / T2 and
        // d ln S / d ln T1 = -(TR/T1) exp(-TR/T1) / (1 - exp(-TR/T1)).
        let (tr, te) = (4000.0, 100.0);
        let q = Sequence::SpinEcho {
            tr,
            te,
            etl: 18,
            fat_sat: None,
        };
        let table = signal_table(&q, 1.5, &[0.0; N_DISC]);
        for t in [Tissue::Muscle, Tissue::Csf, Tissue::Annulus, Tissue::Liver] {
            let r = relax(t, 1.5, 0.0);
            let e = (-tr / r.t1).exp();
            let want1 = -(tr / r.t1) * e / (1.0 - e);
            let want2 = te / r.t2;
            let (g1, g2) = (
                table.t1_slope[t.code()] as f64,
                table.t2_slope[t.code()] as f64,
            );
            assert!(
                (g1 - want1).abs() < 2e-3 * want1.abs().max(1.0),
                "{t:?} T1 {g1} vs {want1}"
            );
            assert!(
                (g2 - want2).abs() < 2e-3 * want2.max(1.0),
                "{t:?} T2 {g2} vs {want2}"
            );
        }
        // CSF barely textured on T2 (TE far below its T2), muscle strongly.
        assert!(table.t2_slope[Tissue::Csf.code()] < 0.06);
        assert!(table.t2_slope[Tissue::Muscle.code()] > 2.0);
    }

    #[test]
    fn patients_vary_around_the_literature_values_and_keep_the_t2_order() {
        let n = 2000;
        let mut logs = vec![Vec::new(); 3];
        let q = Sequence::SpinEcho {
            tr: 4000.0,
            te: 100.0,
            etl: 18,
            fat_sat: None,
        };
        let mut ordered = 0;
        for seed in 0..n {
            let f = patient_relax_factors(seed as u32 * 7919 + 3);
            for k in 0..3 {
                logs[k].push(f[Tissue::Muscle.code()][k].ln());
            }
            // Nuclei, air and cortex keep their values.
            assert_eq!(f[Tissue::Cortex.code()], [1.0; 3]);
            assert_eq!(f[crate::anatomy::NUCLEUS_BASE + 4], [1.0; 3]);
            let t = signal_table_for(&q, 1.5, &[0.0; N_DISC], &f);
            let v = |x: Tissue| t.total(x.code());
            if v(Tissue::Csf) > v(Tissue::Fat)
                && v(Tissue::Fat) > v(Tissue::Marrow)
                && v(Tissue::Marrow) > v(Tissue::Muscle)
                && v(Tissue::Muscle) > v(Tissue::Annulus)
            {
                ordered += 1;
            }
        }
        for k in 0..3 {
            let m = logs[k].iter().sum::<f64>() / n as f64;
            let sd = (logs[k].iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt();
            // Mean within 4 standard errors of 0; SD within 8 % of the stated CV (the log-normal's
            // sigma; clamped at 3 SD).
            assert!(
                m.abs() < 4.0 * PATIENT_CV[k] / (n as f64).sqrt(),
                "{k}: mean {m}"
            );
            assert!((sd / PATIENT_CV[k] - 1.0).abs() < 0.08, "{k}: sd {sd}");
        }
        assert!(
            ordered as f64 / n as f64 > 0.995,
            "T2 order held in {ordered} of {n}"
        );
    }
}

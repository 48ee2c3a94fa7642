//! Morphometry: the sizes and angles of one patient's spine, drawn from published normal ranges by
//! level, sex and age, with patient-to-patient variation.
//!
//! Sources (numbers as collected in the project's `spec/anatomy-mr.md`; V = value from the cited
//! paper, K = an estimate consistent with it, where no per-level figure was found):
//! - vertebral body, L5 (CT, n = 196): anterior height 30.3 ± 1.9 mm (F 29.6, M 30.7), posterior
//!   26.3 ± 1.9 (F 25.5, M 26.8), endplate depth 35.7 ± 3.5 (F 33.3, M 37.1), canal width 28.2
//!   (Cook & Baker 2021, Int J Spine Surg 15:1072, table 6; V). L1 -> L5 trend of anterior height
//!   25 -> 30, depth 30 -> 35, width 40 -> 50 (spinebase.org; K). Posterior wedging L2-L5 (Mavrych
//!   2014; V), the L5 wedge from the anterior and posterior heights above;
//! - disc height, MRI, age 40-59, anterior / middle / posterior: L1/2 10.8/10.0/7.3, L2/3
//!   13.1/11.6/8.6, L3/4 15.2/12.5/9.1, L4/5 18.1/13.8/10.1, L5/S1 18.7/13.0/8.5 (anatomyjournal.ir
//!   A-10-159-1; V). Spread: the normal mid-height ranges of J Orthop Surg Res 2018;13:34 (e.g. L4/5
//!   7.8-14.6 mm) are about +-2 SD of a 15 % coefficient of variation (K). Pfirrmann height model
//!   100/100/90/75/50 % by grade (K, after Pfirrmann 2001), applied in [`super::Anatomy::sample`];
//! - lordosis: recumbent T12-S1 36.8 ± 13.2 deg, standing 49.8 ± 11.2, larger in women (Asian
//!   Spine J, PMC6680033; V); lordosis falls with age (-0.23 deg/year with pelvic incidence held,
//!   Eur Spine J 2016 s00586-016-4702-2; V); standing segmental lordosis L1-2 1.2 ± 3.6, L2-3
//!   5.9 ± 4.1, L3-4 9.1 ± 4.2, L4-5 12.7 ± 5.1, L5-S1 21.6 ± 7.7 (Sci Rep 2022
//!   s41598-022-21840-x, table 2; V), scaled here to the supine position by the recumbent/standing
//!   ratio 36.8/49.8 (K). Sacral slope standing 41.2 ± 8.4 (Vialle; K), supine about 6 deg less and
//!   tied to the lordosis (K);
//! - dural sac: normal antero-posterior diameter about 12-15 mm, area 150-180 mm^2 (K); area in the
//!   70s 80-86 % of that in the 20s at L1/2-L4/5 (Nakashima 2021, Spine 46:E1327; V);
//! - conus medullaris tip: mean at the lower third of L1, normally distributed from mid T12 to upper
//!   L3, no sex or age effect (Saifuddin 1998, Spine; V); mid L1 24.5 %, lower L1 22.1 %, L1-2 disc
//!   20.8 % (J Korean Acad Rehabil Med 1998;22:1040; V).
//!
//! Thoracic and sacral figures (T10-T12, S1-S5) are estimates (K): they only set the edges of the
//! field of view.

use super::{N_DISC, N_VERT};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

/// Vertebra index of L1 in [`super::VERTEBRAE`].
pub const L1: usize = 3;
/// Vertebra index of S1.
pub const S1: usize = 8;

/// The patient's sex (it scales vertebral size and lordosis).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Sex {
    /// Female.
    Female,
    /// Male.
    Male,
}

/// Recumbent over standing lordosis (36.8 / 49.8 deg, PMC6680033): scales standing segmental
/// figures to a supine MRI.
pub const RECUMBENT_OVER_STANDING: f64 = 36.8 / 49.8;
/// Recumbent lordosis (deg): mean and SD (PMC6680033).
pub const LORDOSIS_RECUMBENT: (f64, f64) = (36.8, 13.2);
/// Standing segmental lordosis (deg) L1-2 .. L5-S1: mean and SD (Sci Rep 2022, table 2).
pub const SEGMENTAL_STANDING: [(f64, f64); 5] =
    [(1.2, 3.6), (5.9, 4.1), (9.1, 4.2), (12.7, 5.1), (21.6, 7.7)];
/// Disc heights (mm) at age 40-59, anterior / middle / posterior, L1/2 .. L5/S1.
pub const DISC_HEIGHTS: [[f64; 3]; 5] = [
    [10.8, 10.0, 7.3],
    [13.1, 11.6, 8.6],
    [15.2, 12.5, 9.1],
    [18.1, 13.8, 10.1],
    [18.7, 13.0, 8.5],
];
/// Coefficient of variation of disc height (from the normal ranges, about +-2 SD).
pub const DISC_CV: f64 = 0.15;
/// L5 body (mm): anterior height, posterior height, depth; (female, male) means (Cook & Baker).
pub const L5_BODY: [(f64, f64); 3] = [(29.6, 30.7), (25.5, 26.8), (33.3, 37.1)];
/// L5 body (mm), both sexes: anterior height, posterior height, depth (mean, SD).
pub const L5_BODY_ALL: [(f64, f64); 3] = [(30.3, 1.9), (26.3, 1.9), (35.7, 3.5)];
/// Conus tip, in units of the L1 segment (0 = L1's upper endplate, 1 = L2's): mean and SD.
/// The lower third of L1 is about 0.5-0.73 of the segment (the body is ~73 % of it); the range mid
/// T12 to upper L3 is about +-3 SD.
pub const CONUS_UNITS: (f64, f64) = (0.6, 0.45);

/// Mean anterior body height (mm), T10..S5 (both sexes; L5 from Cook & Baker, L1-L4 the trend).
const ANT_H: [f64; N_VERT] = [
    21.5, 22.5, 24.0, 25.0, 26.5, 27.5, 28.5, 30.3, 27.0, 20.0, 16.0, 12.0, 9.0,
];
/// Body wedge angle (deg): anterior minus posterior height over depth; positive = lordotic
/// (posterior wedging, L2-L5), negative = kyphotic (thoracic).
const WEDGE_DEG: [f64; N_VERT] = [
    -2.5, -2.5, -2.0, -1.0, 1.5, 2.5, 3.5, 6.4, 0.0, 0.0, 0.0, 0.0, 0.0,
];
/// Mean body depth (mm).
const DEPTH: [f64; N_VERT] = [
    27.0, 28.0, 29.0, 30.0, 31.5, 33.0, 34.3, 35.7, 33.0, 24.0, 18.0, 14.0, 10.0,
];
/// Mean body width (mm).
const WIDTH: [f64; N_VERT] = [
    34.0, 36.0, 38.0, 40.0, 42.5, 45.0, 47.5, 50.0, 46.0, 36.0, 26.0, 20.0, 16.0,
];
/// Posterior disc heights (mm) of the non-lumbar discs (T10/11, T11/12, T12/L1; fused sacral).
const DISC_POST_OTHER: [f64; N_DISC] = [4.5, 5.0, 6.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.5, 1.2, 1.0, 0.8];
/// Segment angles (deg, top of vertebra to top of the next) outside the lumbar spine: slight
/// thoracic kyphosis above, sacral kyphosis below (K).
const SEG_OTHER: [f64; N_DISC] = [
    -2.5, -2.5, -1.5, 0.0, 0.0, 0.0, 0.0, 0.0, -8.0, -8.0, -8.0, -6.0,
];
/// Own per-level spread of segmental lordosis (deg) on top of the share of total lordosis, so
/// that the per-level SDs come out near the scaled published ones.
const SEG_TAU: [f64; 5] = [2.7, 2.5, 2.0, 1.7, 1.0];

/// One patient's sizes and angles, before degeneration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Morphometry {
    /// Sex.
    pub sex: Sex,
    /// Age in years.
    pub age: f64,
    /// Posterior body height per vertebra (mm): the body's extent along the centreline.
    pub body_h: [f64; N_VERT],
    /// Body depth (antero-posterior, mm).
    pub body_depth: [f64; N_VERT],
    /// Body width (mm).
    pub body_width: [f64; N_VERT],
    /// Body wedge angle (deg, positive = anterior height larger).
    pub wedge_deg: [f64; N_VERT],
    /// Posterior disc height before degeneration (mm).
    pub disc_h: [f64; N_DISC],
    /// Segment angle (deg) from the upper endplate of vertebra `i` to that of `i + 1`; lumbar ones
    /// are the segmental lordosis.
    pub segment_deg: [f64; N_DISC],
    /// Lordosis L1-S1 (deg): the sum of the lumbar segment angles.
    pub lordosis_deg: f64,
    /// Sacral slope (deg): the S1 upper endplate against the scanner's axial plane.
    pub sacral_slope_deg: f64,
    /// Normal dural sac width (mm).
    pub sac_width: f64,
    /// Normal dural sac antero-posterior diameter (mm).
    pub sac_ap: f64,
    /// Conus tip in L1-segment units ([`CONUS_UNITS`]).
    pub conus_units: f64,
}

fn z(rng: &mut ChaCha8Rng) -> f64 {
    StandardNormal.sample(rng)
}

impl Morphometry {
    /// Draws a patient's morphometry. `degeneration_factor` (standard normal) is the patient's
    /// degeneration factor: age is drawn correlated with it (older spines are more degenerated).
    pub fn sample(rng: &mut ChaCha8Rng, degeneration_factor: f64) -> Self {
        let sex = if rng.gen::<f64>() < 0.55 {
            Sex::Female
        } else {
            Sex::Male
        };
        let age = (55.0 + 15.0 * (0.5 * degeneration_factor + 0.866 * z(rng))).clamp(18.0, 92.0);
        let female = sex == Sex::Female;
        let pick = |p: (f64, f64)| if female { p.0 } else { p.1 };
        // Sex ratios of L5's anterior height and depth; the rest of the spine scales alike.
        let h_sex = pick(L5_BODY[0]) / L5_BODY_ALL[0].0;
        let d_sex = pick(L5_BODY[2]) / L5_BODY_ALL[2].0;
        // Patient size factors (stature, build), then per-level jitter.
        let (zh, zd) = (z(rng), z(rng));
        let mut body_h = [0.0; N_VERT];
        let mut body_depth = [0.0; N_VERT];
        let mut body_width = [0.0; N_VERT];
        let mut wedge_deg = [0.0; N_VERT];
        for v in 0..N_VERT {
            let depth = DEPTH[v] * d_sex * (1.0 + 0.075 * zd + 0.035 * z(rng));
            let width = WIDTH[v] * d_sex * (1.0 + 0.075 * zd + 0.035 * z(rng));
            let ant = ANT_H[v] * h_sex * (1.0 + 0.05 * zh + 0.025 * z(rng));
            let wedge = WEDGE_DEG[v]
                + if (L1..S1).contains(&v) {
                    0.8 * z(rng)
                } else {
                    0.0
                };
            body_h[v] = ant - depth * wedge.to_radians().tan();
            body_depth[v] = depth;
            body_width[v] = width;
            wedge_deg[v] = wedge;
        }
        let mut disc_h = DISC_POST_OTHER;
        for l in 0..5 {
            disc_h[L1 + l] = DISC_HEIGHTS[l][2] * (1.0 + DISC_CV * z(rng)).max(0.5);
        }
        // Lordosis: larger in women, falling with age; split over the levels in proportion to
        // the scaled segmental means, plus each level's own spread (the sum is kept exact).
        let sex_shift = if female { 2.5 } else { -2.5 };
        let lordosis = (LORDOSIS_RECUMBENT.0 + sex_shift - 0.15 * (age - 55.0) + 12.8 * z(rng))
            .clamp(5.0, 80.0);
        let means: Vec<f64> = SEGMENTAL_STANDING
            .iter()
            .map(|m| m.0 * RECUMBENT_OVER_STANDING)
            .collect();
        let msum: f64 = means.iter().sum();
        let eps: Vec<f64> = SEG_TAU.iter().map(|t| t * z(rng)).collect();
        let esum: f64 = eps.iter().sum();
        let mut segment_deg = SEG_OTHER;
        for l in 0..5 {
            segment_deg[L1 + l] = means[l] / msum * (lordosis - esum) + eps[l];
        }
        let sacral_slope_deg = (7.4 + 0.75 * lordosis + 4.0 * z(rng)).clamp(10.0, 65.0);
        // Dural sac: area shrinks with age (Nakashima: ~83 % in the 70s vs the 20s).
        let area_age = (1.0 - 0.0035 * (age - 20.0)).clamp(0.75, 1.05).sqrt();
        let sac_width = (17.0 + 1.6 * z(rng)).clamp(13.5, 21.0) * area_age;
        let sac_ap = (13.6 + 1.2 * z(rng)).clamp(10.5, 16.5) * area_age;
        let conus_units = (CONUS_UNITS.0 + CONUS_UNITS.1 * z(rng)).clamp(-0.7, 2.2);
        Morphometry {
            sex,
            age,
            body_h,
            body_depth,
            body_width,
            wedge_deg,
            disc_h,
            segment_deg,
            lordosis_deg: segment_deg[L1..S1].iter().sum(),
            sacral_slope_deg,
            sac_width,
            sac_ap,
            conus_units,
        }
    }

    /// The centreline angle (deg from the scanner's z axis) at the upper endplate of every
    /// vertebra, from the sacral slope and the segment angles above it.
    pub fn endplate_psi_deg(&self) -> [f64; N_VERT] {
        let mut psi = [0.0; N_VERT];
        psi[S1] = self.sacral_slope_deg;
        for v in (0..S1).rev() {
            psi[v] = psi[v + 1] - self.segment_deg[v];
        }
        for v in S1 + 1..N_VERT {
            psi[v] = psi[v - 1] + self.segment_deg[v - 1];
        }
        psi
    }
}

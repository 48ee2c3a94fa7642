//! A parametric lumbar spine in patient space, as analytic shapes, with continuous degeneration.
//!
//! Frames: the patient frame is DICOM LPS in mm (+x patient left, +y posterior, +z head). The spine's
//! own "straightened" frame is `(s, x, d)`: `s` is arc length along a lordotic centreline (growing
//! towards the feet), `x` is the patient's left, `d` is distance along the centreline's posterior
//! normal, with `d = 0` on the posterior walls of the vertebral bodies (bodies at `d < 0`, the canal
//! and the posterior arch at `d > 0`). Every tissue is a shape in that frame, bent by smooth
//! per-patient noise ([`noise`]), so any series geometry can be rendered by asking
//! [`Anatomy::tissue_at`] what lies at a patient-space point. The centreline bends by each body's
//! wedge and each disc's share of the segmental lordosis ([`morpho`]); on top of it the *anatomical*
//! frame adds the patient's lateral offset, scoliosis, axial rotation and slip ([`pathology`]):
//! [`Anatomy::to_spine_from`] gives the raw frame that renderers interpolate, [`Anatomy::to_spine`]
//! and [`Anatomy::to_patient`] the anatomical one.
//!
//! Submodules: [`morpho`] (sizes and angles with their sources), [`pathology`] (pose and findings
//! with their prevalences), [`noise`] (band-limited value noise); the column (bodies and discs) and the
//! soft tissue and organs are drawn in private submodules.
//!
//! Degeneration is a degree in `[0, 1)` per condition, level and side; the geometry narrows with it
//! and the grade follows from it by spec section 7 ([`grade_of_degree`]):
//! - spinal canal: the degree *is* the fraction by which the dural sac's antero-posterior diameter is
//!   narrowed at the disc, relative to this patient's normal sac (< 1/3 Normal/Mild, 1/3-2/3 Moderate,
//!   > 2/3 Severe);
//! - foramen: the fat around the exiting root shrinks; at 1/3 the fat rim is under half a millimetre
//!   (obliterated at MR resolution), from 2/3 the foramen is smaller than the root, which is drawn
//!   flattened (compressed);
//! - subarticular recess: the same rules for the traversing root in the lateral recess (free /
//!   touched, not displaced / compressed).

mod body;
mod column;
pub mod morpho;
pub mod noise;
pub mod pathology;
pub mod ribs;

use discus_core::{Level, Severity, Side};
pub use morpho::{Morphometry, Sex, L1, S1};
use noise::noise3;
pub use pathology::{
    height_factor, pfirrmann_of, CountedFrom, Findings, Herniation, HerniationType, LevelCounting,
    Listhesis, Pose, Schmorl, Transitional, Zone,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, StandardNormal};
use serde::{Deserialize, Serialize};

/// Vertebrae modelled, top to bottom. Disc `i` lies between vertebra `i` and `i + 1`.
pub const VERTEBRAE: [&str; 13] = [
    "T10", "T11", "T12", "L1", "L2", "L3", "L4", "L5", "S1", "S2", "S3", "S4", "S5",
];
/// Number of vertebrae modelled.
pub const N_VERT: usize = VERTEBRAE.len();
/// Number of discs modelled (one between each pair of adjacent vertebrae).
pub const N_DISC: usize = N_VERT - 1;

/// The disc index of a lumbar level (L1/L2 is disc 3).
pub fn disc_of_level(level: Level) -> usize {
    level.index() + 3
}

/// Side index: 0 = left (+x), 1 = right.
pub fn side_index(side: Side) -> usize {
    match side {
        Side::Left => 0,
        Side::Right => 1,
    }
}

/// Tissue classes. Nuclei carry their disc's index so that each disc can have its own degeneration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Tissue {
    /// Outside the body.
    Air = 0,
    /// Subcutaneous, epidural and foraminal fat.
    Fat = 1,
    /// Paraspinal muscle.
    Muscle = 2,
    /// Abdominal viscera.
    Viscera = 3,
    /// Great vessels.
    Vessel = 4,
    /// Vertebral body marrow.
    Marrow = 5,
    /// Cortical bone and endplates.
    Cortex = 6,
    /// Annulus fibrosus.
    Annulus = 7,
    /// Cerebrospinal fluid in the dural sac.
    Csf = 8,
    /// Spinal cord, cauda equina and nerve roots.
    Nerve = 9,
    /// Ligament (the ligamentum flavum and the posterior ligaments).
    Ligament = 10,
    /// Free fluid: facet joint fluid and effusions, synovial cyst content, the high-intensity zone
    /// of an annular fissure.
    JointFluid = 11,
    /// Fatty marrow: yellow-marrow islands in the trabecular bone, Modic type 2 endplate change.
    MarrowFat = 12,
    /// Marrow oedema: Modic type 1 endplate change.
    MarrowOedema = 13,
    /// Hyaline cartilage of the facet joints.
    Cartilage = 14,
    /// Liver (its lower edge on the upper slices).
    Liver = 15,
    /// Kidney.
    Kidney = 16,
    /// Bowel wall and content (gas is [`Tissue::Air`]).
    Bowel = 17,
    /// `Nucleus(disc)`; encoded as `NUCLEUS_BASE + disc` in [`Tissue::code`].
    Nucleus(u8),
}

/// The code of `Nucleus(0)`; disc `i`'s nucleus is `NUCLEUS_BASE + i`.
pub const NUCLEUS_BASE: usize = 18;
/// Number of distinct tissue codes (the length of signal tables).
pub const N_TISSUE_CODES: usize = NUCLEUS_BASE + N_DISC;

impl Tissue {
    /// The tissue's code: its index in signal tables.
    pub fn code(self) -> usize {
        match self {
            Tissue::Nucleus(i) => NUCLEUS_BASE + i as usize,
            Tissue::Air => 0,
            Tissue::Fat => 1,
            Tissue::Muscle => 2,
            Tissue::Viscera => 3,
            Tissue::Vessel => 4,
            Tissue::Marrow => 5,
            Tissue::Cortex => 6,
            Tissue::Annulus => 7,
            Tissue::Csf => 8,
            Tissue::Nerve => 9,
            Tissue::Ligament => 10,
            Tissue::JointFluid => 11,
            Tissue::MarrowFat => 12,
            Tissue::MarrowOedema => 13,
            Tissue::Cartilage => 14,
            Tissue::Liver => 15,
            Tissue::Kidney => 16,
            Tissue::Bowel => 17,
        }
    }

    /// Every tissue except the per-disc nuclei, in code order (code `i` is `PLAIN[i]`).
    pub const PLAIN: [Tissue; NUCLEUS_BASE] = [
        Tissue::Air,
        Tissue::Fat,
        Tissue::Muscle,
        Tissue::Viscera,
        Tissue::Vessel,
        Tissue::Marrow,
        Tissue::Cortex,
        Tissue::Annulus,
        Tissue::Csf,
        Tissue::Nerve,
        Tissue::Ligament,
        Tissue::JointFluid,
        Tissue::MarrowFat,
        Tissue::MarrowOedema,
        Tissue::Cartilage,
        Tissue::Liver,
        Tissue::Kidney,
        Tissue::Bowel,
    ];
}

/// The grade that a degree of narrowing maps to (spec section 7: thresholds at 1/3 and 2/3).
pub fn grade_of_degree(degree: f64) -> Severity {
    if degree < 1.0 / 3.0 {
        Severity::NormalMild
    } else if degree < 2.0 / 3.0 {
        Severity::Moderate
    } else {
        Severity::Severe
    }
}

/// Real grade proportions among labelled cells (spec section 3 table), `[condition][level][grade]`,
/// conditions in train.csv order.
pub const SPEC_COUNTS: [[[u32; 3]; 5]; 5] = [
    [
        [1886, 67, 21],
        [1770, 151, 53],
        [1622, 230, 122],
        [1482, 237, 255],
        [1904, 51, 19],
    ],
    [
        [1908, 63, 2],
        [1791, 171, 11],
        [1522, 411, 40],
        [1204, 629, 140],
        [1247, 520, 206],
    ],
    [
        [1891, 63, 13],
        [1793, 168, 6],
        [1512, 414, 41],
        [1208, 629, 130],
        [1281, 496, 190],
    ],
    [
        [1690, 93, 28],
        [1555, 255, 83],
        [1324, 454, 194],
        [887, 624, 461],
        [1408, 409, 147],
    ],
    [
        [1680, 110, 24],
        [1577, 243, 73],
        [1322, 454, 197],
        [891, 622, 460],
        [1399, 396, 173],
    ],
];

/// Proportions `[p_normal_mild, p_moderate, p_severe]` for a condition index and level index.
pub fn spec_proportions(condition: usize, level: usize) -> [f64; 3] {
    let c = SPEC_COUNTS[condition][level];
    let n = (c[0] + c[1] + c[2]) as f64;
    [c[0] as f64 / n, c[1] as f64 / n, c[2] as f64 / n]
}

/// Standard normal CDF (erfc-based, |error| < 1.2e-7).
pub fn norm_cdf(z: f64) -> f64 {
    0.5 * erfc(-z / std::f64::consts::SQRT_2)
}

fn erfc(x: f64) -> f64 {
    // Numerical Recipes' Chebyshev fit (fractional error < 1.2e-7 everywhere).
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.26551223
            + t * (1.00002368
                + t * (0.37409196
                    + t * (0.09678418
                        + t * (-0.18628806
                            + t * (0.27886807
                                + t * (-1.13520398
                                    + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))))
            .exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

/// Maps a uniform `u` to a degree so that `P(grade)` equals `p` exactly: the three grade bands of
/// `u` are stretched linearly onto `[0,1/3)`, `[1/3,2/3)`, `[2/3,0.95)`.
pub fn degree_from_uniform(u: f64, p: [f64; 3]) -> f64 {
    let (a, b) = (p[0], p[0] + p[1]);
    if u < a {
        (u / a) / 3.0
    } else if u < b {
        1.0 / 3.0 + (u - a) / (b - a).max(1e-12) / 3.0
    } else {
        2.0 / 3.0 + ((u - b) / (1.0 - b).max(1e-12)).min(1.0) * (0.95 - 2.0 / 3.0)
    }
}

/// The continuous degeneration state of one patient (lumbar levels only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Degeneration {
    /// Patient-level factor (standard normal): shared by all levels and conditions.
    pub patient_factor: f64,
    /// Spinal canal narrowing per level.
    pub spinal: [f64; 5],
    /// Foraminal degree per side (0 = left, 1 = right) and level.
    pub foraminal: [[f64; 5]; 2],
    /// Subarticular degree per side and level.
    pub subarticular: [[f64; 5]; 2],
    /// Disc degeneration (nucleus dehydration, height loss, bulge) per level, 0..1.
    pub disc: [f64; 5],
}

impl Degeneration {
    /// Correlation structure of the latent Gaussian: patient factor, level factor (all conditions at a
    /// level), a factor shared by the two sides of a condition group at a level, and the residual.
    pub const W_PATIENT: f64 = 0.35;
    /// Weight of the level factor (shared by all conditions at a level).
    pub const W_LEVEL: f64 = 0.25;
    /// Weight of the factor shared by the two sides of a condition group at a level.
    pub const W_PAIR: f64 = 0.15;

    /// Draws a patient's degrees so that the marginal grade frequencies match the spec table.
    pub fn sample(rng: &mut ChaCha8Rng) -> Self {
        let n = |r: &mut ChaCha8Rng| -> f64 { StandardNormal.sample(r) };
        let f = n(rng);
        let mut out = Degeneration {
            patient_factor: f,
            spinal: [0.0; 5],
            foraminal: [[0.0; 5]; 2],
            subarticular: [[0.0; 5]; 2],
            disc: [0.0; 5],
        };
        let w_res = 1.0 - Self::W_PATIENT - Self::W_LEVEL - Self::W_PAIR;
        for l in 0..5 {
            let g = n(rng);
            let latent = |rng: &mut ChaCha8Rng, pair: f64| -> f64 {
                Self::W_PATIENT.sqrt() * f
                    + Self::W_LEVEL.sqrt() * g
                    + Self::W_PAIR.sqrt() * pair
                    + w_res.sqrt() * n(rng)
            };
            let pair_sp = n(rng);
            out.spinal[l] =
                degree_from_uniform(norm_cdf(latent(rng, pair_sp)), spec_proportions(0, l));
            let pair_f = n(rng);
            let pair_s = n(rng);
            for side in 0..2 {
                out.foraminal[side][l] = degree_from_uniform(
                    norm_cdf(latent(rng, pair_f)),
                    spec_proportions(1 + side, l),
                );
                out.subarticular[side][l] = degree_from_uniform(
                    norm_cdf(latent(rng, pair_s)),
                    spec_proportions(3 + side, l),
                );
            }
            let mean = (out.spinal[l]
                + out.foraminal[0][l]
                + out.foraminal[1][l]
                + out.subarticular[0][l]
                + out.subarticular[1][l])
                / 5.0;
            out.disc[l] = (0.15 + 1.3 * mean + 0.08 * f + 0.1 * n(rng)).clamp(0.0, 1.0);
        }
        out
    }

    /// The degree for a condition (train.csv order index) at a level index.
    pub fn degree(&self, condition: usize, level: usize) -> f64 {
        match condition {
            0 => self.spinal[level],
            1 => self.foraminal[0][level],
            2 => self.foraminal[1][level],
            3 => self.subarticular[0][level],
            _ => self.subarticular[1][level],
        }
    }
}

/// Radius of the exiting root in the foramen (mm).
pub const FORAMEN_ROOT_R: f64 = 2.6;
/// Radius of the traversing root in the lateral recess (mm).
pub const RECESS_ROOT_R: f64 = 1.8;
/// Fat rim around the traversing root in a normal recess (mm).
pub const RECESS_RIM: f64 = 1.8;

/// Free half-size around a root of radius `r` for a degree: fat rim of 3 mm at 0, under 0.5 mm at
/// 1/3, none at 2/3, and below the root's radius (compression) beyond.
pub fn space_half_size(degree: f64, r: f64, rim0: f64) -> f64 {
    let g = degree.clamp(0.0, 1.0);
    if g < 1.0 / 3.0 {
        r + rim0 + (0.45 - rim0) * g * 3.0
    } else if g < 2.0 / 3.0 {
        r + 0.45 * (1.0 - (g - 1.0 / 3.0) * 3.0)
    } else {
        r * (1.0 - 0.55 * (g - 2.0 / 3.0) * 3.0)
    }
}

/// `exp(-u^2 / 2)` for `u = delta / sigma`, from a table (this sits in the per-pixel path).
fn bump(delta: f64, sigma: f64) -> f64 {
    const STEP: f64 = 0.005;
    const N: usize = 1600; // u in [0, 8)
    static TABLE: std::sync::OnceLock<Vec<f64>> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        (0..=N)
            .map(|i| {
                let u = i as f64 * STEP;
                (-0.5 * u * u).exp()
            })
            .collect()
    });
    let u = (delta / sigma).abs() / STEP;
    if u >= N as f64 {
        return 0.0;
    }
    let i = u as usize;
    let f = u - i as f64;
    table[i] + (table[i + 1] - table[i]) * f
}

/// Lookup table of the centreline, step 0.5 mm in s.
#[derive(Debug, Clone)]
struct Centreline {
    s0: f64,
    step: f64,
    y: Vec<f64>,
    z: Vec<f64>,
    psi: Vec<f64>,
    /// Per entry: lateral offset x (mm), cos and sin of the axial rotation, forward slip (mm).
    frame: Vec<[f64; 4]>,
}

impl Centreline {
    fn idx(&self, s: f64) -> (usize, f64) {
        let t = ((s - self.s0) / self.step).clamp(0.0, (self.y.len() - 2) as f64);
        let i = t as usize; // t >= 0: truncation is the floor

        (i.min(self.y.len() - 2), t - i.min(self.y.len() - 2) as f64)
    }
    fn at(&self, s: f64) -> (f64, f64, f64) {
        let (i, f) = self.idx(s);
        let l = |v: &Vec<f64>| v[i] + (v[i + 1] - v[i]) * f;
        (l(&self.y), l(&self.z), l(&self.psi))
    }
    fn frame(&self, s: f64) -> [f64; 4] {
        let (i, f) = self.idx(s);
        let (a, b) = (self.frame[i], self.frame[i + 1]);
        [
            a[0] + (b[0] - a[0]) * f,
            a[1] + (b[1] - a[1]) * f,
            a[2] + (b[2] - a[2]) * f,
            a[3] + (b[3] - a[3]) * f,
        ]
    }
}

/// Piecewise-linear interpolation through `(s, value)` knots sorted by s; constant beyond the ends.
fn piecewise(knots: &[(f64, f64)], s: f64) -> f64 {
    if s <= knots[0].0 {
        return knots[0].1;
    }
    if s >= knots[knots.len() - 1].0 {
        return knots[knots.len() - 1].1;
    }
    let i = knots.iter().rposition(|&(ks, _)| ks <= s).unwrap();
    let (a, b) = (knots[i], knots[i + 1]);
    a.1 + (b.1 - a.1) * (s - a.0) / (b.0 - a.0).max(1e-9)
}

/// Linear interpolation in a table at fractional index `t` (clamped to the table).
fn lerp_table(v: &[f64], t: f64) -> f64 {
    let t = t.clamp(0.0, (v.len() - 2) as f64);
    let i = t.floor() as usize;
    v[i] + (v[i + 1] - v[i]) * (t - i as f64)
}

/// A centred moving average of half-width `h` samples (the ends use the samples available).
fn box_smooth(v: &[f64], h: usize) -> Vec<f64> {
    let n = v.len();
    let mut prefix = vec![0.0; n + 1];
    for i in 0..n {
        prefix[i + 1] = prefix[i] + v[i];
    }
    (0..n)
        .map(|i| {
            let (a, b) = (i.saturating_sub(h), (i + h + 1).min(n));
            (prefix[b] - prefix[a]) / (b - a) as f64
        })
        .collect()
}

/// One patient's anatomy: shapes and degeneration.
#[derive(Debug, Clone)]
pub struct Anatomy {
    /// The patient's degeneration degrees.
    pub degeneration: Degeneration,
    /// Sex, age, sizes and angles.
    pub morph: Morphometry,
    /// Findings beyond the graded narrowing (Pfirrmann, Modic, listhesis, ...).
    pub findings: Findings,
    /// Position in the scanner and coronal shape.
    pub pose: Pose,
    /// Seed of the patient's noise fields (outlines and textures).
    pub nseed: u32,
    /// Transitional lumbosacral anatomy (it decides how the levels are counted).
    pub transitional: Transitional,
    /// Sacralised L5: its transverse process fused to the sacral ala on the (left, right) side.
    pub fused_sides: [bool; 2],
    /// Sacralised L5: posterior height of the rudimentary L5/S1 disc before degeneration (mm).
    pub rudimentary_disc_mm: Option<f64>,
    /// Depth of the endplates' central concavity (mm).
    pub endplate_cav: f64,
    line: Centreline,
    /// s of the top and bottom endplates of each vertebral body.
    pub s_top: [f64; N_VERT],
    /// s of the bottom endplate of each vertebral body.
    pub s_bot: [f64; N_VERT],
    /// Body half-width (x) and half-depth (d).
    pub body_w: [f64; N_VERT],
    /// Body half-depth (d) of each vertebra.
    pub body_d: [f64; N_VERT],
    /// Disc degeneration for every disc (0 outside the lumbar levels).
    pub disc_deg: [f64; N_DISC],
    /// Normal dural sac half-axes (x, d) and centre d.
    pub sac_rx: f64,
    /// Normal dural sac half-axis in d (mm).
    pub sac_rd: f64,
    /// Centre d of the normal dural sac (mm).
    pub sac_dc: f64,
    /// Bony canal half-width.
    pub canal_w: f64,
    /// Depth of the posterior arch (lamina front) and spinous process length.
    pub lamina_d: f64,
    /// Spinous process length (mm).
    pub spinous_len: f64,
    /// Torso: subcutaneous fat thickness, half-width and back skin position (d).
    pub subcut: f64,
    /// Torso half-width (mm).
    pub torso_w: f64,
    /// d of the back skin (mm).
    pub back_d: f64,
    /// Antero-posterior depth of the torso (mm).
    pub torso_depth: f64,
    /// Table: nearest disc index for s (step 0.5 mm from `line.s0`).
    near_disc: Vec<u8>,
    /// Spinal / subarticular / foraminal degrees for every disc: `[disc]`, `[side][disc]`.
    spinal_deg: [f64; N_DISC],
    sub_deg: [[f64; N_DISC]; 2],
    for_deg: [[f64; N_DISC]; 2],
    /// Position of the sac's end (s), the conus (s).
    pub sac_end_s: f64,
    /// s at which the spinal cord ends (the conus medullaris); cauda equina below.
    pub conus_s: f64,
    /// World y of the back skin per world z (step 1 mm from `back_z0`).
    back_y: Vec<f64>,
    back_z0: f64,
    /// The ribs in the field of view (see [`ribs`]).
    pub ribs: Vec<ribs::Rib>,
    /// The lumbar transverse processes (see [`ribs`]).
    pub transverse: Vec<ribs::TransverseProcess>,
    /// The exiting nerve roots beyond the lumbar foramina (see [`ribs`]).
    pub root_sleeves: Vec<ribs::RootSleeve>,
    /// Bounding boxes `[s, |x|, d][min, max]` of all transverse processes, all ribs and all root
    /// sleeves.
    process_boxes: [[[f64; 2]; 3]; 3],
}

/// Straightened coordinates of a point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpineCoord {
    /// Arc length along the centreline, growing towards the feet (mm).
    pub s: f64,
    /// Distance towards the patient's left (mm).
    pub x: f64,
    /// Distance along the centreline's posterior normal; 0 on the posterior body walls (mm).
    pub d: f64,
}

impl Anatomy {
    /// Draws a patient. All randomness comes from `rng`.
    pub fn sample(rng: &mut ChaCha8Rng) -> Self {
        let degeneration = Degeneration::sample(rng);
        // Everything else comes from a child generator (one draw from the study's stream), so that
        // the anatomy can grow without moving the draws that follow it.
        let mut child = ChaCha8Rng::seed_from_u64(rng.gen());
        let rng = &mut child;
        let nrm = |rng: &mut ChaCha8Rng, m: f64, sd: f64| -> f64 {
            Normal::new(m, sd).unwrap().sample(rng)
        };
        let mut morph = Morphometry::sample(rng, degeneration.patient_factor);
        let findings = Findings::sample(rng, &degeneration, &morph);
        let pose = Pose::sample(rng, morph.age);
        let nseed: u32 = rng.gen();
        // Transitional anatomy from a stream of its own (seeded by the noise seed), so that it
        // does not move any other draw.
        let mut trng = ChaCha8Rng::seed_from_u64(0x7a5e_0000_0000 ^ nseed as u64);
        let transitional = Transitional::sample(&mut trng);
        let mut fused_sides = [false; 2];
        let mut rudimentary_disc_mm = None;
        match transitional {
            Transitional::None => {}
            Transitional::SacralisedL5 => {
                fused_sides = if trng.gen::<f64>() < 0.5 {
                    [true, true]
                } else if trng.gen::<bool>() {
                    [true, false]
                } else {
                    [false, true]
                };
                rudimentary_disc_mm = Some(trng.gen_range(2.0..4.5));
            }
            Transitional::SixLumbar => {
                // The top modelled vertebra below T11 is T12 normally; here it is a lumbar L1
                // (no rib), a little smaller than the next, with a lumbar disc below it.
                let z = |r: &mut ChaCha8Rng| -> f64 { StandardNormal.sample(r) };
                let v = L1 - 1;
                morph.body_h[v] = morph.body_h[L1] * (0.96 + 0.02 * z(&mut trng));
                morph.body_depth[v] = morph.body_depth[L1] * (0.97 + 0.02 * z(&mut trng));
                morph.body_width[v] = morph.body_width[L1] * (0.96 + 0.02 * z(&mut trng));
                morph.wedge_deg[v] = 0.6 * morph.wedge_deg[L1];
                morph.disc_h[v] = morpho::DISC_HEIGHTS[0][2]
                    * 0.92
                    * (1.0 + morpho::DISC_CV * z(&mut trng)).max(0.5_f64);
                morph.segment_deg[v] = 0.5 + 2.0 * z(&mut trng);
            }
        }
        let endplate_cav = nrm(rng, 1.1, 0.2).clamp(0.5, 1.7);
        let mut disc_deg = [0.0; N_DISC];
        disc_deg[3..8].copy_from_slice(&degeneration.disc);
        disc_deg[2] = (degeneration.disc[0] * 0.6 + 0.05 * nrm(rng, 0.0, 1.0)).clamp(0.0, 1.0);
        let mut s_top = [0.0; N_VERT];
        let mut s_bot = [0.0; N_VERT];
        let mut body_w = [0.0; N_VERT];
        let mut body_d = [0.0; N_VERT];
        let mut s = 0.0;
        for v in 0..N_VERT {
            s_top[v] = s;
            s_bot[v] = s + morph.body_h[v];
            body_w[v] = 0.5 * morph.body_width[v];
            body_d[v] = 0.5 * morph.body_depth[v];
            s = s_bot[v];
            if v < N_DISC {
                let h = match rudimentary_disc_mm {
                    Some(r) if v == S1 - 1 => r,
                    _ => morph.disc_h[v],
                };
                s += (h * height_factor(disc_deg[v])).max(0.8);
            }
        }
        // The centreline angle psi from the scanner's z axis (positive: going down heads
        // posteriorly), piecewise linear through the endplates: each body turns by its wedge, each
        // disc by the rest of its segment's angle (the sacral segments turn within the bodies),
        // then smoothed over ~10 mm so that the posterior elements are not folded at the discs.
        let psi_top = morph.endplate_psi_deg();
        let mut knots: Vec<(f64, f64)> = Vec::with_capacity(2 * N_VERT);
        for v in 0..N_VERT {
            let turn = if v < S1 {
                morph.wedge_deg[v]
            } else if v < N_DISC {
                morph.segment_deg[v]
            } else {
                0.0
            };
            knots.push((s_top[v], psi_top[v]));
            knots.push((s_bot[v], psi_top[v] + turn));
        }
        let step = 0.5;
        let s0 = -120.0;
        let s1 = s + 120.0;
        let n = ((s1 - s0) / step) as usize + 2;
        let build = |knots: &[(f64, f64)]| -> Vec<f64> {
            let mut ps: Vec<f64> = (0..n)
                .map(|i| piecewise(knots, s0 + i as f64 * step).to_radians())
                .collect();
            for _ in 0..2 {
                ps = box_smooth(&ps, 10);
            }
            ps
        };
        // The smoothing blurs the endplate angles: correct the knots until the smoothed line has
        // the intended angle at every endplate.
        let target = knots.clone();
        let mut ps = build(&knots);
        for _ in 0..6 {
            for (k, t) in knots.iter_mut().zip(&target) {
                let got = lerp_table(&ps, (t.0 - s0) / step).to_degrees();
                k.1 += t.1 - got;
            }
            ps = build(&knots);
        }
        let (mut ys, mut zs) = (vec![0.0; n], vec![0.0; n]);
        let (mut y, mut z) = (0.0, 0.0);
        for i in 0..n {
            ys[i] = y;
            zs[i] = z;
            y += ps[i].sin() * step;
            z -= ps[i].cos() * step;
        }
        // Put the middle of L3's posterior wall at the origin (world y, z); x = 0 is the midline.
        let l3 = 0.5 * (s_top[5] + s_bot[5]);
        let li = ((l3 - s0) / step) as usize;
        let (oy, oz) = (ys[li], zs[li]);
        ys.iter_mut().for_each(|v| *v -= oy);
        zs.iter_mut().for_each(|v| *v -= oz);
        // Coronal shape and pose: lateral offset, a scoliotic curve over T12-L5 with the vertebrae
        // rotated towards its convexity, the patient's roll, and a listhesis as a forward shift of
        // everything above the slipped disc (sheared across it).
        let (ca, cb) = (s_top[2], s_bot[7]);
        let listhesis = findings.listhesis;
        let mut frame = Vec::with_capacity(n);
        for i in 0..n {
            let si = s0 + i as f64 * step;
            let sc = if si > ca && si < cb {
                pose.scoliosis_mm * (std::f64::consts::PI * (si - ca) / (cb - ca)).sin()
            } else {
                0.0
            };
            let theta = (pose.rotation_per_mm * sc + pose.roll_deg).to_radians();
            let slip = match listhesis {
                Some(l) => {
                    let (a, b) = (s_bot[l.disc], s_top[l.disc + 1]);
                    let t = ((si - a) / (b - a)).clamp(0.0, 1.0);
                    -l.slip_mm * (1.0 - t * t * (3.0 - 2.0 * t))
                }
                None => 0.0,
            };
            frame.push([pose.lateral_mm + sc, theta.cos(), theta.sin(), slip]);
        }
        let line = Centreline {
            s0,
            step,
            y: ys,
            z: zs,
            psi: ps,
            frame,
        };
        let mut near_disc = vec![0u8; n];
        let disc_c: Vec<f64> = (0..N_DISC)
            .map(|i| 0.5 * (s_bot[i] + s_top[i + 1]))
            .collect();
        for (i, nd) in near_disc.iter_mut().enumerate() {
            let si = s0 + i as f64 * step;
            let mut best = 0;
            for j in 0..N_DISC {
                if (disc_c[j] - si).abs() < (disc_c[best] - si).abs() {
                    best = j;
                }
            }
            *nd = best as u8;
        }
        let mut spinal_deg = [0.0; N_DISC];
        let mut sub_deg = [[0.0; N_DISC]; 2];
        let mut for_deg = [[0.0; N_DISC]; 2];
        for l in 0..5 {
            spinal_deg[l + 3] = degeneration.spinal[l];
            for side in 0..2 {
                sub_deg[side][l + 3] = degeneration.subarticular[side][l];
                for_deg[side][l + 3] = degeneration.foraminal[side][l];
            }
        }
        let sac_rx = 0.5 * morph.sac_width;
        let sac_rd = 0.5 * morph.sac_ap;
        let epi = nrm(rng, 2.0, 0.4).clamp(1.2, 3.0);
        let subcut = nrm(rng, 20.0, 8.0).clamp(6.0, 45.0);
        let lamina_d = epi + 2.0 * sac_rd + 3.0;
        let spinous_len = nrm(rng, 30.0, 3.0).clamp(22.0, 38.0);
        let back_d = lamina_d + 6.0 + spinous_len + 4.0 + subcut;
        // The back skin in world coordinates: the centreline's y at each z, shifted posteriorly by
        // back_d along y (not along the normal, which would exaggerate the curve far from the spine).
        let (zmin, zmax) = (
            line.z.iter().cloned().fold(f64::INFINITY, f64::min),
            line.z.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
        );
        let back_z0 = zmin.floor();
        let nz = (zmax - back_z0).ceil() as usize + 1;
        let mut back_y = vec![0.0; nz];
        for (k, by) in back_y.iter_mut().enumerate() {
            let z = back_z0 + k as f64;
            let i = line.z.partition_point(|&v| v > z).min(line.z.len() - 1);
            let c = line.psi[i].cos().max(0.6);
            *by = line.y[i] + back_d / c;
        }
        // Smooth the back line (a moving average over 41 mm).
        let raw = back_y.clone();
        for (k, by) in back_y.iter_mut().enumerate() {
            let (a, b) = (k.saturating_sub(20), (k + 21).min(nz));
            *by = raw[a..b].iter().sum::<f64>() / (b - a) as f64;
        }
        // The conus tip, from its position in vertebral-segment units counted from the
        // anatomical L1's top (one vertebra higher with six lumbar vertebrae).
        let l1 = if transitional == Transitional::SixLumbar {
            L1 - 1
        } else {
            L1
        };
        let conus_s = {
            let u = morph.conus_units;
            let k = u.floor();
            let v = ((l1 as f64 + k).max(0.0) as usize).clamp(1, N_VERT - 2);
            s_top[v] + (u - k) * (s_top[v + 1] - s_top[v])
        };
        let mut anatomy = Anatomy {
            degeneration,
            morph,
            findings,
            pose,
            nseed,
            transitional,
            fused_sides,
            rudimentary_disc_mm,
            endplate_cav,
            line,
            s_top,
            s_bot,
            body_w,
            body_d,
            disc_deg,
            sac_rx,
            sac_rd,
            sac_dc: epi + sac_rd,
            canal_w: sac_rx + 2.0 * RECESS_ROOT_R + RECESS_RIM + 0.4,
            lamina_d,
            spinous_len,
            subcut,
            torso_w: nrm(rng, 165.0, 15.0).clamp(130.0, 210.0),
            back_d,
            torso_depth: nrm(rng, 230.0, 25.0).clamp(180.0, 300.0),
            near_disc,
            spinal_deg,
            sub_deg,
            for_deg,
            sac_end_s: s_top[9],
            conus_s,
            back_y,
            back_z0,
            ribs: Vec::new(),
            transverse: Vec::new(),
            root_sleeves: Vec::new(),
            process_boxes: [[[0.0; 2]; 3]; 3],
        };
        anatomy.sample_ribs_and_processes();
        anatomy
    }

    /// How this patient's levels are counted and named (truth.json's `level_counting`).
    pub fn level_counting(&self) -> LevelCounting {
        let names = self.transitional.anatomical_names();
        LevelCounting {
            transitional: self.transitional,
            counted_from: self.transitional.counted_from(),
            lumbar_vertebrae: if self.transitional == Transitional::SixLumbar {
                6
            } else {
                5
            },
            fused_sides: self.fused_sides,
            rudimentary_disc_mm: self.rudimentary_disc_mm,
            last_rib: self
                .last_rib_vertebra()
                .map(|v| names[v].to_string())
                .unwrap_or_default(),
            anatomical_vertebrae: names.iter().map(|n| n.to_string()).collect(),
            labelled_discs: Level::ALL
                .iter()
                .map(|&l| {
                    let j = disc_of_level(l);
                    format!("{}/{}", names[j], names[j + 1])
                })
                .collect(),
        }
    }

    /// The centre of disc `i` in s.
    pub fn disc_s(&self, i: usize) -> f64 {
        0.5 * (self.s_bot[i] + self.s_top[i + 1])
    }

    /// Straightened (anatomical) coordinates -> patient mm (LPS).
    pub fn to_patient(&self, c: SpineCoord) -> [f64; 3] {
        let [xo, cs, sn, slip] = self.line.frame(c.s);
        let dc = self.sac_dc;
        let xr = xo + c.x * cs - (c.d - dc) * sn;
        let dr = dc + c.x * sn + (c.d - dc) * cs + slip;
        let (y, z, psi) = self.line.at(c.s);
        // Posterior normal N = (0, cos psi, sin psi).
        [xr, y + dr * psi.cos(), z + dr * psi.sin()]
    }

    /// The spine's axis at `s`: the unit vector along the centreline towards the head, in patient
    /// space (a disc's plane is normal to it at the disc's centre; a slip shears the disc but does not
    /// tilt this axis).
    pub fn axis_at(&self, s: f64) -> [f64; 3] {
        let (_, _, psi) = self.line.at(s);
        let dx = (self.line.frame(s + 0.5)[0] - self.line.frame(s - 0.5)[0]) / 1.0;
        let v = [-dx, -psi.sin(), psi.cos()];
        let n = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
        [v[0] / n, v[1] / n, v[2] / n]
    }

    /// Patient mm (LPS) -> *raw* straightened coordinates of the centreline frame, starting from a
    /// guess of `s`: `x` is the patient x and `d` the distance along the centreline's normal, before
    /// the patient's lateral offset, scoliosis, rotation and slip ([`Anatomy::anatomical`] applies
    /// them). Renderers interpolate these raw coordinates and call [`Anatomy::tissue`].
    pub fn to_spine_from(&self, p: [f64; 3], mut s: f64) -> SpineCoord {
        for _ in 0..3 {
            let (y, z, psi) = self.line.at(s);
            let (sn, cs) = psi.sin_cos();
            let (dy, dz) = (p[1] - y, p[2] - z);
            // D = (sin psi, -cos psi) in (y, z); N = (cos psi, sin psi).
            let f = dy * sn - dz * cs;
            let d = dy * cs + dz * sn;
            let dpsi = {
                let (_, _, p2) = self.line.at(s + 0.5);
                (p2 - psi) / 0.5
            };
            let fp = -1.0 + d * dpsi;
            s -= f / fp.min(-0.2);
        }
        let (y, z, psi) = self.line.at(s);
        let (sn, cs) = psi.sin_cos();
        SpineCoord {
            s,
            x: p[0],
            d: (p[1] - y) * cs + (p[2] - z) * sn,
        }
    }

    /// Raw straightened coordinates ([`Anatomy::to_spine_from`]) -> anatomical ones (the frame
    /// of [`Anatomy::tissue_at_spine`]).
    pub fn anatomical(&self, c: SpineCoord) -> SpineCoord {
        let [xo, cs, sn, slip] = self.line.frame(c.s);
        let dc = self.sac_dc;
        let (u, v) = (c.x - xo, c.d - slip - dc);
        SpineCoord {
            s: c.s,
            x: u * cs + v * sn,
            d: dc - u * sn + v * cs,
        }
    }

    fn raw_spine(&self, p: [f64; 3]) -> SpineCoord {
        // Initial guess: the table entry with the nearest z.
        let zs = &self.line.z;
        let k = zs.partition_point(|&z| z > p[2]).min(zs.len() - 1);
        self.to_spine_from(p, self.line.s0 + k as f64 * self.line.step)
    }

    /// Patient mm (LPS) -> anatomical straightened coordinates.
    pub fn to_spine(&self, p: [f64; 3]) -> SpineCoord {
        self.anatomical(self.raw_spine(p))
    }

    /// The tissue at a patient-space point.
    pub fn tissue_at(&self, p: [f64; 3]) -> Tissue {
        self.tissue(self.raw_spine(p), p)
    }

    /// Torso outline at a world point: `None` inside the torso's deep tissues, else Air outside,
    /// skin, subcutaneous fat, or the muscles of the abdominal wall (obliques and transversus
    /// laterally, rectus in front). The outline and the fat's thickness vary smoothly with the
    /// angle around the body and along it.
    pub fn torso(&self, p: [f64; 3]) -> Option<Tissue> {
        let k = ((p[2] - self.back_z0).round().max(0.0) as usize).min(self.back_y.len() - 1);
        let yb = self.back_y[k];
        let th = 0.5 * self.torso_depth;
        let yc = yb - th;
        let tw = self.torso_w;
        let (u, v) = (p[0] / tw, (p[1] - yc) / th);
        let r2 = u * u + v * v;
        if r2 < 0.45 {
            return None; // well inside: skip the outline's noise
        }
        // Sine and cosine of the angle round the body, without the angle.
        let rr = r2.sqrt();
        let (sa, ca) = (v / rr, u / rr);
        let n = |k: u32, f: f64| noise3(self.nseed ^ k, 1.5 * ca + 3.0, 1.5 * sa + 3.0, p[2] / f);
        let r = rr / (1.0 + 0.03 * n(0x91, 80.0));
        // Radial distance (mm, approximate) inside the skin.
        let depth = (1.0 - r) * (tw * th / (tw * sa.abs() + th * ca.abs()).max(1.0)).max(1.0);
        if depth < 0.0 {
            return Some(Tissue::Air);
        }
        if depth < 1.8 {
            return Some(Tissue::Ligament); // skin: dense, intermediate-dark
        }
        // Subcutaneous fat: thicker at the back and flanks, thinner in front, varying.
        let back = v > 0.0;
        let fat = self.subcut * (if back { 1.0 } else { 0.8 }) * (1.0 + 0.25 * n(0x92, 60.0));
        if depth < fat {
            // Fibrous septa in the fat.
            if noise3(self.nseed ^ 0x93, p[0] / 14.0, p[1] / 14.0, p[2] / 20.0).abs() < 0.007 {
                return Some(Tissue::Ligament);
            }
            return Some(Tissue::Fat);
        }
        // The abdominal wall (not at the back, where the paraspinal muscles are).
        let wall = 9.0 + 4.0 * n(0x94, 70.0);
        if !back || v < 0.35 {
            if depth < fat + wall {
                // Fascial planes between the layers.
                let t = (depth - fat) / wall;
                if (t - 0.35).abs() < 0.04 || (t - 0.7).abs() < 0.04 {
                    return Some(Tissue::Fat);
                }
                return Some(Tissue::Muscle);
            }
            if depth < fat + wall + 3.0 {
                return Some(Tissue::Fat); // preperitoneal fat
            }
        }
        None
    }

    /// The tissue at a point given both its raw straightened ([`Anatomy::to_spine_from`]) and
    /// world coordinates.
    pub fn tissue(&self, c: SpineCoord, p: [f64; 3]) -> Tissue {
        match self.torso(p) {
            Some(t) => t,
            None => self.tissue_at_spine(self.anatomical(c)),
        }
    }

    /// The sac's (centre d, half-width, half-depth) at s, from the spinal degree of the nearest disc.
    pub fn sac_at(&self, s: f64, j: usize) -> (f64, f64, f64) {
        let b = bump(s - self.disc_s(j), 5.0) * self.spinal_deg[j];
        let front = 1.2 * b * self.sac_rd;
        let back = 0.8 * b * self.sac_rd;
        let da = self.sac_dc - self.sac_rd + front;
        let dp = self.sac_dc + self.sac_rd - back;
        (
            0.5 * (da + dp),
            self.sac_rx * (1.0 - 0.3 * b),
            0.5 * (dp - da),
        )
    }

    /// How far (mm) a paracentral herniation of disc `j` pushes the dural sac's anterior wall back
    /// at (s, x): on the herniation's side only, zero at the midline (so the spinal canal's
    /// antero-posterior narrowing, and its grade, are the degree's), following the herniation's
    /// footprint across the canal and along it (a migrated extrusion indents the sac where the
    /// fragment lies).
    pub fn sac_indent(&self, s: f64, j: usize, x: f64) -> f64 {
        let Some(h) = self.herniation(j) else {
            return 0.0;
        };
        let Zone::Paracentral(side) = h.zone else {
            return 0.0;
        };
        let sign = if side == 0 { 1.0 } else { -1.0 };
        let r = (sign * x / (0.4 * self.sac_rx)).clamp(0.0, 1.0);
        if r == 0.0 {
            return 0.0;
        }
        let r = r * r * (3.0 - 2.0 * r);
        let hgt = self.s_top[j + 1] - self.s_bot[j];
        let c = self.disc_s(j) + 0.5 * h.migration_mm;
        let along = bump(s - c, 0.35 * hgt + 1.5 + 0.3 * h.migration_mm.abs());
        (0.5 * h.amplitude + 0.8) * bump(x - h.x, h.width) * r * along
    }

    /// Thickness (mm) of the ligamentum flavum of disc `j` on a side at s: thicker with the canal's
    /// and that side's recess narrowing (facet and flavum hypertrophy are one-sided when the
    /// recess grades differ).
    pub fn flavum_thickness(&self, s: f64, j: usize, side: usize) -> f64 {
        (2.0 + 2.5 * self.spinal_deg[j] + 2.0 * self.sub_deg[side][j])
            * bump(s - self.disc_s(j), 7.0)
    }

    /// Whether (s, x, d) lies in the dural sac near disc `j`: the ellipse of [`Anatomy::sac_at`],
    /// indented in front on one side by a paracentral herniation ([`Anatomy::sac_indent`]) and
    /// behind, away from the midline, by the flavum of each side.
    pub fn in_sac(&self, s: f64, x: f64, d: f64, j: usize) -> bool {
        if s >= self.sac_end_s {
            return false;
        }
        let (dc, rx, rd) = self.sac_at(s, j);
        let u = x / rx;
        if u.abs() >= 1.0 {
            return false;
        }
        let e = (1.0 - u * u).sqrt();
        let front = dc - rd * e;
        let back = dc + rd * e;
        if d < front || d > back {
            return false;
        }
        if d < front + self.sac_indent(s, j, x) {
            return false;
        }
        let r = (x.abs() / (0.5 * rx)).clamp(0.0, 1.0);
        if r > 0.0 {
            let side = if x >= 0.0 { 0 } else { 1 };
            let wall = self.lamina_d - self.flavum_thickness(s, j, side) - 0.3;
            let cut = r * r * (3.0 - 2.0 * r) * (back - wall).max(0.0);
            if d > back - cut {
                return false;
            }
        }
        true
    }

    /// An epidural vein at anatomical (s, |x|, d) in the anterior epidural space near disc `j`
    /// (see [`Anatomy::tissue_at_spine`]).
    fn epidural_vein(&self, s: f64, ax: f64, d: f64, j: usize) -> Option<Tissue> {
        let ds = self.disc_s(j);
        let half_disc = 0.5 * (self.s_top[j + 1] - self.s_bot[j]);
        let away = (s - ds).abs() - half_disc;
        if away < 2.0 {
            return None;
        }
        // The body whose back this is, and its mid-height.
        let v = if s < ds { j } else { (j + 1).min(N_VERT - 1) };
        let mid = 0.5 * (self.s_top[v] + self.s_bot[v]);
        let grow = ((away - 2.0) / 4.0).clamp(0.0, 1.0);
        let n = noise3(self.nseed ^ 0xe7, s / 6.0, ax / 6.0, 0.5);
        let r = (0.6 + 0.8 * grow) * (1.0 + 0.3 * n);
        let (xv, dv) = (0.8 * self.sac_rx, 1.3);
        if ((ax - xv) / (1.3 * r)).powi(2) + ((d - dv) / r).powi(2) <= 1.0 {
            return Some(Tissue::Vessel);
        }
        if (s - mid).abs() < 1.0 && ax < xv && d < 1.4 && d > 0.3 {
            return Some(Tissue::Vessel);
        }
        None
    }

    /// Geometry of the lateral recess of disc `j` on a side at s: (root centre x, d; recess half
    /// sizes in x and d; root radius).
    pub fn recess_at(&self, s: f64, j: usize, side: usize) -> (f64, f64, f64, f64) {
        let w = space_half_size(self.sub_deg[side][j], RECESS_ROOT_R, RECESS_RIM);
        let b = bump(s - self.disc_s(j), 4.0);
        let free = RECESS_ROOT_R + RECESS_RIM;
        let half = free + (w - free) * b;
        let xr = self.sac_rx + RECESS_ROOT_R - 0.2;
        (xr, self.sac_dc - 0.35 * self.sac_rd, half, half)
    }

    /// Geometry of the foramen of disc `j` on a side: centre (s, d), half-axes (s, d), root centre s.
    pub fn foramen(&self, j: usize, side: usize) -> (f64, f64, f64, f64, f64) {
        let g = self.for_deg[side][j];
        let ad = space_half_size(g, FORAMEN_ROOT_R, 3.0);
        let h_up = self.s_bot[j] - self.s_top[j];
        let as_ = (0.42 * h_up) * (1.0 - 0.25 * g);
        let sc = self.disc_s(j) - 0.35 * h_up * (1.0 - 0.2 * g);
        let root_s = sc - 0.35 * as_;
        (sc, 3.2 + ad, as_, ad, root_s)
    }

    /// x of the centre of the foraminal band (the exiting root's parasagittal plane).
    pub fn foramen_x(&self) -> f64 {
        self.canal_w + 5.0
    }

    /// The tissue at a point in straightened coordinates.
    pub fn tissue_at_spine(&self, c: SpineCoord) -> Tissue {
        let SpineCoord { s, x, d } = c;
        let ax = x.abs();
        let side = if x >= 0.0 { 0 } else { 1 };
        let ti = (((s - self.line.s0) / self.line.step) as isize)
            .clamp(0, self.near_disc.len() as isize - 1) as usize;
        let j = self.near_disc[ti] as usize;
        let ds = self.disc_s(j);
        let above = j;
        let bd_max = self.body_d[6].max(self.body_d[7]).max(self.body_d[5]);
        let in_spine_range = s > self.s_top[0] - 15.0
            && s < self.s_bot[N_VERT - 1] + 5.0
            && ax < (self.canal_w + 14.0).max(self.body_w[7] + 5.0)
            && d > -2.0 * bd_max - 3.0
            && d < self.lamina_d + 7.0 + self.spinous_len;

        // Vessels anterior to the spine.
        let bd_ref = self.body_d[5];
        if d < -2.0 * bd_ref - 2.0 {
            let l4c = 0.5 * (self.s_top[6] + self.s_bot[6]);
            if s < l4c {
                let (ax0, ad0) = (12.0, -2.0 * self.body_d[above.min(7)] - 13.0);
                if (x - ax0).powi(2) + (d - ad0).powi(2) < 100.0 {
                    return Tissue::Vessel;
                }
                if (x + 16.0).powi(2) + (d - ad0 + 2.0).powi(2) < 110.0 {
                    return Tissue::Vessel;
                }
            } else if s < self.s_bot[8] {
                let off = 14.0 + (s - l4c) * 0.35;
                let ad0 = -2.0 * self.body_d[7] - 10.0;
                if (ax - off).powi(2) + (d - ad0).powi(2) < 40.0 {
                    return Tissue::Vessel;
                }
            }
        }
        if in_spine_range {
            // Vertebral bodies and discs (d < 0, plus disc bulge into the canal).
            if let Some(t) = self.column(s, x, d, j) {
                return t;
            }
            // The canal.
            if d >= 0.0 && d < self.lamina_d && ax < self.canal_w {
                if self.in_sac(s, x, d, j) {
                    let (dc, rx, rd) = self.sac_at(s, j);
                    {
                        if s < self.conus_s {
                            // Cord (above the conus), tapering.
                            let taper = ((self.conus_s - s) / 12.0).clamp(0.25, 1.0);
                            let (cr, cd) = (4.5 * taper, 3.6 * taper);
                            if (x / cr).powi(2) + ((d - dc) / cd).powi(2) <= 1.0 {
                                return Tissue::Nerve;
                            }
                            return Tissue::Csf;
                        }
                        // Cauda equina: roots in the dependent (posterior) half of the sac, crowding as
                        // the sac narrows.
                        const ROOTS: [(f64, f64); 10] = [
                            (-0.55, 0.35),
                            (-0.3, 0.55),
                            (0.0, 0.6),
                            (0.3, 0.55),
                            (0.55, 0.35),
                            (-0.4, 0.05),
                            (-0.15, 0.25),
                            (0.15, 0.25),
                            (0.4, 0.05),
                            (0.0, -0.1),
                        ];
                        for &(u, v) in &ROOTS {
                            let (rx0, rd0) = (u * rx, dc + v * rd);
                            if (x - rx0).powi(2) + (d - rd0).powi(2) < 0.9 {
                                return Tissue::Nerve;
                            }
                        }
                        return Tissue::Csf;
                    }
                }
                // Posterior longitudinal ligament on the back of bodies and discs.
                if d < 0.8 && ax < 7.0 {
                    return Tissue::Ligament;
                }
                // Epidural veins (the anterior internal vertebral venous plexus): a channel on
                // each side of the ligament behind the bodies, squeezed out at the discs, with the
                // retrocorporeal branch joining the basivertebral vein at mid-body (flow voids).
                if d < 3.2 {
                    if let Some(t) = self.epidural_vein(s, ax, d, j) {
                        return t;
                    }
                }
                // Lateral recess near the disc: root in fat, bounded by facet bone posteriorly.
                if ax > self.sac_rx * 0.6 {
                    let (xr, dr, hx, hd) = self.recess_at(s, j, side);
                    let rr = RECESS_ROOT_R.min(hx);
                    if ((ax - xr) / rr).powi(2) + ((d - dr) / RECESS_ROOT_R.min(hd)).powi(2) <= 1.0
                    {
                        return Tissue::Nerve;
                    }
                    let q = ((ax - xr) / hx).powi(2) + ((d - dr) / hd).powi(2);
                    // The superior articular process behind and lateral to the root, reaching
                    // further medially when this side's facet is hypertrophic.
                    let b = bump(s - ds, 6.0);
                    let reach = 0.5 + 2.5 * self.sub_deg[side][j] * b;
                    if q > 1.0 && d > dr - 0.5 * hd && ax > xr - reach {
                        return Tissue::Cortex;
                    }
                    // In front of and beside the root at the disc: the disc's posterolateral
                    // margin (bulging into the recess as it narrows).
                    if q > 1.0 && d < dr && ax > xr - 0.6 * hx && b > 0.5 {
                        return Tissue::Annulus;
                    }
                }
                // Ligamentum flavum: at the disc level, in front of the lamina, thicker when narrowed.
                let t_fl = self.flavum_thickness(s, j, side);
                if d > self.lamina_d - t_fl && ax > 1.0 {
                    return Tissue::Ligament;
                }
                return Tissue::Fat;
            }
            // A synovial cyst off the back of a facet joint (rare).
            if let Some((cs, cl)) = self.findings.synovial_cyst {
                if cs == side && cl + 3 == j {
                    let (cx, cd) = (self.canal_w + 4.0, self.lamina_d + 5.0);
                    let r2 = (ax - cx).powi(2) + (d - cd).powi(2) + (s - ds).powi(2);
                    if r2 < 16.0 {
                        return Tissue::JointFluid;
                    }
                    if r2 < 25.0 {
                        return Tissue::Ligament; // its wall
                    }
                }
            }
            // Foraminal band: bone (pedicles, articular pillars) with the foramina cut out; its
            // lateral and posterior outline bent by smooth noise, a cortical rim all round.
            let fw = self.canal_w + 12.0;
            let sd = side as f64 * 7.3;
            // The noise-bent outline only inside its bounding box.
            let in_band_box =
                d >= 0.0 && d < self.lamina_d + 9.8 && ax >= self.canal_w && ax < fw + 2.2;
            let (lat, back) = if in_band_box {
                (
                    fw + 2.2 * noise3(self.nseed ^ 0xa1, s / 8.0, d / 8.0, sd),
                    self.lamina_d + 8.0 + 1.8 * noise3(self.nseed ^ 0xa2, s / 7.0, ax / 7.0, sd),
                )
            } else {
                (fw, self.lamina_d + 8.0)
            };
            if in_band_box && d < back && ax < lat {
                let (fs, fd, as_, ad, root_s) = self.foramen(j, side);
                let rr = FORAMEN_ROOT_R;
                // The root (flattened to the space when compressed), then the fat around it: a
                // teardrop below the pedicle plus a band of the same depth around the root.
                if ((s - root_s) / rr).powi(2) + ((d - fd) / rr.min(ad)).powi(2) <= 1.0 {
                    return Tissue::Nerve;
                }
                let q = ((s - fs) / as_).powi(2) + ((d - fd) / ad).powi(2);
                let qr = ((s - root_s) / (rr + 1.0)).powi(2) + ((d - fd) / ad).powi(2);
                if q <= 1.0 || qr <= 1.0 {
                    return Tissue::Fat;
                }
                // Facet joint, behind the foramen: a fluid line (wider with an effusion) between
                // cartilage-lined articular processes. The joint surface is oblique in both
                // planes (a curved, obliquely set line on axials, a slanted one on parasagittal
                // slices) and gently undulating.
                if d > self.sac_dc && d < self.lamina_d + 7.0 {
                    let dj = d - (self.lamina_d - 2.0);
                    let xj = ax - (self.canal_w + 6.0);
                    let gap = (s - ds - 0.4 * dj + 0.35 * xj - 0.03 * xj * xj
                        + 0.6 * noise3(self.nseed ^ 0xa3, s / 5.0, d / 5.0, sd))
                    .abs();
                    let eff = (3..8).contains(&j) && self.findings.effusion[side][j - 3];
                    let fluid = if eff { 1.5 } else { 0.45 };
                    if gap < fluid {
                        return Tissue::JointFluid;
                    }
                    if gap < fluid + 1.1 {
                        return Tissue::Cartilage;
                    }
                    if gap < fluid + 1.8 {
                        return Tissue::Cortex; // subchondral plate
                    }
                }
                // In front of the articular pillar the bone is the pedicle: an oval on
                // parasagittal slices (height about 0.55 of the body's, on its upper part; about
                // 14-15 mm in the lumbar spine, K), joining the body in front and the pillar
                // behind; between the pedicles around the foraminal fat, the foraminal ligaments
                // and veins (intermediate-dark).
                if d < self.sac_dc {
                    let v = if s < ds { j } else { (j + 1).min(N_VERT - 1) };
                    let h = self.s_bot[v] - self.s_top[v];
                    let (sp, hp) = (self.s_top[v] + 0.33 * h, 0.275 * h);
                    let (dp, hd) = (0.5 * (self.sac_dc - 1.5), 0.5 * (self.sac_dc + 1.5) + 0.8);
                    let n = 0.08 * noise3(self.nseed ^ 0xa5d, s / 6.0, ax / 6.0, sd);
                    let qp = ((s - sp) / hp).powi(2) + ((d - dp) / hd).powi(2);
                    if qp > (1.0 + n).powi(2) {
                        return Tissue::Ligament;
                    }
                    let inner = 1.0 - 1.0 / hp.min(hd);
                    return if qp > (inner * (1.0 + n)).powi(2) || q < 1.3 || lat - ax < 1.0 {
                        Tissue::Cortex
                    } else {
                        Tissue::Marrow
                    };
                }
                if q < 1.3 || lat - ax < 1.0 || back - d < 1.0 {
                    return Tissue::Cortex;
                }
                return Tissue::Marrow;
            }
            // Posterior arch. The laminae converge behind the canal, so the canal's roof is a
            // gothic arch with the posterior epidural fat pad in the midline; each lamina is a
            // plate of varying thickness, inclined like a roof tile (its lower edge further back),
            // with the ligamentum flavum and the interlaminar gap at the disc.
            let in_arch_box = d >= self.lamina_d && d < self.lamina_d + 9.0 && ax < fw + 1.5;
            let arch_w = if in_arch_box {
                fw + 1.5 * noise3(self.nseed ^ 0xa4, s / 8.0, d / 8.0, sd)
            } else {
                fw
            };
            if in_arch_box && ax < arch_w {
                let front = self.lamina_d
                    + 2.2 * (1.0 - (ax / arch_w).powi(2))
                    + 0.5 * noise3(self.nseed ^ 0xa5, s / 6.0, ax / 6.0, 1.0);
                let thick = 5.2 + 1.0 * noise3(self.nseed ^ 0xa6, s / 10.0, ax / 10.0, 2.0);
                let gap_c = ds + 0.35 * (d - self.lamina_d) + 1.5;
                let gap_h = 4.5 + 1.2 * noise3(self.nseed ^ 0xa7, ax / 6.0, d / 6.0, j as f64);
                if d < front {
                    if (s - ds).abs() < 6.0 && ax > 1.0 {
                        return Tissue::Ligament; // flavum
                    }
                    return Tissue::Fat; // posterior epidural fat
                }
                if d < front + thick {
                    if (s - gap_c).abs() < gap_h {
                        return Tissue::Ligament;
                    }
                    let edge = (d - front)
                        .min(front + thick - d)
                        .min((s - gap_c).abs() - gap_h);
                    return if edge < 1.0 {
                        Tissue::Cortex
                    } else {
                        Tissue::Marrow
                    };
                }
            }
            // Spinous processes: sloping caudally, tapering from a broad base to a bulbous tip,
            // their outlines bent by noise; the interspinous ligament between them.
            let base = self.lamina_d + 6.0;
            if d >= base && d < base + self.spinous_len && ax < 5.0 {
                let t = (d - base) / self.spinous_len;
                let shift = 0.22 * (d - base);
                for v in j.saturating_sub(1)..=(j + 1).min(N_VERT - 1) {
                    let h = self.s_bot[v] - self.s_top[v];
                    // The process spans s in (a, b), each bent by at most 1.5 mm of noise.
                    if s <= self.s_top[v] + 0.25 * h + shift - 1.5
                        || s >= self.s_bot[v] + 1.0 + 0.8 * shift + 1.5
                    {
                        continue;
                    }
                    let n = noise3(self.nseed ^ 0xa8 ^ (v as u32 * 131), d / 6.0, x / 4.0, 0.5);
                    let mut a = self.s_top[v] + 0.25 * h + shift + 1.5 * n;
                    let mut b = self.s_bot[v] + 1.0 + 0.8 * shift + 1.5 * n;
                    // Rounded tip.
                    if t > 0.85 {
                        let k = (1.0 - ((t - 0.85) / 0.15).powi(2)).max(0.0).sqrt();
                        let (m, r) = (0.5 * (a + b), 0.5 * (b - a) * (0.6 + 0.4 * k));
                        a = m - r;
                        b = m + r;
                    }
                    let w = 3.4 - 1.0 * t
                        + if t > 0.8 { 2.5 * (t - 0.8) } else { 0.0 }
                        + 0.5 * noise3(self.nseed ^ 0xa9, s / 5.0, d / 5.0, v as f64);
                    if s > a && s < b && ax < w {
                        let edge = (w - ax).min(s - a).min(b - s);
                        return if edge < 1.0 || t > 0.97 {
                            Tissue::Cortex
                        } else {
                            Tissue::Marrow
                        };
                    }
                }
                if ax < 2.5 {
                    return Tissue::Ligament;
                }
            }
        }
        self.soft_tissue(s, x, d)
    }
}

/// Helper for samplers: a uniform draw.
pub fn uniform(rng: &mut ChaCha8Rng, a: f64, b: f64) -> f64 {
    rng.gen_range(a..b)
}

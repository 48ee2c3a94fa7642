//! Pose and degenerative findings beyond the graded narrowing: positioning, scoliosis and rotation,
//! degenerative spondylolisthesis, Pfirrmann grade, Modic endplate changes, Schmorl nodes, annular
//! fissures (high-intensity zones), nuclear clefts, facet effusions and synovial cysts.
//!
//! Prevalences (project `spec/anatomy-mr.md`, section 4):
//! - degenerative spondylolisthesis: rare before 50, 23 % at 60 in asymptomatic people (Brinjikji
//!   2015, AJNR 36:811; V); men over 65: 31 %, 96 % at one level, grade I (Denard 2010, Spine
//!   35:1072; V); women about three times as often as men (Kalichman 2009, Spine 34:199; V); mostly
//!   at L4/5 (K). Modelled: probability rising from 2 % under 45 to 25 % at 70, x1.4 for women,
//!   x0.7 for men; level L4/5 70 %, L3/4 15 %, L5/S1 15 %; grade I 90 %, grade II 10 %;
//! - Modic changes: 6 % without symptoms to 43 % (median) with low back pain, type II the most
//!   common (Jensen 2008, PMC2583186; Li 2014, PLoS One e114993; V): here on the endplates of
//!   degenerated discs, type II twice as often as type I;
//! - Schmorl nodes: 16-28 % of people, most at L1/2-L2/3, more in men (Mok 2010, Spine 35:1944; Yin
//!   2015; V);
//! - annular fissure: 19 % at 20 to 29 % at 80 (Brinjikji 2015; V), shown as a high-intensity zone
//!   in the posterior annulus;
//! - adult degenerative scoliosis (Cobb over 10 deg) in about a tenth of adults, more with age (K);
//!   axial rotation of the apical vertebra grows with the curve (K);
//! - synovial cysts of the facet joints are rare (about 1 %, K); facet effusion follows the
//!   subarticular degree (K);
//! - lumbosacral transitional vertebrae: 18.9 % of 746 patients, sacralisation 17.2 %,
//!   lumbarisation 1.7 % (Uçar 2013, PMC3707212; V); most sacralisations are Castellvi type I
//!   (an enlarged transverse process, no fusion, no change to the count), about a fifth types
//!   II-IV with a pseudarthrosis or fusion to the sacral ala and a rudimentary L5/S1 disc (K).
//!   Modelled: a sacralised L5 (types II-IV, one or both sides) in 3.5 % of patients, six lumbar
//!   vertebrae (lumbarised S1 counted as L6; drawn as a lumbar-shaped vertebra in place of T12) in
//!   1.7 % ([`Transitional`]).

use super::morpho::{Morphometry, Sex};
use super::{Degeneration, N_DISC};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

/// How the patient lies in the scanner and the shape of the spine in the coronal plane.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pose {
    /// Lateral offset of the whole spine from the scanner's midline (mm, + = patient left).
    pub lateral_mm: f64,
    /// Scoliosis: peak lateral deviation of the lumbar curve (mm, signed; + = convex left).
    pub scoliosis_mm: f64,
    /// Axial rotation per mm of lateral deviation (deg/mm).
    pub rotation_per_mm: f64,
    /// Roll of the whole patient about the long axis (deg).
    pub roll_deg: f64,
}

impl Pose {
    /// Draws a pose.
    pub fn sample(rng: &mut ChaCha8Rng, age: f64) -> Self {
        let z = |r: &mut ChaCha8Rng| -> f64 { StandardNormal.sample(r) };
        let p_curve = 0.05 + 0.2 * ((age - 50.0) / 30.0).clamp(0.0, 1.0);
        let sign = if rng.gen::<bool>() { 1.0 } else { -1.0 };
        let scoliosis_mm = if rng.gen::<f64>() < p_curve {
            sign * rng.gen_range(4.0..11.0)
        } else {
            1.5 * z(rng)
        };
        Pose {
            lateral_mm: 6.0 * z(rng),
            scoliosis_mm,
            rotation_per_mm: rng.gen_range(0.4..1.0),
            roll_deg: 2.0 * z(rng),
        }
    }
}

/// A degenerative spondylolisthesis: the vertebra above `disc` slipped forwards.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Listhesis {
    /// The disc index (L4/L5 is disc 6).
    pub disc: usize,
    /// Forward slip (mm).
    pub slip_mm: f64,
    /// Meyerding grade (1: slip under 25 % of the lower body's depth, 2: 25-50 %).
    pub grade: u8,
}

/// A Schmorl node: disc material herniated through an endplate into the body.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Schmorl {
    /// The disc index.
    pub disc: usize,
    /// Through the lower endplate of the vertebra above (true) or the upper one below.
    pub upward: bool,
    /// Position across the endplate: x (mm) and the fraction of the depth from the front.
    pub x: f64,
    /// Fraction of the body depth from the posterior wall (0) to the front (1).
    pub depth_frac: f64,
    /// Radius (mm).
    pub radius: f64,
}

/// The kind of disc herniation (posterior contour beyond the ring apophyses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HerniationType {
    /// Broad-based protrusion of disc material (under a quarter of the circumference).
    Protrusion,
    /// Extrusion: a fragment wider than its neck, often migrating up or down.
    Extrusion,
}

/// Where a herniation points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Zone {
    /// Midline.
    Central,
    /// Into the lateral recess on a side (0 = left).
    Paracentral(usize),
    /// Into the foramen on a side.
    Foraminal(usize),
}

/// A focal disc herniation at one level.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Herniation {
    /// Protrusion or extrusion.
    pub kind: HerniationType,
    /// Its zone.
    pub zone: Zone,
    /// Centre across the canal (mm, + = left).
    pub x: f64,
    /// Half-width (Gaussian SD, mm).
    pub width: f64,
    /// Posterior extent beyond the disc's bulge (mm).
    pub amplitude: f64,
    /// Migration of an extruded fragment along the canal (mm; + = towards the feet).
    pub migration_mm: f64,
}

/// Findings per lumbar disc level (index 0 = L1/L2) and the patient-level ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Findings {
    /// Pfirrmann grade 1-5 per lumbar disc, from its degeneration.
    pub pfirrmann: [u8; 5],
    /// Modic type (0 none, 1 oedema, 2 fatty) per lumbar disc: [endplate above, endplate below].
    pub modic: [[u8; 2]; 5],
    /// Annular fissure with a high-intensity zone in the posterior annulus, per lumbar disc.
    pub hiz: [bool; 5],
    /// Side of each high-intensity zone (+1 left of the midline, -1 right).
    pub hiz_side: [f64; 5],
    /// Focal herniation per lumbar disc (a diffuse bulge is drawn from the disc degeneration).
    pub herniation: [Option<Herniation>; 5],
    /// Nuclear cleft (a dark horizontal band in the nucleus of a hydrated disc), per lumbar disc.
    pub cleft: [bool; 5],
    /// Facet joint effusion (a wider fluid line), per side (0 left) and lumbar disc.
    pub effusion: [[bool; 5]; 2],
    /// Synovial cyst of a facet joint: (side, lumbar disc index).
    pub synovial_cyst: Option<(usize, usize)>,
    /// Schmorl nodes.
    pub schmorl: Vec<Schmorl>,
    /// Degenerative spondylolisthesis, if any.
    pub listhesis: Option<Listhesis>,
}

/// The Pfirrmann grade for a disc degeneration in `[0, 1]` (equal bands).
pub fn pfirrmann_of(deg: f64) -> u8 {
    (1.0 + (deg.clamp(0.0, 0.999) * 5.0).floor()) as u8
}

/// Disc height relative to a healthy disc for a degeneration: Pfirrmann 1-2 100 %, 3 90 %, 4 75 %,
/// 5 50 % (spec/anatomy-mr.md section 2), interpolated between band centres.
pub fn height_factor(deg: f64) -> f64 {
    const C: [(f64, f64); 5] = [(0.1, 1.0), (0.3, 1.0), (0.5, 0.9), (0.7, 0.75), (0.9, 0.5)];
    let g = deg.clamp(0.0, 1.0);
    if g <= C[0].0 {
        return 1.0;
    }
    for w in C.windows(2) {
        if g <= w[1].0 {
            let f = (g - w[0].0) / (w[1].0 - w[0].0);
            return w[0].1 + (w[1].1 - w[0].1) * f;
        }
    }
    0.5 - (g - 0.9) * 1.5
}

impl Findings {
    /// Draws the findings of a patient, tied to the degeneration and the morphometry.
    pub fn sample(rng: &mut ChaCha8Rng, deg: &Degeneration, m: &Morphometry) -> Self {
        let pfirrmann = deg.disc.map(pfirrmann_of);
        let mut modic = [[0u8; 2]; 5];
        let mut hiz = [false; 5];
        let mut cleft = [false; 5];
        let mut effusion = [[false; 5]; 2];
        let mut hiz_side = [1.0; 5];
        let mut herniation = [None; 5];
        let sac_rx = 0.5 * m.sac_width;
        for l in 0..5 {
            let g = deg.disc[l];
            // Modic: on degenerated discs (Pfirrmann 4-5 mostly), type II twice type I.
            let p_modic = if g > 0.6 {
                0.45 * (g - 0.6) / 0.4 + 0.1
            } else if g >= 0.4 {
                0.04
            } else {
                0.0
            };
            if rng.gen::<f64>() < p_modic {
                let t = if rng.gen::<f64>() < 0.67 { 2 } else { 1 };
                match rng.gen_range(0..3) {
                    0 => modic[l] = [t, 0],
                    1 => modic[l] = [0, t],
                    _ => modic[l] = [t, t],
                }
            }
            hiz[l] = g > 0.25 && rng.gen::<f64>() < 0.06 + 0.08 * (m.age - 20.0) / 60.0;
            cleft[l] = g < 0.5 && rng.gen::<f64>() < 0.5 + 0.5 * (m.age - 30.0).clamp(0.0, 1.0);
            if rng.gen::<bool>() {
                hiz_side[l] = -1.0;
            }
            herniation[l] = sample_herniation(rng, deg, l, sac_rx);
            for (side, e) in effusion.iter_mut().enumerate() {
                e[l] = deg.subarticular[side][l] > 0.4 && rng.gen::<f64>() < 0.35;
            }
        }
        let synovial_cyst = (rng.gen::<f64>() < 0.012 * (m.age / 55.0)).then(|| {
            let l = if rng.gen::<f64>() < 0.7 { 3 } else { 2 };
            (rng.gen_range(0..2usize), l)
        });
        // Schmorl nodes: most at L1/2-L2/3, more in men.
        let mut schmorl = Vec::new();
        let p_person = if m.sex == Sex::Male { 0.26 } else { 0.18 };
        if rng.gen::<f64>() < p_person {
            let n = 1 + (rng.gen::<f64>() < 0.35) as usize;
            for _ in 0..n {
                let l = [0, 0, 1, 1, 2, 3][rng.gen_range(0..6)];
                schmorl.push(Schmorl {
                    disc: l + 3,
                    upward: rng.gen::<bool>(),
                    x: rng.gen_range(-8.0..8.0),
                    depth_frac: rng.gen_range(0.3..0.7),
                    radius: rng.gen_range(2.0..4.5),
                });
            }
        }
        let p_slip = (0.02 + 0.23 * ((m.age - 45.0) / 25.0).clamp(0.0, 1.0))
            * if m.sex == Sex::Female { 1.4 } else { 0.7 };
        let listhesis = (rng.gen::<f64>() < p_slip).then(|| {
            let u = rng.gen::<f64>();
            let disc = if u < 0.7 {
                6
            } else if u < 0.85 {
                5
            } else {
                7
            };
            let depth = m.body_depth[disc + 1];
            let (grade, frac) = if rng.gen::<f64>() < 0.9 {
                (1, rng.gen_range(0.06..0.25))
            } else {
                (2, rng.gen_range(0.25..0.4))
            };
            Listhesis {
                disc,
                slip_mm: frac * depth,
                grade,
            }
        });
        Findings {
            pfirrmann,
            modic,
            hiz,
            hiz_side,
            herniation,
            cleft,
            effusion,
            synovial_cyst,
            schmorl,
            listhesis,
        }
    }

    /// The side (+1 left, -1 right) of the high-intensity zone of lumbar disc `l`.
    pub fn hiz_side(&self, l: usize) -> f64 {
        self.hiz_side[l]
    }

    /// The Modic type of the endplate of vertebra `v` that faces disc `j` (0 if none or not lumbar).
    pub fn modic_at(&self, j: usize, upper: bool) -> u8 {
        if !(3..8).contains(&j) {
            return 0;
        }
        self.modic[j - 3][if upper { 0 } else { 1 }]
    }
}

/// A level's focal herniation, tied to its narrowing degrees: a severe central stenosis is
/// mostly an extrusion or a large central protrusion, a narrowed recess a paracentral protrusion on
/// its side, a narrowed foramen sometimes a foraminal one.
fn sample_herniation(
    rng: &mut ChaCha8Rng,
    deg: &Degeneration,
    l: usize,
    sac_rx: f64,
) -> Option<Herniation> {
    let sp = deg.spinal[l];
    let sub = [deg.subarticular[0][l], deg.subarticular[1][l]];
    let fo = [deg.foraminal[0][l], deg.foraminal[1][l]];
    let worse = |v: [f64; 2]| if v[0] >= v[1] { 0 } else { 1 };
    let sign = |side: usize| if side == 0 { 1.0 } else { -1.0 };
    let u = rng.gen::<f64>();
    let (kind, zone, amp) = if sp >= 2.0 / 3.0 {
        let k = if u < 0.55 {
            HerniationType::Extrusion
        } else {
            HerniationType::Protrusion
        };
        (k, Zone::Central, rng.gen_range(2.0..4.5))
    } else if sp >= 1.0 / 3.0 && u < 0.7 {
        let side = worse(sub);
        let z = if sub[side] >= 1.0 / 3.0 {
            Zone::Paracentral(side)
        } else {
            Zone::Central
        };
        // Some paracentral herniations at a narrowed canal are extrusions (u is uniform here).
        let k = if u < 0.15 && z != Zone::Central {
            HerniationType::Extrusion
        } else {
            HerniationType::Protrusion
        };
        (k, z, rng.gen_range(1.5..3.5))
    } else if sub[worse(sub)] >= 1.0 / 3.0 && u < 0.6 {
        (
            HerniationType::Protrusion,
            Zone::Paracentral(worse(sub)),
            rng.gen_range(1.0..2.5),
        )
    } else if fo[worse(fo)] >= 1.0 / 3.0 && u < 0.4 {
        (
            HerniationType::Protrusion,
            Zone::Foraminal(worse(fo)),
            rng.gen_range(1.0..2.5),
        )
    } else {
        return None;
    };
    let (x, width) = match zone {
        Zone::Central => (rng.gen_range(-1.5..1.5), rng.gen_range(4.0..7.0)),
        Zone::Paracentral(s) => (sign(s) * 0.75 * sac_rx, rng.gen_range(3.0..5.0)),
        Zone::Foraminal(s) => (sign(s) * (sac_rx + 9.0), rng.gen_range(3.0..4.5)),
    };
    let migration_mm = if kind == HerniationType::Extrusion {
        rng.gen_range(-8.0..8.0)
    } else {
        0.0
    };
    Some(Herniation {
        kind,
        zone,
        x,
        width,
        amplitude: amp,
        migration_mm,
    })
}

/// Transitional lumbosacral anatomy, which decides how the levels are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transitional {
    /// Five lumbar vertebrae, no transitional vertebra.
    None,
    /// L5 fused or partly fused to the sacrum (Castellvi II-IV): its transverse process meets the
    /// sacral ala on one or both sides and the L5/S1 disc is rudimentary.
    SacralisedL5,
    /// Six lumbar vertebrae (L1-L6, then the sacrum).
    SixLumbar,
}

/// Prevalence of a sacralised L5 with fusion or pseudarthrosis (Castellvi II-IV), see the module
/// docs.
pub const P_SACRALISED_L5: f64 = 0.035;
/// Prevalence of six lumbar vertebrae (lumbarisation, Uçar 2013).
pub const P_SIX_LUMBAR: f64 = 0.017;

/// Where the reader started counting the vertebrae that name the labelled levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CountedFrom {
    /// Counting up from the sacrum and down from T12 give the same names (no transitional
    /// vertebra).
    FromSacrumAndT12,
    /// Counted up from the sacrum: the lowest mobile disc is L5/S1 (six lumbar vertebrae: the
    /// labels L1/L2 .. L5/S1 are the anatomical L2/L3 .. L6/S1).
    FromSacrum,
    /// Counted down from T12 (the last rib-bearing vertebra): a sacralised L5 keeps its name and
    /// its rudimentary disc is L5/S1.
    FromT12,
}

/// How the vertebral levels of a study were counted and named (in truth.json).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LevelCounting {
    /// The transitional type.
    pub transitional: Transitional,
    /// The count the labels follow.
    pub counted_from: CountedFrom,
    /// Number of lumbar (non-rib-bearing, mobile) vertebrae.
    pub lumbar_vertebrae: u8,
    /// For a sacralised L5: its transverse process fused to the ala on the (left, right) side.
    pub fused_sides: [bool; 2],
    /// Posterior height of the rudimentary L5/S1 disc of a sacralised L5 (mm), before
    /// degeneration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rudimentary_disc_mm: Option<f64>,
    /// Anatomical name of the vertebra that carries the last (lowest) rib: T12 (counting from it
    /// down finds L1; with six lumbar vertebrae the modelled vertebra labelled T12 is a lumbar L1).
    #[serde(default)]
    pub last_rib: String,
    /// Anatomical name of each modelled vertebra, top to bottom (counted from T12); the labels'
    /// names of the same vertebrae are [`super::VERTEBRAE`].
    pub anatomical_vertebrae: Vec<String>,
    /// Anatomical name of the disc each label level L1/L2 .. L5/S1 points to.
    pub labelled_discs: Vec<String>,
}

impl Transitional {
    /// Draws the transitional type of a patient.
    pub fn sample(rng: &mut ChaCha8Rng) -> Self {
        let u = rng.gen::<f64>();
        if u < P_SACRALISED_L5 {
            Transitional::SacralisedL5
        } else if u < P_SACRALISED_L5 + P_SIX_LUMBAR {
            Transitional::SixLumbar
        } else {
            Transitional::None
        }
    }

    /// Anatomical names (counted down from T12) of the modelled vertebrae, top to bottom: with six
    /// lumbar vertebrae the column from the sacrum up is S1, L6, L5, ... so the top modelled one is
    /// T11.
    pub fn anatomical_names(self) -> [&'static str; super::N_VERT] {
        match self {
            Transitional::SixLumbar => [
                "T11", "T12", "L1", "L2", "L3", "L4", "L5", "L6", "S1", "S2", "S3", "S4", "S5",
            ],
            _ => super::VERTEBRAE,
        }
    }

    /// The count the labels follow for this type.
    pub fn counted_from(self) -> CountedFrom {
        match self {
            Transitional::None => CountedFrom::FromSacrumAndT12,
            Transitional::SacralisedL5 => CountedFrom::FromT12,
            Transitional::SixLumbar => CountedFrom::FromSacrum,
        }
    }
}

/// Checks that the disc indices used here fit the model.
const _: () = assert!(N_DISC > 7);

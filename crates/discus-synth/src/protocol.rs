//! Sites, scanners and series geometry: what each series of a study looks like before it is rendered.

use crate::anatomy::{disc_of_level, Anatomy, SpineCoord};
use crate::signal::Sequence;
use discus_core::{Level, SeriesId, SeriesKind};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

/// A hospital site: its scanner and its protocol habits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Site {
    /// Position of the site in the cohort's site list.
    pub index: usize,
    /// InstitutionName.
    pub name: String,
    /// The scanner's Manufacturer (0008,0070).
    pub manufacturer: String,
    /// The scanner's ManufacturerModelName (0008,1090).
    pub model: String,
    /// MagneticFieldStrength (0018,0087), in tesla (1.5 or 3).
    pub field_t: f64,
    /// Multiplies every signal (vendors scale their pixel values differently).
    pub intensity_scale: f64,
    /// Noise standard deviation relative to a mid-grey tissue.
    pub noise: f64,
    /// Preferred sagittal matrix (columns, rows).
    pub sag_matrix: (u16, u16),
    /// Preferred axial matrix (square, columns = rows).
    pub axial_matrix: u16,
    /// Probability that this site acquires axials as angled per-level stacks (else one stack).
    pub p_per_level_axial: f64,
    /// Whether the "Sagittal T2/STIR" series is a STIR (else T2 spin echo).
    pub stir: bool,
}

const SCANNERS: [(&str, &str, f64); 6] = [
    ("SIEMENS", "Avanto", 1.5),
    ("SIEMENS", "Skyra", 3.0),
    ("GE MEDICAL SYSTEMS", "SIGNA Explorer", 1.5),
    ("GE MEDICAL SYSTEMS", "DISCOVERY MR750", 3.0),
    ("Philips Medical Systems", "Ingenia", 1.5),
    ("Philips Medical Systems", "Achieva", 3.0),
];

/// Sagittal matrices (columns, rows) with their frequency in the real data (spec section 3).
const SAG_MATRICES: [((u16, u16), f64); 8] = [
    ((512, 512), 0.33),
    ((320, 320), 0.19),
    ((384, 384), 0.15),
    ((448, 448), 0.09),
    ((256, 256), 0.04),
    ((640, 760), 0.07),
    ((704, 836), 0.07),
    ((768, 852), 0.06),
];

fn pick<T: Copy>(rng: &mut ChaCha8Rng, items: &[(T, f64)]) -> T {
    let total: f64 = items.iter().map(|x| x.1).sum();
    let mut u = rng.gen::<f64>() * total;
    for &(v, p) in items {
        if u < p {
            return v;
        }
        u -= p;
    }
    items[items.len() - 1].0
}

impl Site {
    /// The sites of a cohort, drawn from the cohort seed.
    pub fn make_sites(k: usize, rng: &mut ChaCha8Rng) -> Vec<Site> {
        (0..k)
            .map(|i| {
                let (man, model, field) = SCANNERS[(i * 5 + rng.gen_range(0..2)) % SCANNERS.len()];
                Site {
                    index: i,
                    name: format!("Synthetic Site {}", i + 1),
                    manufacturer: man.into(),
                    model: model.into(),
                    field_t: field,
                    intensity_scale: rng.gen_range(700.0..2600.0),
                    noise: if field > 2.0 {
                        rng.gen_range(0.015..0.03)
                    } else {
                        rng.gen_range(0.025..0.045)
                    },
                    sag_matrix: pick(rng, &SAG_MATRICES),
                    axial_matrix: pick(rng, &[(320, 0.35), (384, 0.25), (448, 0.15), (512, 0.25)]),
                    p_per_level_axial: rng.gen_range(0.2..0.8),
                    stir: rng.gen::<f64>() < 0.25,
                }
            })
            .collect()
    }
}

/// The geometry of one slice (one instance).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SliceGeom {
    /// ImagePositionPatient: centre of the first transmitted pixel (mm, LPS).
    pub ipp: [f64; 3],
    /// Direction of increasing column index (first IOP triple).
    pub row_dir: [f64; 3],
    /// Direction of increasing row index (second IOP triple).
    pub col_dir: [f64; 3],
    /// Rows (0028,0010): the image height in pixels.
    pub rows: u16,
    /// Columns (0028,0011): the image width in pixels.
    pub cols: u16,
    /// PixelSpacing: [between rows, between columns] (mm).
    pub spacing: [f64; 2],
    /// SliceThickness (0018,0050), in mm.
    pub thickness: f64,
}

/// The cross product `a x b`.
pub fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}
/// The dot product `a . b`.
pub fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}
fn add(a: [f64; 3], b: [f64; 3], k: f64) -> [f64; 3] {
    [a[0] + b[0] * k, a[1] + b[1] * k, a[2] + b[2] * k]
}
fn norm(a: [f64; 3]) -> [f64; 3] {
    let n = dot(a, a).sqrt();
    [a[0] / n, a[1] / n, a[2] / n]
}

impl SliceGeom {
    /// The slice normal, `row_dir x col_dir` (unit length for orthonormal directions).
    pub fn normal(&self) -> [f64; 3] {
        cross(self.row_dir, self.col_dir)
    }
    /// Patient mm of pixel (column, row), fractional allowed.
    pub fn pixel_to_patient(&self, col: f64, row: f64) -> [f64; 3] {
        let p = add(self.ipp, self.row_dir, col * self.spacing[1]);
        add(p, self.col_dir, row * self.spacing[0])
    }
    /// The same field of view with the matrix scaled by `k` (pixel spacing scaled by `1/k`).
    pub fn rescaled(&self, k: f64) -> SliceGeom {
        let (r, c) = (self.rows as f64, self.cols as f64);
        let centre = self.pixel_to_patient(0.5 * (c - 1.0), 0.5 * (r - 1.0));
        let rows = ((r * k).round() as u16).max(16);
        let cols = ((c * k).round() as u16).max(16);
        let spacing = [
            self.spacing[0] * r / rows as f64,
            self.spacing[1] * c / cols as f64,
        ];
        let ipp = add(
            add(
                centre,
                self.row_dir,
                -0.5 * (cols as f64 - 1.0) * spacing[1],
            ),
            self.col_dir,
            -0.5 * (rows as f64 - 1.0) * spacing[0],
        );
        SliceGeom {
            ipp,
            rows,
            cols,
            spacing,
            ..self.clone()
        }
    }

    /// (column, row, distance from the plane) of a patient point.
    pub fn patient_to_pixel(&self, p: [f64; 3]) -> (f64, f64, f64) {
        let v = [p[0] - self.ipp[0], p[1] - self.ipp[1], p[2] - self.ipp[2]];
        (
            dot(v, self.row_dir) / self.spacing[1],
            dot(v, self.col_dir) / self.spacing[0],
            dot(v, self.normal()),
        )
    }
}

/// One series as it will be written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesPlan {
    /// The series id: the series folder name and `series_id` in the CSVs.
    pub series_id: SeriesId,
    /// SeriesNumber (0020,0011).
    pub series_number: u32,
    /// What the series really is.
    pub kind: SeriesKind,
    /// The description written to train_series_descriptions.csv and the DICOM header.
    pub description: SeriesKind,
    /// The pulse sequence and its timing.
    pub sequence: Sequence,
    /// The geometry of each slice, in acquisition order.
    pub slices: Vec<SliceGeom>,
    /// InstanceNumber (and file name) of each slice, same order as `slices`.
    pub instance_numbers: Vec<u32>,
    /// Levels whose disc this series' slices cover (axial only; empty for sagittal).
    pub levels: Vec<Level>,
}

/// Rotation of `v` about unit axis `k` by `a` radians (Rodrigues).
fn rotate(v: [f64; 3], k: [f64; 3], a: f64) -> [f64; 3] {
    let (s, c) = a.sin_cos();
    let kv = cross(k, v);
    let kd = dot(k, v);
    [
        v[0] * c + kv[0] * s + k[0] * kd * (1.0 - c),
        v[1] * c + kv[1] * s + k[1] * kd * (1.0 - c),
        v[2] * c + kv[2] * s + k[2] * kd * (1.0 - c),
    ]
}

fn nrm(rng: &mut ChaCha8Rng, m: f64, sd: f64) -> f64 {
    Normal::new(m, sd).unwrap().sample(rng)
}

/// A sagittal stack centred on the spine.
pub fn sagittal_stack(anat: &Anatomy, site: &Site, rng: &mut ChaCha8Rng) -> Vec<SliceGeom> {
    let (cols, rows) = if rng.gen::<f64>() < 0.8 {
        site.sag_matrix
    } else {
        pick(rng, &SAG_MATRICES)
    };
    let fov = rng.gen_range(260.0..340.0);
    let ps = fov / rows.max(cols) as f64;
    let n = (nrm(rng, 17.0, 1.6).round() as usize).clamp(13, 21);
    let thickness = pick(rng, &[(3.0, 0.2), (3.5, 0.3), (4.0, 0.5)]);
    let gap = rng.gen_range(0.3..1.0) * thickness * 0.25;
    let spacing = thickness + gap;
    // Small obliquity: yaw about z, then roll about y.
    let yaw = nrm(rng, 0.0, 2.0).to_radians();
    let roll = nrm(rng, 0.0, 2.0).to_radians();
    let mut row_dir = [0.0, 1.0, 0.0];
    let mut col_dir = [0.0, 0.0, -1.0];
    for r in [&mut row_dir, &mut col_dir] {
        *r = norm(rotate(
            rotate(*r, [0.0, 0.0, 1.0], yaw),
            [0.0, 1.0, 0.0],
            roll,
        ));
    }
    let normal = cross(row_dir, col_dir); // ~ -x
                                          // Image centre: over the canal at L3, a little posterior so the back is in view.
    let l3 = 0.5 * (anat.s_top[5] + anat.s_bot[5]);
    let centre = anat.to_patient(SpineCoord {
        s: l3 + nrm(rng, 5.0, 8.0),
        x: nrm(rng, 0.0, 2.0),
        d: nrm(rng, -22.0, 8.0),
    });
    let (w, h) = (cols as f64 * ps, rows as f64 * ps);
    let first_centre = add(centre, normal, -0.5 * (n as f64 - 1.0) * spacing);
    (0..n)
        .map(|i| {
            let c = add(first_centre, normal, i as f64 * spacing);
            let ipp = add(
                add(c, row_dir, -0.5 * w + 0.5 * ps),
                col_dir,
                -0.5 * h + 0.5 * ps,
            );
            SliceGeom {
                ipp,
                row_dir,
                col_dir,
                rows,
                cols,
                spacing: [ps, ps],
                thickness,
            }
        })
        .collect()
}

/// Which levels the axial acquisition covers: upper levels are sometimes left out (spec section 3:
/// subarticular L1/L2 missing in ~8% of studies, L2/L3 in ~4%).
pub fn axial_levels(rng: &mut ChaCha8Rng) -> Vec<Level> {
    let u = rng.gen::<f64>();
    let first = if u < 0.042 {
        2
    } else if u < 0.083 {
        1
    } else {
        0
    };
    Level::ALL[first..].to_vec()
}

/// Axial T2 stacks: either one stack over all covered levels, or one angled stack per level.
/// Returns (slices, level of each slice or None for a continuous stack).
pub fn axial_stacks(
    anat: &Anatomy,
    site: &Site,
    levels: &[Level],
    per_level: bool,
    rng: &mut ChaCha8Rng,
) -> Vec<(SliceGeom, Option<Level>)> {
    let m = if rng.gen::<f64>() < 0.85 {
        site.axial_matrix
    } else {
        pick(rng, &[(320, 0.4), (384, 0.3), (512, 0.3)])
    };
    let fov = rng.gen_range(180.0..230.0);
    let ps = fov / m as f64;
    let thickness = pick(rng, &[(3.5, 0.3), (4.0, 0.6), (5.0, 0.1)]);
    let spacing = thickness + rng.gen_range(0.0..0.6);
    let x0 = nrm(rng, 0.0, 2.0);
    let d_centre = nrm(rng, 10.0, 5.0);
    let make = |centre: [f64; 3], up: [f64; 3], twist: f64| -> (SliceGeom, [f64; 3]) {
        // Rows go to the patient's left (+x), columns posterior, slice normal towards the head.
        let row_dir = norm(rotate([1.0, 0.0, 0.0], [0.0, 0.0, 1.0], twist));
        let col_dir = norm(cross(up, row_dir));
        let row_dir = norm(cross(col_dir, up));
        let w = m as f64 * ps;
        let ipp = add(
            add(centre, row_dir, -0.5 * w + 0.5 * ps),
            col_dir,
            -0.5 * w + 0.5 * ps,
        );
        (
            SliceGeom {
                ipp,
                row_dir,
                col_dir,
                rows: m,
                cols: m,
                spacing: [ps, ps],
                thickness,
            },
            up,
        )
    };
    let twist = nrm(rng, 0.0, 1.5).to_radians();
    let mut out = Vec::new();
    if per_level {
        let mut ups: Vec<[f64; 3]> = Vec::new();
        for &lv in levels {
            let j = disc_of_level(lv);
            let s = anat.disc_s(j);
            let mut up = anat.axis_at(s);
            up = norm(rotate(up, [1.0, 0.0, 0.0], nrm(rng, 0.0, 2.5).to_radians()));
            // Keep each level's stack at least 1.5 degrees from the others, as separately planned
            // blocks are (readers group slices into stacks by orientation).
            while ups
                .iter()
                .any(|u: &[f64; 3]| dot(*u, up).clamp(-1.0, 1.0).acos() < 1.5f64.to_radians())
            {
                up = norm(rotate(up, [1.0, 0.0, 0.0], 2.0f64.to_radians()));
            }
            ups.push(up);
            let n = rng.gen_range(4..8usize);
            let c = anat.to_patient(SpineCoord {
                s: s + nrm(rng, 0.0, 0.7),
                x: x0,
                d: d_centre,
            });
            // Superior slice first.
            for i in 0..n {
                let off = (0.5 * (n as f64 - 1.0) - i as f64) * spacing;
                let (g, _) = make(add(c, up, off), up, twist);
                out.push((g, Some(lv)));
            }
        }
    } else {
        let top = anat.disc_s(disc_of_level(levels[0])) - 8.0;
        let bot = anat.disc_s(disc_of_level(Level::L5S1)) + 8.0;
        let a = anat.to_patient(SpineCoord {
            s: top,
            x: x0,
            d: d_centre,
        });
        let b = anat.to_patient(SpineCoord {
            s: bot,
            x: x0,
            d: d_centre,
        });
        let mut up = norm([0.0, nrm(rng, 0.0, 0.05), 1.0]);
        up = norm(rotate(up, [1.0, 0.0, 0.0], nrm(rng, 0.0, 2.0).to_radians()));
        let len = dot([a[0] - b[0], a[1] - b[1], a[2] - b[2]], up);
        let n = (len / spacing).ceil() as usize + 1;
        for i in 0..n {
            let (g, _) = make(add(a, up, -(i as f64) * spacing), up, twist);
            out.push((g, None));
        }
    }
    out
}

/// Sequences for the three series types at a site.
pub fn sequence_for(kind: SeriesKind, site: &Site, rng: &mut ChaCha8Rng) -> Sequence {
    match kind {
        SeriesKind::SagittalT1 => Sequence::SpinEcho {
            tr: rng.gen_range(400.0..700.0),
            te: rng.gen_range(9.0..15.0),
        },
        SeriesKind::SagittalT2Stir if site.stir => Sequence::Stir {
            tr: rng.gen_range(3500.0..5000.0),
            te: rng.gen_range(40.0..70.0),
            ti: if site.field_t > 2.0 { 230.0 } else { 150.0 } + rng.gen_range(-10.0..20.0),
        },
        SeriesKind::SagittalT2Stir | SeriesKind::AxialT2 => Sequence::SpinEcho {
            tr: rng.gen_range(3000.0..5000.0),
            te: rng.gen_range(80.0..120.0),
        },
    }
}

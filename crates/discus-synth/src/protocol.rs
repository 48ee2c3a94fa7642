//! Sites, scanners and series geometry: what each series of a study looks like before it is rendered.

use crate::anatomy::{disc_of_level, Anatomy, SpineCoord};
use crate::signal::Sequence;
use discus_core::{Level, SeriesId, SeriesKind};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

/// What the site's "Sagittal T2/STIR" series is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum T2Flavour {
    /// Plain T2 turbo spin echo (fat bright).
    Plain,
    /// T2 turbo spin echo with spectral fat saturation (fat dark, failing far from the isocentre).
    FatSat,
    /// Short-tau inversion recovery (fat nulled by the inversion time).
    Stir,
}

/// Which in-plane image axis the phase is encoded along (InPlanePhaseEncodingDirection, 0018,1312):
/// `Row` means along a row (left-right in the image), `Col` along a column (up-down).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PhaseDir {
    /// Phase encoded along the rows (columns index); frequency along the columns.
    Row,
    /// Phase encoded along the columns (rows index); frequency along the rows.
    Col,
}

impl PhaseDir {
    /// The DICOM code string, `ROW` or `COL`.
    pub fn dicom(self) -> &'static str {
        match self {
            PhaseDir::Row => "ROW",
            PhaseDir::Col => "COL",
        }
    }
}

/// A hospital site: its scanner, its protocol habits and its image character. Written to truth.json
/// as the site's named profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Site {
    /// Position of the site in the cohort's site list.
    pub index: usize,
    /// InstitutionName.
    pub name: String,
    /// The profile's short name: vendor, model, field, T2 flavour (e.g. `siemens-skyra-3t-stir`).
    pub profile: String,
    /// The scanner's Manufacturer (0008,0070).
    pub manufacturer: String,
    /// The scanner's ManufacturerModelName (0008,1090).
    pub model: String,
    /// MagneticFieldStrength (0018,0087), in tesla (1.5 or 3).
    pub field_t: f64,
    /// Stored value per unit of signal (vendors scale their pixel values differently).
    pub intensity_scale: f64,
    /// BitsStored (0028,0101): 12 (values up to 4095) or 16.
    pub bits_stored: u16,
    /// RescaleSlope (0028,1053) written with every image (Philips: real value = slope x stored);
    /// `None`: not written (slope 1).
    pub rescale_slope: Option<f64>,
    /// RescaleIntercept (0028,1052), written together with the slope.
    pub rescale_intercept: f64,
    /// SNR of the vertebral marrow at L3 on the sagittal T1 (mean signal / noise sigma).
    pub snr_t1: f64,
    /// SNR of the CSF in the dural sac at L3 on the sagittal T2/STIR.
    pub snr_t2: f64,
    /// SNR of the CSF in the dural sac on the axial T2.
    pub snr_axial: f64,
    /// Receiver bandwidth per pixel (Hz), which sets the fat-water chemical shift in pixels.
    pub bandwidth_hz_px: f64,
    /// Acquired frequency-encoding matrix over the displayed one (below 1: the image was zero-filled
    /// and interpolated; Gibbs ringing has the acquired period).
    pub acq_freq_frac: f64,
    /// Phase resolution: acquired phase encodings over acquired frequency samples.
    pub phase_res: f64,
    /// Phase encoding direction of the sagittal series.
    pub sag_phase: PhaseDir,
    /// Phase encoding direction of the axial series.
    pub axial_phase: PhaseDir,
    /// Preferred sagittal matrix (columns, rows).
    pub sag_matrix: (u16, u16),
    /// Preferred axial matrix (square, columns = rows).
    pub axial_matrix: u16,
    /// Sagittal slice thickness (mm) and gap as a fraction of it.
    pub sag_thickness: f64,
    /// Sagittal gap over slice thickness.
    pub sag_gap: f64,
    /// Axial slice thickness (mm).
    pub axial_thickness: f64,
    /// Probability that this site acquires axials as angled per-level stacks (else one stack).
    pub p_per_level_axial: f64,
    /// What the "Sagittal T2/STIR" series is.
    pub t2_flavour: T2Flavour,
    /// Fat left by spectral fat saturation at the isocentre (fraction), for `FatSat`.
    pub fat_sat_residual: f64,
    /// Sagittal T1: TR, TE (ms) and echo train length.
    pub t1_timing: (f64, f64, u32),
    /// Sagittal T2/STIR: TR, TE (ms) and echo train length.
    pub t2_timing: (f64, f64, u32),
    /// Axial T2: TR, TE (ms) and echo train length.
    pub axial_timing: (f64, f64, u32),
    /// Probability that a series shows motion ghosting along the phase direction.
    pub p_motion: f64,
    /// Depth (mm) over which the posterior phased-array coil's sensitivity falls by 1/e.
    pub coil_depth: f64,
    /// Relative ripple of the coil sensitivity along the spine (element pattern).
    pub coil_ripple: f64,
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
    /// The sites of a cohort, drawn from the cohort seed. Sites cycle through the vendors and field
    /// strengths; each has its own matrix, slice thickness and gap, T2 flavour (plain, fat-saturated
    /// or STIR), timing, bandwidth, SNR, coil, motion rate and stored value range.
    pub fn make_sites(k: usize, rng: &mut ChaCha8Rng) -> Vec<Site> {
        (0..k)
            .map(|i| {
                // Vendors in turn (Siemens, GE, Philips), 1.5 or 3 T at random.
                let (man, model, field) = SCANNERS[(i % 3) * 2 + rng.gen_range(0..2)];
                let hi = field > 2.0;
                // Stored values: Siemens 12 bit, GE 16 bit, Philips 12 bit with a rescale slope.
                let (scale, bits, slope) = match man.split(' ').next().unwrap_or("") {
                    "SIEMENS" => (rng.gen_range(2500.0..5000.0), 12, None),
                    "GE" => (rng.gen_range(4000.0..12000.0), 16, None),
                    _ => (
                        rng.gen_range(4000.0..6000.0),
                        12,
                        Some((rng.gen_range(0.8..3.5f64) * 1000.0).round() / 1000.0),
                    ),
                };
                // Spec section 5: T2 TSE CSF SNR 20-60 at 1.5 T, 40-100 at 3 T (estimates).
                let snr_t2 = if hi {
                    rng.gen_range(45.0..90.0)
                } else {
                    rng.gen_range(22.0..50.0)
                };
                let t2_flavour = pick(
                    rng,
                    &[
                        (T2Flavour::Plain, 0.6),
                        (T2Flavour::Stir, 0.25),
                        (T2Flavour::FatSat, 0.15),
                    ],
                );
                let flav = match t2_flavour {
                    T2Flavour::Plain => "t2",
                    T2Flavour::FatSat => "t2fs",
                    T2Flavour::Stir => "stir",
                };
                let vendor = man.split(' ').next().unwrap_or(man).to_lowercase();
                let profile = format!(
                    "{vendor}-{}-{}t-{flav}",
                    model.to_lowercase().replace(' ', "-"),
                    if hi { "3" } else { "1.5" }
                );
                let t1_tr = if hi {
                    rng.gen_range(500.0..800.0)
                } else {
                    rng.gen_range(400.0..700.0)
                };
                Site {
                    index: i,
                    name: format!("Synthetic Site {}", i + 1),
                    profile,
                    manufacturer: man.into(),
                    model: model.into(),
                    field_t: field,
                    intensity_scale: scale,
                    bits_stored: bits,
                    rescale_slope: slope,
                    rescale_intercept: 0.0,
                    snr_t1: snr_t2 * rng.gen_range(0.8..1.1),
                    snr_t2,
                    snr_axial: snr_t2 * rng.gen_range(0.5..0.8),
                    bandwidth_hz_px: rng.gen_range(130.0..300.0),
                    acq_freq_frac: pick(rng, &[(1.0, 0.5), (0.75, 0.25), (0.625, 0.25)]),
                    phase_res: rng.gen_range(0.7..0.9),
                    sag_phase: pick(rng, &[(PhaseDir::Col, 0.7), (PhaseDir::Row, 0.3)]),
                    axial_phase: pick(rng, &[(PhaseDir::Row, 0.6), (PhaseDir::Col, 0.4)]),
                    sag_matrix: pick(rng, &SAG_MATRICES),
                    axial_matrix: pick(rng, &[(320, 0.35), (384, 0.25), (448, 0.15), (512, 0.25)]),
                    sag_thickness: pick(rng, &[(3.0, 0.2), (3.5, 0.3), (4.0, 0.5)]),
                    sag_gap: rng.gen_range(0.05..0.25),
                    axial_thickness: pick(rng, &[(3.5, 0.3), (4.0, 0.6), (5.0, 0.1)]),
                    p_per_level_axial: rng.gen_range(0.2..0.8),
                    t2_flavour,
                    fat_sat_residual: if hi {
                        rng.gen_range(0.04..0.1)
                    } else {
                        rng.gen_range(0.06..0.15)
                    },
                    t1_timing: (t1_tr, rng.gen_range(8.0..14.0), rng.gen_range(3..6)),
                    t2_timing: if t2_flavour == T2Flavour::Stir {
                        (
                            rng.gen_range(3500.0..5000.0),
                            rng.gen_range(40.0..60.0),
                            rng.gen_range(10..16),
                        )
                    } else {
                        (
                            rng.gen_range(3500.0..5000.0),
                            rng.gen_range(95.0..115.0),
                            rng.gen_range(15..24),
                        )
                    },
                    axial_timing: (
                        rng.gen_range(3500.0..5000.0),
                        rng.gen_range(95.0..115.0),
                        rng.gen_range(15..24),
                    ),
                    p_motion: rng.gen_range(0.03..0.15),
                    coil_depth: rng.gen_range(70.0..120.0),
                    coil_ripple: rng.gen_range(0.02..0.06),
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
    let thickness = if rng.gen::<f64>() < 0.9 {
        site.sag_thickness
    } else {
        pick(rng, &[(3.0, 0.2), (3.5, 0.3), (4.0, 0.5)])
    };
    let gap = site.sag_gap * thickness * rng.gen_range(0.9..1.1);
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
    let thickness = site.axial_thickness;
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

/// The sequence of a series type at a site: the site's timing with a little per-study jitter (the
/// technologist's adjustments), STIR with the inversion time that nulls fat at the site's field.
pub fn sequence_for(kind: SeriesKind, site: &Site, rng: &mut ChaCha8Rng) -> Sequence {
    let jit = |rng: &mut ChaCha8Rng, v: f64| (v * rng.gen_range(0.95..1.05)).round();
    match kind {
        SeriesKind::SagittalT1 => {
            let (tr, te, etl) = site.t1_timing;
            Sequence::SpinEcho {
                tr: jit(rng, tr),
                te: (te * 10.0).round() / 10.0,
                etl,
                fat_sat: None,
            }
        }
        SeriesKind::SagittalT2Stir => {
            let (tr, te, etl) = site.t2_timing;
            let tr = jit(rng, tr);
            match site.t2_flavour {
                T2Flavour::Stir => Sequence::Stir {
                    tr,
                    te: te.round(),
                    ti: (crate::signal::fat_null_ti(site.field_t, tr) * rng.gen_range(0.97..1.03))
                        .round(),
                    etl,
                },
                f => Sequence::SpinEcho {
                    tr,
                    te: te.round(),
                    etl,
                    fat_sat: (f == T2Flavour::FatSat).then_some(site.fat_sat_residual),
                },
            }
        }
        SeriesKind::AxialT2 => {
            let (tr, te, etl) = site.axial_timing;
            Sequence::SpinEcho {
                tr: jit(rng, tr),
                te: te.round(),
                etl,
                fat_sat: None,
            }
        }
    }
}

/// The signal model of one series of a study at a site: the sequence's tissue signals at the site's
/// field, the vendor's value scale, noise set so that the reference tissue (marrow at L3 on T1, CSF
/// in the dural sac at L3 on T2/STIR and axials) has the site's SNR at its coil gain, the coil, the
/// chemical shift, k-space truncation and (sometimes) motion ghosting.
pub fn series_signal(
    anat: &Anatomy,
    site: &Site,
    kind: SeriesKind,
    sequence: &Sequence,
    slices: &[SliceGeom],
    rng: &mut ChaCha8Rng,
) -> crate::raster::SeriesSignal {
    use crate::raster::{Ghost, SeriesSignal, FAT_PPM, GAMMA_MHZ_T};
    let table = crate::signal::signal_table_for(
        sequence,
        site.field_t,
        &anat.disc_deg,
        &crate::signal::patient_relax_factors(anat.nseed),
    );
    let scale = site.intensity_scale * rng.gen_range(0.9..1.1);
    let mid = &slices[slices.len() / 2];
    let iso = mid.pixel_to_patient(0.5 * (mid.cols as f64 - 1.0), 0.5 * (mid.rows as f64 - 1.0));
    let phase_dir = match kind {
        SeriesKind::AxialT2 => site.axial_phase,
        _ => site.sag_phase,
    };
    let mut sig = SeriesSignal {
        table,
        scale,
        sigma: 0.0,
        bias_depth: site.coil_depth * rng.gen_range(0.9..1.1),
        bias_grad: [
            rng.gen_range(-5e-4..5e-4),
            rng.gen_range(-5e-4..5e-4),
            rng.gen_range(-5e-4..5e-4),
        ],
        coil_ripple: site.coil_ripple,
        coil_phase: rng.gen_range(0.0..std::f64::consts::TAU),
        fat_fail: sequence.fat_sat().map_or(1.0, |r| 1.0 / r.max(1e-3)),
        iso,
        chem_shift_px: FAT_PPM * GAMMA_MHZ_T * site.field_t / site.bandwidth_hz_px,
        phase_dir,
        acq_frac: [site.acq_freq_frac, site.acq_freq_frac * site.phase_res],
        ghost: (rng.gen::<f64>() < site.p_motion).then(|| Ghost {
            amplitude: rng.gen_range(0.03..0.1),
            period: rng.gen_range(0.15..0.4),
        }),
        max_stored: if site.bits_stored >= 16 {
            u16::MAX
        } else {
            ((1u32 << site.bits_stored) - 1) as u16
        },
    };
    let (reference, snr) = reference_point(anat, site, kind);
    let (tissue, c) = reference;
    let p = anat.to_patient(c);
    let s_ref = sig.table.total(tissue.code()) as f64 * sig.gain(anat, c, p) * scale;
    sig.sigma = s_ref / snr;
    sig
}

/// The SNR reference of a series kind at a site: (tissue, where), and the site's SNR for it.
pub fn reference_point(
    anat: &Anatomy,
    site: &Site,
    kind: SeriesKind,
) -> ((crate::anatomy::Tissue, SpineCoord), f64) {
    use crate::anatomy::Tissue;
    let s = 0.5 * (anat.s_top[5] + anat.s_bot[5]);
    match kind {
        SeriesKind::SagittalT1 => (
            (
                Tissue::Marrow,
                SpineCoord {
                    s,
                    x: 0.0,
                    d: -anat.body_d[5],
                },
            ),
            site.snr_t1,
        ),
        SeriesKind::SagittalT2Stir | SeriesKind::AxialT2 => (
            (
                Tissue::Csf,
                SpineCoord {
                    s,
                    x: 0.0,
                    d: anat.sac_dc,
                },
            ),
            if kind == SeriesKind::AxialT2 {
                site.snr_axial
            } else {
                site.snr_t2
            },
        ),
    }
}

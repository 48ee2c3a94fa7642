//! Per-series label volumes (`discus synth --masks`): vertebrae, discs, the thecal sac, nerve roots
//! and the neural foramina by level, as NIfTI-1 (`.nii.gz`) aligned with the DICOM series.
//!
//! Where: `masks/<study>/<series>.nii.gz` beside `train_images/` (`masks/<study>/<series>_<k>.nii.gz`,
//! k = 1, 2, ..., for a series made of several non-parallel stacks, e.g. axials angled per level),
//! each with a `.json` sidecar listing the InstanceNumber of every slice, and `masks/labels.json` with
//! the label table. Slice `k` of a volume is the `k`-th slice of the series in acquisition order; each
//! voxel is labelled at the centre of its pixel, in the slice's plane.
//!
//! | value | structure |
//! |---|---|
//! | 0 | background |
//! | 1-13 | vertebra (body and posterior elements), T10 = 1 ... L1 = 4, L2 = 5, L3 = 6, L4 = 7, L5 = 8, S1 = 9 ... S5 = 13 |
//! | 21-32 | intervertebral disc (annulus and nucleus) below vertebra `v` (index from 0 = T10): `21 + v` (L1/L2 = 24, L4/L5 = 27, L5/S1 = 28) |
//! | 40 | thecal sac: CSF, cord and cauda equina |
//! | 41 | nerve roots outside the sac (lateral recess, exiting roots outside the foramen) |
//! | 50-59 | neural foramen (fat and exiting root) by lumbar level and side: `50 + 2 level + side`, level 0 = L1/L2 ... 4 = L5/S1, side 0 = left, 1 = right |

use crate::anatomy::{
    side_index, Anatomy, SpineCoord, Tissue, FORAMEN_ROOT_R, N_DISC, N_VERT, VERTEBRAE,
};
use crate::nifti::{encode_labels, stack_affine};
use crate::protocol::{dot, SliceGeom};
use crate::raster::for_each_pixel;
use discus_core::{Level, Side};
use serde::{Deserialize, Serialize};

/// Label of the thecal sac (CSF, cord, cauda equina).
pub const LABEL_SAC: u8 = 40;
/// Label of nerve roots outside the sac.
pub const LABEL_ROOT: u8 = 41;

/// Label of vertebra `v` (index into [`VERTEBRAE`]).
pub fn vertebra_label(v: usize) -> u8 {
    1 + v as u8
}

/// Label of disc `j` (below vertebra `j`).
pub fn disc_label(j: usize) -> u8 {
    21 + j as u8
}

/// Label of the foramen of a lumbar level on a side.
pub fn foramen_label(level: Level, side: Side) -> u8 {
    50 + 2 * level.index() as u8 + side_index(side) as u8
}

/// One entry of the label table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelEntry {
    /// The voxel value.
    pub value: u8,
    /// What it is, e.g. `vertebra L3`, `disc L4/L5`, `foramen L5/S1 left`.
    pub name: String,
}

/// The label table written to `masks/labels.json`. Vertebrae and discs are named as the labels
/// count them (see truth.json's `level_counting`: with six lumbar vertebrae, counted from the
/// sacrum, `vertebra L1` is the anatomical L2; its `anatomical_vertebrae` gives the anatomical
/// name of each label).
pub fn label_table() -> Vec<LabelEntry> {
    let mut out = vec![LabelEntry {
        value: 0,
        name: "background".into(),
    }];
    for (v, name) in VERTEBRAE.iter().enumerate() {
        out.push(LabelEntry {
            value: vertebra_label(v),
            name: format!("vertebra {name}"),
        });
    }
    for j in 0..N_DISC {
        out.push(LabelEntry {
            value: disc_label(j),
            name: format!("disc {}/{}", VERTEBRAE[j], VERTEBRAE[j + 1]),
        });
    }
    out.push(LabelEntry {
        value: LABEL_SAC,
        name: "thecal sac (CSF, cord, cauda equina)".into(),
    });
    out.push(LabelEntry {
        value: LABEL_ROOT,
        name: "nerve root outside the sac".into(),
    });
    for l in Level::ALL {
        for side in [Side::Left, Side::Right] {
            out.push(LabelEntry {
                value: foramen_label(l, side),
                name: format!("foramen {} {}", l.words(), side.as_str()),
            });
        }
    }
    out
}

fn nearest_disc(anat: &Anatomy, s: f64) -> usize {
    (0..N_DISC)
        .min_by(|&a, &b| {
            (anat.disc_s(a) - s)
                .abs()
                .total_cmp(&(anat.disc_s(b) - s).abs())
        })
        .unwrap_or(0)
}

fn nearest_vertebra(anat: &Anatomy, s: f64) -> usize {
    if let Some(v) = (0..N_VERT).find(|&v| s >= anat.s_top[v] && s <= anat.s_bot[v]) {
        return v;
    }
    (0..N_VERT)
        .min_by(|&a, &b| {
            let ca = 0.5 * (anat.s_top[a] + anat.s_bot[a]);
            let cb = 0.5 * (anat.s_top[b] + anat.s_bot[b]);
            (ca - s).abs().total_cmp(&(cb - s).abs())
        })
        .unwrap_or(0)
}

/// The label of a point given its raw centreline coordinates (as the raster gives them) and its
/// tissue.
pub fn label_at(anat: &Anatomy, c: SpineCoord, t: Tissue) -> u8 {
    // The structures are placed in the anatomical frame (offset, scoliosis, rotation, slip).
    let c = anat.anatomical(c);
    let j = nearest_disc(anat, c.s);
    // Foramina of the lumbar levels: the fat and root inside the foraminal opening.
    let ax = c.x.abs();
    if (3..8).contains(&j)
        && matches!(t, Tissue::Fat | Tissue::Nerve)
        && ax >= anat.canal_w
        && ax < anat.canal_w + 12.0
        && c.d >= 0.0
    {
        let side = if c.x >= 0.0 { 0 } else { 1 };
        let (fs, fd, as_, ad, root_s) = anat.foramen(j, side);
        let q = ((c.s - fs) / as_).powi(2) + ((c.d - fd) / ad).powi(2);
        let qr = ((c.s - root_s) / (FORAMEN_ROOT_R + 1.0)).powi(2) + ((c.d - fd) / ad).powi(2);
        if q <= 1.0 || qr <= 1.0 {
            return 50 + 2 * (j - 3) as u8 + side as u8;
        }
    }
    match t {
        Tissue::Marrow | Tissue::Cortex => vertebra_label(nearest_vertebra(anat, c.s)),
        Tissue::Annulus | Tissue::Nucleus(_) => disc_label(j),
        Tissue::Csf => LABEL_SAC,
        Tissue::Nerve => {
            let in_sac = c.d > 0.0 && anat.in_sac(c.s, c.x, c.d, j);
            if in_sac {
                LABEL_SAC
            } else {
                LABEL_ROOT
            }
        }
        _ => 0,
    }
}

/// The labels of one slice (row-major), at the slice's plane.
pub fn slice_labels(anat: &Anatomy, g: &SliceGeom) -> Vec<u8> {
    let mut out = vec![0u8; g.rows as usize * g.cols as usize];
    for_each_pixel(anat, g, 0.0, |i, c, _, t| out[i] = label_at(anat, c, t));
    out
}

/// Splits a series' slices into stacks of parallel slices with the same matrix (consecutive in the
/// series' order): the ranges of slice indices.
pub fn stacks(slices: &[SliceGeom]) -> Vec<std::ops::Range<usize>> {
    let mut out: Vec<std::ops::Range<usize>> = Vec::new();
    for (i, g) in slices.iter().enumerate() {
        let same = out.last().is_some_and(|r| {
            let h = &slices[r.start];
            dot(h.normal(), g.normal()) > 1.0 - 1e-9
                && h.rows == g.rows
                && h.cols == g.cols
                && h.row_dir == g.row_dir
        });
        if same {
            out.last_mut().expect("non-empty").end = i + 1;
        } else {
            out.push(i..i + 1);
        }
    }
    out
}

/// One mask file of a series.
#[derive(Debug, Clone)]
pub struct MaskVolume {
    /// File stem: `<series>` or `<series>_<k>`.
    pub stem: String,
    /// InstanceNumber of every slice, in volume order.
    pub instance_numbers: Vec<u32>,
    /// The gzipped NIfTI-1 bytes.
    pub nifti: Vec<u8>,
}

/// The mask volumes of one series (one per stack of parallel slices).
pub fn series_masks(
    anat: &Anatomy,
    series_id: &str,
    slices: &[SliceGeom],
    instance_numbers: &[u32],
) -> Vec<MaskVolume> {
    let st = stacks(slices);
    let many = st.len() > 1;
    st.iter()
        .enumerate()
        .map(|(k, r)| {
            let geoms = &slices[r.clone()];
            let g = &geoms[0];
            let mut data = Vec::with_capacity(g.rows as usize * g.cols as usize * geoms.len());
            for s in geoms {
                data.extend(slice_labels(anat, s));
            }
            let stem = if many {
                format!("{series_id}_{}", k + 1)
            } else {
                series_id.to_string()
            };
            let affine = stack_affine(geoms);
            MaskVolume {
                nifti: encode_labels(
                    [g.cols as usize, g.rows as usize, geoms.len()],
                    &data,
                    &affine,
                    &format!("discus synth labels, series {series_id}"),
                ),
                stem,
                instance_numbers: instance_numbers[r.clone()].to_vec(),
            }
        })
        .collect()
}

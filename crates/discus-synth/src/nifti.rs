//! A minimal NIfTI-1 writer for 8-bit label volumes (`.nii.gz`, single file `n+1`), aligned with a
//! DICOM series.
//!
//! Voxel `(i, j, k)` is column `i`, row `j` of slice `k` of the series (slices in the series'
//! acquisition order), so the data is the DICOM pixel order slice after slice. The voxel-to-world
//! transform is the DICOM one, `p_LPS = IPP_0 + i dc row_dir + j dr col_dir + k slice_step`
//! (`slice_step` from the first to the next slice's ImagePositionPatient), turned into NIfTI's RAS by
//! negating the first two rows (the LPS -> RAS flip). It is stored twice: as the sform
//! (`sform_code` 1, scanner anatomical) and as the qform quaternion with `qfac` for handedness
//! (`qform_code` 1), following `nifti_mat44_to_quatern` of the NIfTI-1 reference library.

use crate::protocol::{cross, dot, SliceGeom};
use flate2::write::GzEncoder;
use flate2::Compression;
use std::io::Write;

/// NIFTI_INTENT_LABEL: voxel values are labels (the table is in the masks' `labels.json`).
pub const INTENT_LABEL: i16 = 1002;
/// NIfTI datatype code for unsigned 8-bit voxels.
pub const DT_UINT8: i16 = 2;

/// A 4x4 voxel-to-world matrix (rows), RAS mm.
pub type Affine = [[f64; 4]; 4];

/// The RAS affine of a stack of parallel slices (in the order given). A single slice steps by its
/// thickness along the normal.
pub fn stack_affine(slices: &[SliceGeom]) -> Affine {
    let g = &slices[0];
    let step = if slices.len() > 1 {
        let n = (slices.len() - 1) as f64;
        let l = &slices[slices.len() - 1];
        [
            (l.ipp[0] - g.ipp[0]) / n,
            (l.ipp[1] - g.ipp[1]) / n,
            (l.ipp[2] - g.ipp[2]) / n,
        ]
    } else {
        let nn = g.normal();
        [
            nn[0] * g.thickness,
            nn[1] * g.thickness,
            nn[2] * g.thickness,
        ]
    };
    let cols = [
        [
            g.row_dir[0] * g.spacing[1],
            g.row_dir[1] * g.spacing[1],
            g.row_dir[2] * g.spacing[1],
        ],
        [
            g.col_dir[0] * g.spacing[0],
            g.col_dir[1] * g.spacing[0],
            g.col_dir[2] * g.spacing[0],
        ],
        step,
        g.ipp,
    ];
    let mut m = [[0.0; 4]; 4];
    for (c, v) in cols.iter().enumerate() {
        for r in 0..3 {
            let flip = if r < 2 { -1.0 } else { 1.0 };
            m[r][c] = flip * v[r];
        }
    }
    m[3][3] = 1.0;
    m
}

/// The qform parameters of an affine: (quatern b, c, d, qfac, pixdim x, y, z). The rotation is
/// orthonormalised first (slices of one stack are parallel, so it already is up to rounding).
pub fn quatern(m: &Affine) -> ([f64; 3], f64, [f64; 3]) {
    let col = |c: usize| [m[0][c], m[1][c], m[2][c]];
    let len = |v: [f64; 3]| dot(v, v).sqrt();
    let (a, b, c) = (col(0), col(1), col(2));
    let pix = [len(a), len(b), len(c)];
    let u = [a[0] / pix[0], a[1] / pix[0], a[2] / pix[0]];
    let v = [b[0] / pix[1], b[1] / pix[1], b[2] / pix[1]];
    let mut w = [c[0] / pix[2], c[1] / pix[2], c[2] / pix[2]];
    let qfac = if dot(cross(u, v), w) < 0.0 { -1.0 } else { 1.0 };
    if qfac < 0.0 {
        w = [-w[0], -w[1], -w[2]];
    }
    // r[row][col] with columns u, v, w.
    let r = [[u[0], v[0], w[0]], [u[1], v[1], w[1]], [u[2], v[2], w[2]]];
    let trace = r[0][0] + r[1][1] + r[2][2] + 1.0;
    let (qa, qb, qc, qd);
    if trace > 0.5 {
        qa = 0.5 * trace.sqrt();
        qb = 0.25 * (r[2][1] - r[1][2]) / qa;
        qc = 0.25 * (r[0][2] - r[2][0]) / qa;
        qd = 0.25 * (r[1][0] - r[0][1]) / qa;
    } else {
        let xd = 1.0 + r[0][0] - (r[1][1] + r[2][2]);
        let yd = 1.0 + r[1][1] - (r[0][0] + r[2][2]);
        let zd = 1.0 + r[2][2] - (r[0][0] + r[1][1]);
        if xd > 1.0 {
            qb = 0.5 * xd.sqrt();
            qc = 0.25 * (r[0][1] + r[1][0]) / qb;
            qd = 0.25 * (r[0][2] + r[2][0]) / qb;
            qa = 0.25 * (r[2][1] - r[1][2]) / qb;
        } else if yd > 1.0 {
            qc = 0.5 * yd.sqrt();
            qb = 0.25 * (r[0][1] + r[1][0]) / qc;
            qd = 0.25 * (r[1][2] + r[2][1]) / qc;
            qa = 0.25 * (r[0][2] - r[2][0]) / qc;
        } else {
            qd = 0.5 * zd.sqrt();
            qb = 0.25 * (r[0][2] + r[2][0]) / qd;
            qc = 0.25 * (r[1][2] + r[2][1]) / qd;
            qa = 0.25 * (r[1][0] - r[0][1]) / qd;
        }
    }
    let s = if qa < 0.0 { -1.0 } else { 1.0 };
    ([s * qb, s * qc, s * qd], qfac, pix)
}

/// Encodes a label volume (`dims` = columns, rows, slices; `data` in that order, columns fastest) with
/// its affine as a gzipped NIfTI-1 file. `descrip` goes into the header (at most 79 bytes kept).
pub fn encode_labels(dims: [usize; 3], data: &[u8], affine: &Affine, descrip: &str) -> Vec<u8> {
    assert_eq!(data.len(), dims[0] * dims[1] * dims[2], "volume size");
    let mut h = vec![0u8; 352];
    let put_i16 =
        |h: &mut Vec<u8>, at: usize, v: i16| h[at..at + 2].copy_from_slice(&v.to_le_bytes());
    let put_i32 =
        |h: &mut Vec<u8>, at: usize, v: i32| h[at..at + 4].copy_from_slice(&v.to_le_bytes());
    let put_f32 = |h: &mut Vec<u8>, at: usize, v: f64| {
        h[at..at + 4].copy_from_slice(&(v as f32).to_le_bytes())
    };
    put_i32(&mut h, 0, 348);
    h[38] = b'r';
    let dim = [
        3,
        dims[0] as i16,
        dims[1] as i16,
        dims[2] as i16,
        1,
        1,
        1,
        1,
    ];
    for (i, d) in dim.iter().enumerate() {
        put_i16(&mut h, 40 + 2 * i, *d);
    }
    put_i16(&mut h, 68, INTENT_LABEL);
    put_i16(&mut h, 70, DT_UINT8);
    put_i16(&mut h, 72, 8);
    let (q, qfac, pix) = quatern(affine);
    let pixdim = [qfac, pix[0], pix[1], pix[2], 1.0, 1.0, 1.0, 1.0];
    for (i, p) in pixdim.iter().enumerate() {
        put_f32(&mut h, 76 + 4 * i, *p);
    }
    put_f32(&mut h, 108, 352.0); // vox_offset
    put_f32(&mut h, 112, 1.0); // scl_slope
    put_f32(&mut h, 116, 0.0); // scl_inter
    h[123] = 2; // xyzt_units: mm
    let max = data.iter().copied().max().unwrap_or(0);
    put_f32(&mut h, 124, max as f64); // cal_max
    let d = descrip.as_bytes();
    let n = d.len().min(79);
    h[148..148 + n].copy_from_slice(&d[..n]);
    put_i16(&mut h, 252, 1); // qform_code: scanner anatomical
    put_i16(&mut h, 254, 1); // sform_code
    put_f32(&mut h, 256, q[0]);
    put_f32(&mut h, 260, q[1]);
    put_f32(&mut h, 264, q[2]);
    put_f32(&mut h, 268, affine[0][3]);
    put_f32(&mut h, 272, affine[1][3]);
    put_f32(&mut h, 276, affine[2][3]);
    for (r, row) in affine.iter().take(3).enumerate() {
        for (c, v) in row.iter().enumerate() {
            put_f32(&mut h, 280 + 16 * r + 4 * c, *v);
        }
    }
    h[344..348].copy_from_slice(b"n+1\0");
    // Bytes 348..352: no extensions.
    let mut gz = GzEncoder::new(
        Vec::with_capacity(data.len() / 8 + 1024),
        Compression::new(6),
    );
    gz.write_all(&h).expect("in-memory write");
    gz.write_all(data).expect("in-memory write");
    gz.finish().expect("in-memory write")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geom(row_dir: [f64; 3], col_dir: [f64; 3], ipp: [f64; 3]) -> SliceGeom {
        SliceGeom {
            ipp,
            row_dir,
            col_dir,
            rows: 4,
            cols: 3,
            spacing: [0.7, 0.6],
            thickness: 4.0,
        }
    }

    /// The qform rebuilt from the quaternion (NIfTI-1 `nifti_quatern_to_mat44`) equals the affine.
    #[test]
    fn quaternion_round_trips_for_both_handednesses() {
        for (r, c) in [
            ([0.0, 1.0, 0.0], [0.0, 0.0, -1.0]), // sagittal
            ([1.0, 0.0, 0.0], [0.0, 1.0, 0.0]),  // axial
            ([0.995, 0.0998, 0.0], [0.0, 0.0, -1.0]),
        ] {
            let a = geom(r, c, [10.0, -20.0, 30.0]);
            let n = a.normal();
            for sgn in [1.0, -1.0] {
                let b = SliceGeom {
                    ipp: [
                        a.ipp[0] + sgn * 4.4 * n[0],
                        a.ipp[1] + sgn * 4.4 * n[1],
                        a.ipp[2] + sgn * 4.4 * n[2],
                    ],
                    ..a.clone()
                };
                let m = stack_affine(&[a.clone(), b]);
                let ([qb, qc, qd], qfac, pix) = quatern(&m);
                let qa = (1.0 - (qb * qb + qc * qc + qd * qd)).max(0.0).sqrt();
                let rot = [
                    [
                        qa * qa + qb * qb - qc * qc - qd * qd,
                        2.0 * (qb * qc - qa * qd),
                        2.0 * (qb * qd + qa * qc),
                    ],
                    [
                        2.0 * (qb * qc + qa * qd),
                        qa * qa + qc * qc - qb * qb - qd * qd,
                        2.0 * (qc * qd - qa * qb),
                    ],
                    [
                        2.0 * (qb * qd - qa * qc),
                        2.0 * (qc * qd + qa * qb),
                        qa * qa + qd * qd - qc * qc - qb * qb,
                    ],
                ];
                let scale = [pix[0], pix[1], pix[2] * qfac];
                for i in 0..3 {
                    for j in 0..3 {
                        assert!(
                            (rot[i][j] * scale[j] - m[i][j]).abs() < 1e-9,
                            "{i},{j}: {} vs {}",
                            rot[i][j] * scale[j],
                            m[i][j]
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn header_fields_are_where_nifti1_puts_them() {
        let g = geom([0.0, 1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 2.0, 3.0]);
        let m = stack_affine(&[g]);
        let gz = encode_labels([3, 4, 1], &[7u8; 12], &m, "test");
        let mut raw = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut raw).unwrap();
        assert_eq!(raw.len(), 352 + 12);
        assert_eq!(i32::from_le_bytes(raw[0..4].try_into().unwrap()), 348);
        assert_eq!(&raw[344..348], b"n+1\0");
        assert_eq!(i16::from_le_bytes(raw[42..44].try_into().unwrap()), 3);
        assert_eq!(f32::from_le_bytes(raw[108..112].try_into().unwrap()), 352.0);
        // srow_x[3] is -x (LPS -> RAS).
        assert_eq!(f32::from_le_bytes(raw[292..296].try_into().unwrap()), -1.0);
        assert_eq!(&raw[352..], &[7u8; 12]);
    }
}

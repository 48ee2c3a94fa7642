//! Series geometry: where each pixel of a slice lies in the patient, how the slices of a series stack
//! up into volumes, and how a point found on one series maps onto another.
//!
//! Conventions (DICOM, patient LPS frame, millimetres):
//! - `ImagePositionPatient` (IPP) is the centre of the first transmitted pixel (column 0, row 0).
//! - `ImageOrientationPatient` (IOP) holds the row direction (the direction of increasing column
//!   index, `x`) then the column direction (increasing row index, `y`).
//! - `PixelSpacing` is `[spacing between rows, spacing between columns]`.
//!
//! So pixel `(x = column, y = row)` lies at `IPP + x * col_spacing * row_dir + y * row_spacing * col_dir`.
//! Pixel centres are at integer coordinates; the image covers `[-0.5, columns - 0.5] x [-0.5, rows - 0.5]`.
//!
//! A series is assembled into [`Stack`]s: slices are grouped by orientation (within a tolerance),
//! matrix size and pixel spacing, and each group is sorted by its IPP projected on the slice normal,
//! never by file name or instance number. Slice spacing is measured from those positions;
//! `SliceThickness` and `SpacingBetweenSlices` are not trusted.
//!
//! ```
//! use discus_data::geometry::{SliceGeometry, assemble_stacks, SliceInput, StackOptions};
//! // A 3-slice sagittal stack, 1 mm pixels, 4 mm apart, given in scrambled order. Its normal is
//! // row_dir x col_dir = (0,1,0) x (0,0,-1) = (-1,0,0), so the stack runs towards -x.
//! let slice = |x: f64| SliceGeometry::new([x, -100.0, 50.0], [0.0, 1.0, 0.0, 0.0, 0.0, -1.0], [1.0, 1.0], 256, 256).unwrap();
//! let stacks = assemble_stacks(
//!     vec![
//!         SliceInput { instance_number: 3, geometry: slice(-8.0) },
//!         SliceInput { instance_number: 1, geometry: slice(0.0) },
//!         SliceInput { instance_number: 2, geometry: slice(-4.0) },
//!     ],
//!     &StackOptions::default(),
//! );
//! assert_eq!(stacks.len(), 1);
//! assert_eq!(stacks[0].instance_numbers(), vec![1, 2, 3]);
//! assert!((stacks[0].slice_spacing.unwrap() - 4.0).abs() < 1e-9);
//! // Pixel (10, 20) of the middle slice, in patient mm and back.
//! let p = stacks[0].voxel_to_patient([10.0, 20.0, 1.0]);
//! assert!((p[0] + 4.0).abs() < 1e-9 && (p[1] + 90.0).abs() < 1e-9 && (p[2] - 30.0).abs() < 1e-9);
//! let v = stacks[0].patient_to_voxel(p);
//! assert!((v[0] - 10.0).abs() < 1e-9 && (v[1] - 20.0).abs() < 1e-9 && (v[2] - 1.0).abs() < 1e-9);
//! ```

use crate::header::InstanceHeader;
use serde::{Deserialize, Serialize};

/// A point or direction in the patient frame, in millimetres.
pub type Vec3 = [f64; 3];

/// Why a slice's geometry could not be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GeometryError {
    /// A required attribute is absent (its keyword is named, e.g. `ImagePositionPatient`).
    #[error("missing {0}")]
    Missing(&'static str),
    /// An attribute holds a NaN or infinite value.
    #[error("{field} is not finite: {values:?}")]
    NotFinite {
        /// The attribute's keyword.
        field: &'static str,
        /// The values it holds.
        values: Vec<f64>,
    },
    /// ImageOrientationPatient (0020,0037) holds a zero direction or two parallel ones.
    #[error("ImageOrientationPatient {0:?} does not hold two non-zero, non-parallel directions")]
    DegenerateOrientation([f64; 6]),
    /// PixelSpacing (0028,0030) is not two positive numbers.
    #[error("PixelSpacing {0:?} must be two positive numbers")]
    BadSpacing([f64; 2]),
    /// Rows or Columns is zero.
    #[error("image size {rows}x{columns} is empty")]
    EmptyImage {
        /// Rows (0028,0010).
        rows: u32,
        /// Columns (0028,0011).
        columns: u32,
    },
}

/// The dot product `a . b`.
pub fn dot(a: Vec3, b: Vec3) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}
/// The cross product `a x b`.
pub fn cross(a: Vec3, b: Vec3) -> Vec3 {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}
fn add(a: Vec3, b: Vec3) -> Vec3 {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}
fn sub(a: Vec3, b: Vec3) -> Vec3 {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}
fn scale(a: Vec3, s: f64) -> Vec3 {
    [a[0] * s, a[1] * s, a[2] * s]
}
fn norm(a: Vec3) -> f64 {
    dot(a, a).sqrt()
}
fn unit(a: Vec3) -> Option<Vec3> {
    let n = norm(a);
    (n > 1e-6 && n.is_finite()).then(|| scale(a, 1.0 / n))
}

/// The plane of one slice: position, orientation, pixel spacing and matrix size.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SliceGeometry {
    /// ImagePositionPatient: the centre of pixel (0, 0), mm.
    pub position: Vec3,
    /// Unit direction of increasing column index (`x`): IOP[0..3], normalised.
    pub row_dir: Vec3,
    /// Unit direction of increasing row index (`y`): IOP[3..6], made orthogonal to `row_dir` and normalised.
    pub col_dir: Vec3,
    /// `[spacing between rows (along col_dir), spacing between columns (along row_dir)]`, mm.
    pub pixel_spacing: [f64; 2],
    /// Rows (0028,0010): the image height in pixels.
    pub rows: u32,
    /// Columns (0028,0011): the image width in pixels.
    pub columns: u32,
}

/// Where a patient point falls relative to one slice.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PlanePoint {
    /// Column, in pixels (fractional).
    pub x: f64,
    /// Row, in pixels (fractional).
    pub y: f64,
    /// Signed distance from the slice plane along its normal (`row_dir x col_dir`), mm.
    pub distance_mm: f64,
}

impl SliceGeometry {
    /// Builds a slice geometry, normalising the direction cosines (and making the column direction
    /// exactly orthogonal to the row direction, as scanners round them to a few decimals).
    pub fn new(
        position: Vec3,
        orientation: [f64; 6],
        pixel_spacing: [f64; 2],
        rows: u32,
        columns: u32,
    ) -> Result<Self, GeometryError> {
        if position.iter().any(|v| !v.is_finite()) {
            return Err(GeometryError::NotFinite {
                field: "ImagePositionPatient",
                values: position.to_vec(),
            });
        }
        if orientation.iter().any(|v| !v.is_finite()) {
            return Err(GeometryError::NotFinite {
                field: "ImageOrientationPatient",
                values: orientation.to_vec(),
            });
        }
        if !(pixel_spacing[0] > 0.0
            && pixel_spacing[1] > 0.0
            && pixel_spacing.iter().all(|v| v.is_finite()))
        {
            return Err(GeometryError::BadSpacing(pixel_spacing));
        }
        if rows == 0 || columns == 0 {
            return Err(GeometryError::EmptyImage { rows, columns });
        }
        let bad = || GeometryError::DegenerateOrientation(orientation);
        let r = unit([orientation[0], orientation[1], orientation[2]]).ok_or_else(bad)?;
        let c = [orientation[3], orientation[4], orientation[5]];
        // Gram-Schmidt: remove the row component from the column direction.
        let c = unit(sub(c, scale(r, dot(r, c)))).ok_or_else(bad)?;
        // Refuse directions that were far from orthogonal (more than ~6 degrees off): not a rounding issue.
        let raw_c = unit([orientation[3], orientation[4], orientation[5]]).ok_or_else(bad)?;
        if dot(r, raw_c).abs() > 0.1 {
            return Err(bad());
        }
        Ok(SliceGeometry {
            position,
            row_dir: r,
            col_dir: c,
            pixel_spacing,
            rows,
            columns,
        })
    }

    /// Reads the geometry from a header (IPP, IOP, PixelSpacing, Rows, Columns).
    pub fn from_header(h: &InstanceHeader) -> Result<Self, GeometryError> {
        SliceGeometry::new(
            h.image_position_patient
                .ok_or(GeometryError::Missing("ImagePositionPatient"))?,
            h.image_orientation_patient
                .ok_or(GeometryError::Missing("ImageOrientationPatient"))?,
            h.pixel_spacing
                .ok_or(GeometryError::Missing("PixelSpacing"))?,
            u32::from(h.rows),
            u32::from(h.columns),
        )
    }

    /// Unit normal of the slice plane: `row_dir x col_dir`.
    pub fn normal(&self) -> Vec3 {
        cross(self.row_dir, self.col_dir)
    }

    /// Position of the slice along its own normal (IPP projected on the normal), mm.
    pub fn position_along_normal(&self) -> f64 {
        dot(self.position, self.normal())
    }

    /// Patient position (mm) of pixel `(x = column, y = row)`; fractional coordinates allowed.
    pub fn pixel_to_patient(&self, x: f64, y: f64) -> Vec3 {
        add(
            self.position,
            add(
                scale(self.row_dir, x * self.pixel_spacing[1]),
                scale(self.col_dir, y * self.pixel_spacing[0]),
            ),
        )
    }

    /// The pixel coordinates of the orthogonal projection of `p` onto the slice plane, and the signed
    /// distance of `p` from the plane.
    pub fn patient_to_pixel(&self, p: Vec3) -> PlanePoint {
        let d = sub(p, self.position);
        PlanePoint {
            x: dot(d, self.row_dir) / self.pixel_spacing[1],
            y: dot(d, self.col_dir) / self.pixel_spacing[0],
            distance_mm: dot(d, self.normal()),
        }
    }

    /// Whether pixel coordinates lie on the image: `[-0.5, columns - 0.5] x [-0.5, rows - 0.5]`.
    pub fn contains_pixel(&self, x: f64, y: f64) -> bool {
        x >= -0.5 && x <= self.columns as f64 - 0.5 && y >= -0.5 && y <= self.rows as f64 - 0.5
    }

    /// Angle between the two slices' normals, radians in `[0, pi/2]` (parallel planes give 0
    /// whichever way their normals point).
    pub fn normal_angle(&self, other: &SliceGeometry) -> f64 {
        dot(self.normal(), other.normal()).abs().min(1.0).acos()
    }

    /// The slice's plane orientation in words: the patient axis closest to its normal.
    pub fn plane(&self) -> Plane {
        Plane::of_normal(self.normal())
    }
}

/// The anatomical plane closest to a slice (by its normal's largest component).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Plane {
    /// Normal mostly left-right (x).
    Sagittal,
    /// Normal mostly anterior-posterior (y).
    Coronal,
    /// Normal mostly head-foot (z).
    Axial,
}

impl Plane {
    /// The plane of a slice whose normal is `n`: the patient axis of its largest component.
    pub fn of_normal(n: Vec3) -> Plane {
        let a = n.map(f64::abs);
        if a[0] >= a[1] && a[0] >= a[2] {
            Plane::Sagittal
        } else if a[1] >= a[2] {
            Plane::Coronal
        } else {
            Plane::Axial
        }
    }
    /// `"sagittal"`, `"coronal"` or `"axial"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Plane::Sagittal => "sagittal",
            Plane::Coronal => "coronal",
            Plane::Axial => "axial",
        }
    }
}

/// One slice handed to [`assemble_stacks`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SliceInput {
    /// InstanceNumber (0020,0013) of the slice.
    pub instance_number: i64,
    /// The slice's geometry.
    pub geometry: SliceGeometry,
}

/// How slices are grouped into stacks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StackOptions {
    /// Largest angle between the row (and the column) directions of slices in one stack, radians.
    pub orientation_tolerance_rad: f64,
    /// Largest relative difference of pixel spacing in one stack.
    pub spacing_tolerance: f64,
}

impl Default for StackOptions {
    fn default() -> Self {
        StackOptions {
            // 0.5 degree: scanner rounding of IOP is ~1e-5; axial blocks angled per level differ by degrees.
            orientation_tolerance_rad: 0.5f64.to_radians(),
            spacing_tolerance: 1e-3,
        }
    }
}

/// A set of parallel slices of one size, sorted by position along their common normal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stack {
    /// Sorted by `positions` (ascending), ties by instance number.
    pub slices: Vec<SliceInput>,
    /// Each slice's IPP projected on `normal`, mm (ascending).
    pub positions: Vec<f64>,
    /// The stack's normal (the first slice's, as given; slices are sorted along it).
    pub normal: Vec3,
    /// Rows of every slice, pixels.
    pub rows: u32,
    /// Columns of every slice, pixels.
    pub columns: u32,
    /// Median distance between consecutive slice positions, mm (`None` for a single slice).
    pub slice_spacing: Option<f64>,
    /// Whether every consecutive distance is within 1% (and 0.01 mm) of the median.
    pub uniform_spacing: bool,
    /// Number of pairs of slices at the same position (within 0.001 mm).
    pub duplicate_positions: usize,
}

impl Stack {
    fn from_slices(mut slices: Vec<SliceInput>) -> Stack {
        let normal = slices[0].geometry.normal();
        slices.sort_by(|a, b| {
            dot(a.geometry.position, normal)
                .total_cmp(&dot(b.geometry.position, normal))
                .then(a.instance_number.cmp(&b.instance_number))
        });
        let positions: Vec<f64> = slices
            .iter()
            .map(|s| dot(s.geometry.position, normal))
            .collect();
        let diffs: Vec<f64> = positions.windows(2).map(|w| w[1] - w[0]).collect();
        let duplicate_positions = diffs.iter().filter(|d| **d < 1e-3).count();
        let slice_spacing = (!diffs.is_empty()).then(|| median(&diffs));
        let uniform_spacing = match slice_spacing {
            None => true,
            Some(m) => diffs
                .iter()
                .all(|d| (d - m).abs() <= (0.01 * m.abs()).max(0.01)),
        };
        let (rows, columns) = (slices[0].geometry.rows, slices[0].geometry.columns);
        Stack {
            slices,
            positions,
            normal,
            rows,
            columns,
            slice_spacing,
            uniform_spacing,
            duplicate_positions,
        }
    }

    /// Number of slices in the stack.
    pub fn len(&self) -> usize {
        self.slices.len()
    }
    /// Whether the stack has no slice.
    pub fn is_empty(&self) -> bool {
        self.slices.is_empty()
    }

    /// Instance numbers in stack order (along the normal).
    pub fn instance_numbers(&self) -> Vec<i64> {
        self.slices.iter().map(|s| s.instance_number).collect()
    }

    /// Index in this stack of the slice with this instance number.
    pub fn find_instance(&self, instance_number: i64) -> Option<usize> {
        self.slices
            .iter()
            .position(|s| s.instance_number == instance_number)
    }

    /// The plane of the stack (from its normal).
    pub fn plane(&self) -> Plane {
        Plane::of_normal(self.normal)
    }

    /// The first slice's geometry, whose orientation and spacing the volume transforms use.
    pub fn reference(&self) -> &SliceGeometry {
        &self.slices[0].geometry
    }

    /// The (interpolated) IPP at fractional slice index `k`; extrapolated beyond the ends with the
    /// end slices' spacing (or along the normal by `slice_spacing` for one slice).
    fn origin_at(&self, k: f64) -> Vec3 {
        let n = self.slices.len();
        if n == 1 {
            let s = self.slice_spacing.unwrap_or(1.0);
            return add(self.slices[0].geometry.position, scale(self.normal, k * s));
        }
        let i = (k.floor().max(0.0) as usize).min(n - 2);
        let t = k - i as f64;
        let a = self.slices[i].geometry.position;
        let b = self.slices[i + 1].geometry.position;
        add(a, scale(sub(b, a), t))
    }

    /// Patient position (mm) of voxel `[x = column, y = row, k = slice index in stack order]`;
    /// `k` may be fractional (linear between neighbouring slices' positions).
    pub fn voxel_to_patient(&self, v: [f64; 3]) -> Vec3 {
        let r = self.reference();
        add(
            self.origin_at(v[2]),
            add(
                scale(r.row_dir, v[0] * r.pixel_spacing[1]),
                scale(r.col_dir, v[1] * r.pixel_spacing[0]),
            ),
        )
    }

    /// Fractional slice index of a position along the normal (inverse of the piecewise-linear slice
    /// positions; extrapolated beyond the ends).
    pub fn fractional_index(&self, along_normal: f64) -> f64 {
        let n = self.positions.len();
        if n == 1 {
            let s = self.slice_spacing.unwrap_or(1.0);
            return (along_normal - self.positions[0]) / s;
        }
        // The segment [i, i+1] containing the position (clamped to the end segments).
        let mut i = self.positions.partition_point(|&p| p <= along_normal);
        i = i.saturating_sub(1).min(n - 2);
        // Skip zero-length segments (duplicate positions).
        let (mut lo, mut hi) = (i, i + 1);
        while self.positions[hi] - self.positions[lo] < 1e-9 {
            if hi + 1 < n {
                hi += 1;
            } else if lo > 0 {
                lo -= 1;
            } else {
                return lo as f64;
            }
        }
        lo as f64
            + (hi - lo) as f64 * (along_normal - self.positions[lo])
                / (self.positions[hi] - self.positions[lo])
    }

    /// Voxel coordinates `[x, y, k]` (fractional) of a patient point: the inverse of
    /// [`Stack::voxel_to_patient`].
    pub fn patient_to_voxel(&self, p: Vec3) -> [f64; 3] {
        let k = self.fractional_index(dot(p, self.normal));
        let r = self.reference();
        let d = sub(p, self.origin_at(k));
        [
            dot(d, r.row_dir) / r.pixel_spacing[1],
            dot(d, r.col_dir) / r.pixel_spacing[0],
            k,
        ]
    }

    /// Patient position of pixel `(x, y)` on the slice at `index` (its own geometry).
    pub fn pixel_to_patient(&self, index: usize, x: f64, y: f64) -> Vec3 {
        self.slices[index].geometry.pixel_to_patient(x, y)
    }
}

fn median(v: &[f64]) -> f64 {
    discus_core::stats::median(v).unwrap_or(f64::NAN)
}

fn same_stack(a: &SliceGeometry, b: &SliceGeometry, o: &StackOptions) -> bool {
    let cos_tol = o.orientation_tolerance_rad.cos();
    let close = |x: f64, y: f64| (x - y).abs() <= o.spacing_tolerance * x.abs().max(y.abs());
    a.rows == b.rows
        && a.columns == b.columns
        && dot(a.row_dir, b.row_dir) >= cos_tol
        && dot(a.col_dir, b.col_dir) >= cos_tol
        && close(a.pixel_spacing[0], b.pixel_spacing[0])
        && close(a.pixel_spacing[1], b.pixel_spacing[1])
}

/// Groups slices into stacks (same orientation within tolerance, same matrix size and pixel spacing)
/// and sorts each along its normal. Stacks come in the order of their lowest instance number.
pub fn assemble_stacks(slices: Vec<SliceInput>, options: &StackOptions) -> Vec<Stack> {
    let mut groups: Vec<Vec<SliceInput>> = Vec::new();
    for s in slices {
        match groups
            .iter_mut()
            .find(|g| same_stack(&g[0].geometry, &s.geometry, options))
        {
            Some(g) => g.push(s),
            None => groups.push(vec![s]),
        }
    }
    let mut stacks: Vec<Stack> = groups.into_iter().map(Stack::from_slices).collect();
    stacks.sort_by_key(|s| s.slices.iter().map(|x| x.instance_number).min());
    stacks
}

/// Where a point lands on a target series: its nearest slice and the position on it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Projection {
    /// Index of the stack in the target's stacks.
    pub stack: usize,
    /// Index of the slice within that stack (stack order).
    pub slice: usize,
    /// InstanceNumber (0020,0013) of that slice.
    pub instance_number: i64,
    /// Column on that slice, pixels.
    pub x: f64,
    /// Row on that slice, pixels.
    pub y: f64,
    /// Distance from the point to that slice's plane, mm (absolute).
    pub distance_mm: f64,
    /// Whether `(x, y)` lies on the image.
    pub inside: bool,
}

/// Projects a patient point onto a series (its stacks): the slice whose plane is nearest among the
/// slices whose image contains the orthogonal projection; if none contains it, the nearest plane of all.
pub fn project_point(p: Vec3, stacks: &[Stack]) -> Option<Projection> {
    let mut best: Option<Projection> = None;
    for (si, stack) in stacks.iter().enumerate() {
        for (k, s) in stack.slices.iter().enumerate() {
            let pp = s.geometry.patient_to_pixel(p);
            let cand = Projection {
                stack: si,
                slice: k,
                instance_number: s.instance_number,
                x: pp.x,
                y: pp.y,
                distance_mm: pp.distance_mm.abs(),
                inside: s.geometry.contains_pixel(pp.x, pp.y),
            };
            let better = match &best {
                None => true,
                Some(b) => {
                    (cand.inside && !b.inside)
                        || (cand.inside == b.inside && cand.distance_mm < b.distance_mm)
                }
            };
            if better {
                best = Some(cand);
            }
        }
    }
    best
}

/// Projects pixel `(x, y)` of the slice with `instance_number` in `from` onto the series `to`
/// (for example a sagittal point onto the nearest axial slice). `None` if the instance is not in `from`
/// or `to` has no slices.
pub fn project_instance_point(
    from: &[Stack],
    instance_number: i64,
    x: f64,
    y: f64,
    to: &[Stack],
) -> Option<Projection> {
    let g = from
        .iter()
        .flat_map(|s| s.slices.iter())
        .find(|s| s.instance_number == instance_number)?
        .geometry;
    project_point(g.pixel_to_patient(x, y), to)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOL: f64 = 1e-6;

    fn close3(a: Vec3, b: Vec3) -> bool {
        (0..3).all(|i| (a[i] - b[i]).abs() < TOL)
    }

    /// Rotation about axis `u` (unit) by `theta` applied to `v` (Rodrigues), written independently of the
    /// module's helpers so the expected values do not share its code.
    fn rotate(v: Vec3, u: Vec3, theta: f64) -> Vec3 {
        let (s, c) = theta.sin_cos();
        let ux = u[1] * v[2] - u[2] * v[1];
        let uy = u[2] * v[0] - u[0] * v[2];
        let uz = u[0] * v[1] - u[1] * v[0];
        let ud = u[0] * v[0] + u[1] * v[1] + u[2] * v[2];
        [
            v[0] * c + ux * s + u[0] * ud * (1.0 - c),
            v[1] * c + uy * s + u[1] * ud * (1.0 - c),
            v[2] * c + uz * s + u[2] * ud * (1.0 - c),
        ]
    }

    #[test]
    fn axial_pixel_to_patient_by_hand() {
        // Axial slice: rows run +x (patient left), columns run +y (posterior); spacing rows 0.5, cols 0.8.
        let g = SliceGeometry::new(
            [-100.0, -120.0, 30.0],
            [1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
            [0.5, 0.8],
            300,
            200,
        )
        .unwrap();
        // x = 10 columns * 0.8 mm along +x; y = 4 rows * 0.5 mm along +y.
        assert!(close3(g.pixel_to_patient(10.0, 4.0), [-92.0, -118.0, 30.0]));
        assert!(close3(g.normal(), [0.0, 0.0, 1.0]));
        assert_eq!(g.plane(), Plane::Axial);
        let pp = g.patient_to_pixel([-92.0, -118.0, 33.5]);
        assert!((pp.x - 10.0).abs() < TOL && (pp.y - 4.0).abs() < TOL);
        assert!((pp.distance_mm - 3.5).abs() < TOL);
        // Non-square matrix: 200 columns, 300 rows.
        assert!(g.contains_pixel(199.4, 299.4));
        assert!(!g.contains_pixel(200.0, 10.0));
        assert!(g.contains_pixel(10.0, 250.0));
        assert!(!g.contains_pixel(-0.6, 0.0));
    }

    fn oblique_sagittal_stack(order: &[i64]) -> (Vec<SliceInput>, Vec3, Vec3, Vec3) {
        // Sagittal base: row dir +y (anterior->posterior), col dir -z (head->foot); tilt 12 degrees about
        // an oblique axis so every coordinate is mixed.
        let axis = {
            let a: Vec3 = [0.3, 0.5, 0.8];
            let n = (a[0] * a[0] + a[1] * a[1] + a[2] * a[2]).sqrt();
            [a[0] / n, a[1] / n, a[2] / n]
        };
        let th = 12f64.to_radians();
        let r = rotate([0.0, 1.0, 0.0], axis, th);
        let c = rotate([0.0, 0.0, -1.0], axis, th);
        let n = rotate([-1.0, 0.0, 0.0], axis, th); // = r x c for the base frame, rotated
        let origin: Vec3 = [-20.0, -150.0, 120.0];
        let slices = order
            .iter()
            .map(|&i| {
                // Slice i sits (i - 1) * 3.3 mm along the normal.
                let d = (i - 1) as f64 * 3.3;
                let ipp = [
                    origin[0] + n[0] * d,
                    origin[1] + n[1] * d,
                    origin[2] + n[2] * d,
                ];
                SliceInput {
                    instance_number: i,
                    geometry: SliceGeometry::new(
                        ipp,
                        [r[0], r[1], r[2], c[0], c[1], c[2]],
                        [0.6875, 0.7],
                        448,
                        384,
                    )
                    .unwrap(),
                }
            })
            .collect();
        (slices, r, c, n)
    }

    #[test]
    fn oblique_stack_sorts_by_position_and_transforms() {
        // File order scrambled, instance numbers offset (a real quirk): 101..=108.
        let order = [105, 101, 108, 103, 102, 107, 104, 106];
        let (slices, r, c, n) = oblique_sagittal_stack(&order.map(|i| i - 100));
        let slices: Vec<SliceInput> = slices
            .into_iter()
            .map(|mut s| {
                s.instance_number += 100;
                s
            })
            .collect();
        let stacks = assemble_stacks(slices, &StackOptions::default());
        assert_eq!(stacks.len(), 1);
        let st = &stacks[0];
        assert_eq!(st.instance_numbers(), (101..=108).collect::<Vec<_>>());
        assert!((st.slice_spacing.unwrap() - 3.3).abs() < TOL);
        assert!(st.uniform_spacing);
        assert!(close3(st.normal, n));
        assert_eq!(st.plane(), Plane::Sagittal);

        // Voxel (x=37.25, y=100.5, k=2.4): origin + 2.4*3.3 n + 37.25*0.7 r + 100.5*0.6875 c.
        let v = [37.25, 100.5, 2.4];
        let o: Vec3 = [-20.0, -150.0, 120.0];
        let expect: Vec3 = std::array::from_fn(|i| {
            o[i] + 2.4 * 3.3 * n[i] + 37.25 * 0.7 * r[i] + 100.5 * 0.6875 * c[i]
        });
        let p = st.voxel_to_patient(v);
        assert!(close3(p, expect), "{p:?} vs {expect:?}");
        let back = st.patient_to_voxel(p);
        assert!(close3(back, v), "{back:?}");

        // Pixel on slice index 5 (instance 106) and back.
        let p = st.pixel_to_patient(5, 12.0, 400.0);
        let expect: Vec3 = std::array::from_fn(|i| {
            o[i] + 5.0 * 3.3 * n[i] + 12.0 * 0.7 * r[i] + 400.0 * 0.6875 * c[i]
        });
        assert!(close3(p, expect));
        let pp = st.slices[5].geometry.patient_to_pixel(p);
        assert!(
            (pp.x - 12.0).abs() < TOL && (pp.y - 400.0).abs() < TOL && pp.distance_mm.abs() < TOL
        );

        // Extrapolation beyond the ends round-trips too.
        for v in [[-3.0, 5.0, -1.5], [500.0, -20.0, 9.25]] {
            let back = st.patient_to_voxel(st.voxel_to_patient(v));
            assert!(close3(back, v), "{back:?} vs {v:?}");
        }
    }

    #[test]
    fn nonuniform_spacing_and_duplicates() {
        let g = |z: f64| {
            SliceGeometry::new(
                [0.0, 0.0, z],
                [1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
                [1.0, 1.0],
                64,
                64,
            )
            .unwrap()
        };
        let zs = [0.0, 4.0, 8.0, 20.0, 24.0];
        let slices = zs
            .iter()
            .enumerate()
            .map(|(i, &z)| SliceInput {
                instance_number: (i as i64 + 1) * 10,
                geometry: g(z),
            })
            .collect();
        let st = &assemble_stacks(slices, &StackOptions::default())[0];
        assert!((st.slice_spacing.unwrap() - 4.0).abs() < TOL);
        assert!(!st.uniform_spacing);
        // z = 14 is half way between slices 2 (z=8) and 3 (z=20).
        let v = st.patient_to_voxel([3.0, 7.0, 14.0]);
        assert!(close3(v, [3.0, 7.0, 2.5]), "{v:?}");
        assert!(close3(
            st.voxel_to_patient([3.0, 7.0, 2.5]),
            [3.0, 7.0, 14.0]
        ));

        let dup = vec![
            SliceInput {
                instance_number: 1,
                geometry: g(0.0),
            },
            SliceInput {
                instance_number: 2,
                geometry: g(0.0),
            },
            SliceInput {
                instance_number: 3,
                geometry: g(5.0),
            },
        ];
        let st = &assemble_stacks(dup, &StackOptions::default())[0];
        assert_eq!(st.duplicate_positions, 1);
        let v = st.patient_to_voxel([0.0, 0.0, 2.5]);
        assert!(v[2].is_finite());
    }

    #[test]
    fn axial_series_with_one_stack_per_level_is_split() {
        // Three axial blocks, each tilted about the left-right axis by a different angle (one per disc
        // level), 4 slices each; plus one slice with a different matrix size in the middle block's plane.
        let mut slices = Vec::new();
        let angles = [-15.0f64, 0.0, 18.0];
        let centres = [40.0, 0.0, -40.0];
        let mut inst = 1;
        for (b, (&a, &zc)) in angles.iter().zip(&centres).enumerate() {
            let th = a.to_radians();
            let r = [1.0, 0.0, 0.0];
            let c = rotate([0.0, 1.0, 0.0], [1.0, 0.0, 0.0], th);
            let n = rotate([0.0, 0.0, 1.0], [1.0, 0.0, 0.0], th);
            for k in 0..4 {
                let d = (k as f64 - 1.5) * 4.0;
                let ipp = [-80.0 + n[0] * d, -80.0 + n[1] * d, zc + n[2] * d];
                slices.push(SliceInput {
                    instance_number: inst,
                    geometry: SliceGeometry::new(
                        ipp,
                        [r[0], r[1], r[2], c[0], c[1], c[2]],
                        [0.625, 0.625],
                        256,
                        256,
                    )
                    .unwrap(),
                });
                inst += 1;
            }
            if b == 1 {
                slices.push(SliceInput {
                    instance_number: 100,
                    geometry: SliceGeometry::new(
                        [-80.0, -80.0, 0.0],
                        [1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
                        [0.625, 0.625],
                        320,
                        256,
                    )
                    .unwrap(),
                });
            }
        }
        // Reverse so file order is the opposite of position order.
        slices.reverse();
        let stacks = assemble_stacks(slices, &StackOptions::default());
        assert_eq!(stacks.len(), 4);
        assert_eq!(stacks[0].instance_numbers(), vec![1, 2, 3, 4]);
        assert_eq!(stacks[1].instance_numbers(), vec![5, 6, 7, 8]);
        assert_eq!(stacks[2].instance_numbers(), vec![9, 10, 11, 12]);
        assert_eq!(stacks[3].instance_numbers(), vec![100]);
        assert_eq!(stacks[3].rows, 320);
        for s in &stacks[..3] {
            assert!((s.slice_spacing.unwrap() - 4.0).abs() < TOL);
            assert_eq!(s.plane(), Plane::Axial);
        }
        let angle = stacks[0].reference().normal_angle(stacks[2].reference());
        assert!((angle - 33f64.to_radians()).abs() < TOL);

        // A sagittal point at the lower block's centre: (x=-80+128*0.625, y=-80+100*0.625, z=-40).
        let sag = SliceGeometry::new(
            [-0.0, -120.0, 80.0],
            [0.0, 1.0, 0.0, 0.0, 0.0, -1.0],
            [0.5, 0.5],
            320,
            320,
        )
        .unwrap();
        let sag_stack = assemble_stacks(
            vec![SliceInput {
                instance_number: 7,
                geometry: sag,
            }],
            &StackOptions::default(),
        );
        // Point (y=-17.5, z=-41) in patient -> sagittal pixel x = (-17.5+120)/0.5 = 205, y = (80+41)/0.5 = 242.
        let target: Vec3 = [0.0, -17.5, -41.0];
        let pp = sag.patient_to_pixel(target);
        assert!((pp.x - 205.0).abs() < TOL && (pp.y - 242.0).abs() < TOL);
        let proj = project_instance_point(&sag_stack, 7, 205.0, 242.0, &stacks).unwrap();
        // Expected: in the lower block (stack 2, tilted 18 deg), the slice nearest along n.
        let th = 18f64.to_radians();
        let n = rotate([0.0, 0.0, 1.0], [1.0, 0.0, 0.0], th);
        let c = rotate([0.0, 1.0, 0.0], [1.0, 0.0, 0.0], th);
        let rel = [target[0] + 80.0, target[1] + 80.0, target[2] + 40.0];
        let along = rel[0] * n[0] + rel[1] * n[1] + rel[2] * n[2];
        // Slice offsets along n are -6, -2, 2, 6.
        let offsets = [-6.0, -2.0, 2.0, 6.0];
        let (k, off) = offsets
            .iter()
            .enumerate()
            .min_by(|a, b| (along - a.1).abs().total_cmp(&(along - b.1).abs()))
            .unwrap();
        assert_eq!(proj.stack, 2);
        assert_eq!(proj.slice, k);
        assert_eq!(proj.instance_number, 9 + k as i64);
        assert!(proj.inside);
        assert!((proj.distance_mm - (along - off).abs()).abs() < TOL);
        let ex = (rel[0] * 1.0) / 0.625;
        let ey = (rel[0] * c[0] + rel[1] * c[1] + rel[2] * c[2]) / 0.625;
        assert!(
            (proj.x - ex).abs() < TOL && (proj.y - ey).abs() < TOL,
            "{proj:?}"
        );
    }

    #[test]
    fn bad_geometry_is_refused() {
        assert!(matches!(
            SliceGeometry::new([0.0; 3], [0.0; 6], [1.0, 1.0], 4, 4),
            Err(GeometryError::DegenerateOrientation(_))
        ));
        assert!(matches!(
            SliceGeometry::new([0.0; 3], [1.0, 0.0, 0.0, 1.0, 0.0, 0.0], [1.0, 1.0], 4, 4),
            Err(GeometryError::DegenerateOrientation(_))
        ));
        assert!(matches!(
            SliceGeometry::new([0.0; 3], [1.0, 0.0, 0.0, 0.0, 1.0, 0.0], [0.0, 1.0], 4, 4),
            Err(GeometryError::BadSpacing(_))
        ));
        assert!(SliceGeometry::new(
            [f64::NAN, 0.0, 0.0],
            [1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
            [1.0, 1.0],
            4,
            4
        )
        .is_err());
        let h = InstanceHeader::default();
        assert_eq!(
            SliceGeometry::from_header(&h).unwrap_err(),
            GeometryError::Missing("ImagePositionPatient")
        );
    }
}

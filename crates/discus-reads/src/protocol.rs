//! The annotation protocol's example images (docs/annotation-protocol.md, "Examples"): one small
//! PNG per condition group and grade, cut from a LumbarDISC-layout dataset around a labelled point.
//!
//! For each condition group (spinal, foraminal, subarticular) and grade (Normal/Mild, Moderate,
//! Severe), the first labelled finding of the dataset (by study id, then label column) with that
//! grade and a point is cropped around its point (a third of the image's smaller side), windowed
//! between its 1st and 99.5th percentiles, resampled to [`THUMB`] x [`THUMB`] and marked with a red
//! cross at the point. `discus reads protocol-images` writes them to a folder; the reading room
//! serves them on its protocol page.

use discus_core::{Condition, Level};
use discus_core::{ConditionGroup, LabelColumn, SeriesId, Severity, StudyId};
use discus_data::dataset::{Dataset, DatasetError};
use discus_data::dicom::{decode_pixels, DicomError};
use serde::Serialize;
use std::path::PathBuf;

/// The side of an example image, pixels.
pub const THUMB: usize = 128;

/// Why the example images cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// The dataset's labels or points cannot be read.
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    /// A labelled study has no image folder.
    #[error("study {0} has no image folder")]
    NoStudy(StudyId),
    /// An image cannot be decoded.
    #[error(transparent)]
    Dicom(#[from] DicomError),
    /// The labelled point lies off its image.
    #[error("{}: the point lies off the image", path.display())]
    OffImage {
        /// The instance file.
        path: PathBuf,
    },
    /// The PNG encoder failed.
    #[error("encoding the example image of {file}: {source}")]
    Png {
        /// The image's file name.
        file: String,
        /// The cause.
        source: png::EncodingError,
    },
}

/// One example image and the finding it shows.
#[derive(Debug, Clone, Serialize)]
pub struct ExampleImage {
    /// File name, `<group>_<grade>.png` (e.g. `spinal_normal_mild.png`).
    pub file: String,
    /// The condition group.
    pub group: ConditionGroup,
    /// The grade shown.
    pub grade: Severity,
    /// The study.
    pub study_id: StudyId,
    /// The series the point is on.
    pub series_id: SeriesId,
    /// The instance the point is on.
    pub instance_number: u32,
    /// The finding's condition.
    pub condition: Condition,
    /// The finding's level.
    pub level: Level,
    /// The point's column (pixels).
    pub x: f64,
    /// The point's row (pixels).
    pub y: f64,
    /// The PNG file.
    #[serde(skip)]
    pub png: Vec<u8>,
}

/// The grade's part of the file name.
pub fn grade_slug(grade: Severity) -> &'static str {
    match grade {
        Severity::NormalMild => "normal_mild",
        Severity::Moderate => "moderate",
        Severity::Severe => "severe",
    }
}

/// Makes the example images of `ds` (see the module docs). A group and grade without a labelled
/// example with a point is left out (`missing` names it).
pub fn example_images(ds: &Dataset) -> Result<Examples, ProtocolError> {
    let layout = ds.layout();
    let mut labels = ds.labels()?;
    labels.sort_by_key(|r| r.study);
    let mut out = Examples::default();
    for group in ConditionGroup::ALL {
        for grade in Severity::ALL {
            let mut found = None;
            'studies: for row in &labels {
                let points = ds.points(row.study)?;
                for col in LabelColumn::all() {
                    if col.condition.group() != group || row.grades[col.index()] != Some(grade) {
                        continue;
                    }
                    if let Some(p) = points
                        .iter()
                        .find(|p| p.condition == col.condition && p.level == col.level)
                    {
                        found = Some(p.clone());
                        break 'studies;
                    }
                }
            }
            let file = format!("{}_{}.png", group.as_str(), grade_slug(grade));
            let Some(p) = found else {
                out.missing.push(file);
                continue;
            };
            let (split, _) = layout
                .find_study(p.study)
                .ok_or(ProtocolError::NoStudy(p.study))?;
            let path = layout.instance(split, p.study, p.series, i64::from(p.instance));
            let png = thumbnail(&path, p.x, p.y, &file)?;
            out.images.push(ExampleImage {
                file,
                group,
                grade,
                study_id: p.study,
                series_id: p.series,
                instance_number: p.instance,
                condition: p.condition,
                level: p.level,
                x: p.x,
                y: p.y,
                png,
            });
        }
    }
    Ok(out)
}

/// The example images made, and the ones the dataset has no example for.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Examples {
    /// The images, by group then grade.
    pub images: Vec<ExampleImage>,
    /// File names of the images that could not be made (no labelled example with a point).
    pub missing: Vec<String>,
}

fn thumbnail(path: &std::path::Path, x: f64, y: f64, file: &str) -> Result<Vec<u8>, ProtocolError> {
    let px = decode_pixels(path)?;
    let (rows, cols) = (px.rows as usize, px.columns as usize);
    let side = (rows.min(cols) / 3).max(8) as f64;
    let (x0, y0) = (x - side / 2.0, y - side / 2.0);
    let at = |r: i64, c: i64| -> Option<f64> {
        (r >= 0 && c >= 0 && (r as usize) < rows && (c as usize) < cols).then(|| {
            px.values
                .get_i64(r as usize * cols + c as usize)
                .unwrap_or(0) as f64
        })
    };
    let mut vals = vec![f64::NAN; THUMB * THUMB];
    for ty in 0..THUMB {
        for tx in 0..THUMB {
            let sx = x0 + (tx as f64 + 0.5) * side / THUMB as f64;
            let sy = y0 + (ty as f64 + 0.5) * side / THUMB as f64;
            if let Some(v) = at(sy.floor() as i64, sx.floor() as i64) {
                vals[ty * THUMB + tx] = v;
            }
        }
    }
    let mut sorted: Vec<f64> = vals.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return Err(ProtocolError::OffImage {
            path: path.to_path_buf(),
        });
    }
    let lo = sorted[sorted.len() / 100];
    let hi = sorted[sorted.len() * 995 / 1000].max(lo + 1.0);
    let mut rgb = vec![0u8; THUMB * THUMB * 3];
    for (i, v) in vals.iter().enumerate() {
        let g = if v.is_finite() {
            (((v - lo) / (hi - lo)).clamp(0.0, 1.0) * 255.0).round() as u8
        } else {
            0
        };
        rgb[i * 3..i * 3 + 3].copy_from_slice(&[g, g, g]);
    }
    // The point is the thumbnail's centre: a red cross with a gap in the middle.
    let c = (THUMB / 2) as i64;
    for d in 4..11i64 {
        for (px_, py_) in [(c + d, c), (c - d, c), (c, c + d), (c, c - d)] {
            let i = (py_ as usize * THUMB + px_ as usize) * 3;
            rgb[i..i + 3].copy_from_slice(&[230, 40, 40]);
        }
    }
    let png_err = |source| ProtocolError::Png {
        file: file.to_string(),
        source,
    };
    let mut bytes = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut bytes, THUMB as u32, THUMB as u32);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_compression(png::Compression::Best);
        let mut w = enc.write_header().map_err(png_err)?;
        w.write_image_data(&rgb).map_err(png_err)?;
    }
    Ok(bytes)
}

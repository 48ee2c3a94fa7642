//! Contact sheets: one PNG per study with its sagittal mid and lateral slices and its axial slices per
//! level, label points and grades overlaid. Works for synthetic and real studies alike: it reads the
//! DICOM files with `discus_data::dicom` and the labels from the dataset root above the study folder
//! (`<root>/train_images/<study>`), when present.
//!
//! Markers: colour = condition (legend at the bottom); shape = grade (ring = Normal/Mild, ring with a
//! cross = Moderate, filled square = Severe); the level is written beside each marker.

use discus_core::formats::LabelPoint;
use discus_core::fsio::atomic_write;
use discus_core::layout::{Layout, Split};
use discus_core::{Condition, SeriesKind, Severity};
use discus_data::dataset::Dataset;
use discus_data::dicom::decode_pixels;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Errors of contact-sheet rendering.
#[derive(Debug, thiserror::Error)]
pub enum SheetError {
    /// The study folder cannot be drawn (no readable series, bad folder name).
    #[error("{path}: {message}")]
    Study {
        /// The study folder.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// A DICOM file could not be read.
    #[error("{0}")]
    Dicom(#[from] discus_data::dicom::DicomError),
    /// A label CSV beside the study could not be read.
    #[error("{0}")]
    Format(#[from] discus_core::formats::FormatError),
    /// The PNG could not be written.
    #[error("{path}: cannot write the PNG: {message}")]
    Write {
        /// The PNG path.
        path: PathBuf,
        /// The encoder's or file system's message.
        message: String,
    },
}

/// What was drawn.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SheetSummary {
    /// The PNG written.
    pub out: PathBuf,
    /// Width of the sheet in pixels.
    pub width: u32,
    /// Height of the sheet in pixels.
    pub height: u32,
    /// Slice panels drawn.
    pub panels: usize,
    /// Label points drawn.
    pub points_drawn: usize,
    /// Files that could not be read, with the reason (`<file>: <error>`).
    pub skipped_files: Vec<String>,
}

impl SheetSummary {
    /// Writes the line `discus render` prints: the PNG, its size, panels and points.
    pub fn write_text(&self, w: &mut impl std::io::Write) -> std::io::Result<()> {
        writeln!(
            w,
            "wrote {} ({}x{}, {} panels, {} points)",
            self.out.display(),
            self.width,
            self.height,
            self.panels,
            self.points_drawn
        )
    }

    /// Writes one `skipped <file>: <error>` line per unreadable file (what `discus render` prints
    /// on stderr).
    pub fn write_skipped(&self, w: &mut impl std::io::Write) -> std::io::Result<()> {
        for f in &self.skipped_files {
            writeln!(w, "skipped {f}")?;
        }
        Ok(())
    }

    /// Writes the summary as `discus render --json` prints it (pretty JSON and a newline).
    pub fn write_json(&self, w: &mut impl std::io::Write) -> std::io::Result<()> {
        let s = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        writeln!(w, "{s}")
    }
}

struct Slice {
    instance: i64,
    path: PathBuf,
}

struct SeriesInfo {
    id: u64,
    kind: Option<SeriesKind>,
    slices: Vec<Slice>,
}

const PANEL_H: usize = 240;

/// RGB image buffer.
struct Canvas {
    w: usize,
    h: usize,
    px: Vec<[u8; 3]>,
}

impl Canvas {
    fn new(w: usize, h: usize) -> Self {
        Canvas {
            w,
            h,
            px: vec![[16, 16, 20]; w * h],
        }
    }
    fn set(&mut self, x: i64, y: i64, c: [u8; 3]) {
        if x >= 0 && y >= 0 && (x as usize) < self.w && (y as usize) < self.h {
            self.px[y as usize * self.w + x as usize] = c;
        }
    }
    fn ring(&mut self, cx: f64, cy: f64, r: f64, c: [u8; 3]) {
        let n = (r * 8.0) as usize + 8;
        for i in 0..n {
            let a = i as f64 / n as f64 * std::f64::consts::TAU;
            for dr in [-0.5, 0.0, 0.5] {
                self.set(
                    (cx + (r + dr) * a.cos()).round() as i64,
                    (cy + (r + dr) * a.sin()).round() as i64,
                    c,
                );
            }
        }
    }
    fn rect(&mut self, x0: i64, y0: i64, w: i64, h: i64, c: [u8; 3]) {
        for y in y0..y0 + h {
            for x in x0..x0 + w {
                self.set(x, y, c);
            }
        }
    }
    fn text(&mut self, x: i64, y: i64, s: &str, c: [u8; 3]) {
        let mut cx = x;
        for ch in s.chars() {
            let g = glyph(ch.to_ascii_uppercase());
            for (row, bits) in g.iter().enumerate() {
                for col in 0..3 {
                    if bits & (4 >> col) != 0 {
                        self.set(cx + col, y + row as i64, c);
                    }
                }
            }
            cx += 4;
        }
    }
}

/// A 3x5 bitmap font: five rows of three bits (MSB = left).
fn glyph(c: char) -> [u8; 5] {
    match c {
        '0' => [7, 5, 5, 5, 7],
        '1' => [2, 6, 2, 2, 7],
        '2' => [7, 1, 7, 4, 7],
        '3' => [7, 1, 3, 1, 7],
        '4' => [5, 5, 7, 1, 1],
        '5' => [7, 4, 7, 1, 7],
        '6' => [7, 4, 7, 5, 7],
        '7' => [7, 1, 1, 2, 2],
        '8' => [7, 5, 7, 5, 7],
        '9' => [7, 5, 7, 1, 7],
        'A' => [2, 5, 7, 5, 5],
        'B' => [6, 5, 6, 5, 6],
        'C' => [3, 4, 4, 4, 3],
        'D' => [6, 5, 5, 5, 6],
        'E' => [7, 4, 6, 4, 7],
        'F' => [7, 4, 6, 4, 4],
        'G' => [3, 4, 5, 5, 3],
        'H' => [5, 5, 7, 5, 5],
        'I' => [7, 2, 2, 2, 7],
        'J' => [1, 1, 1, 5, 2],
        'K' => [5, 5, 6, 5, 5],
        'L' => [4, 4, 4, 4, 7],
        'M' => [5, 7, 7, 5, 5],
        'N' => [6, 5, 5, 5, 5],
        'O' => [2, 5, 5, 5, 2],
        'P' => [6, 5, 6, 4, 4],
        'Q' => [2, 5, 5, 6, 3],
        'R' => [6, 5, 6, 5, 5],
        'S' => [3, 4, 2, 1, 6],
        'T' => [7, 2, 2, 2, 2],
        'U' => [5, 5, 5, 5, 7],
        'V' => [5, 5, 5, 5, 2],
        'W' => [5, 5, 7, 7, 5],
        'X' => [5, 5, 2, 5, 5],
        'Y' => [5, 5, 2, 2, 2],
        'Z' => [7, 1, 2, 4, 7],
        '/' => [1, 1, 2, 4, 4],
        '-' => [0, 0, 7, 0, 0],
        '.' => [0, 0, 0, 0, 2],
        ':' => [0, 2, 0, 2, 0],
        '=' => [0, 7, 0, 7, 0],
        '(' => [1, 2, 2, 2, 1],
        ')' => [4, 2, 2, 2, 4],
        _ => [0, 0, 0, 0, 0],
    }
}

/// Marker colour per condition.
pub fn condition_colour(c: Condition) -> [u8; 3] {
    match c {
        Condition::SpinalCanalStenosis => [0, 220, 255],
        Condition::LeftNeuralForaminalNarrowing => [60, 255, 60],
        Condition::RightNeuralForaminalNarrowing => [255, 60, 255],
        Condition::LeftSubarticularStenosis => [255, 230, 0],
        Condition::RightSubarticularStenosis => [255, 120, 0],
    }
}

fn short(c: Condition) -> &'static str {
    match c {
        Condition::SpinalCanalStenosis => "SCS",
        Condition::LeftNeuralForaminalNarrowing => "LNFN",
        Condition::RightNeuralForaminalNarrowing => "RNFN",
        Condition::LeftSubarticularStenosis => "LSS",
        Condition::RightSubarticularStenosis => "RSS",
    }
}

fn grade_letter(g: Option<Severity>) -> &'static str {
    match g {
        Some(Severity::NormalMild) => "N",
        Some(Severity::Moderate) => "M",
        Some(Severity::Severe) => "S",
        None => "?",
    }
}

/// Renders the contact sheet of the study folder `study_dir` to `out` (PNG).
pub fn render_contact_sheet(study_dir: &Path, out: &Path) -> Result<SheetSummary, SheetError> {
    let bad = |m: String| SheetError::Study {
        path: study_dir.to_path_buf(),
        message: m,
    };
    // The study is read through its dataset's index (built or refreshed when missing or stale):
    // series kinds, label points, grades and the slices of each series in stack order.
    let (layout, _split, study) = Layout::of_study_dir(study_dir).ok_or_else(|| {
        bad(format!(
            "not a study folder of a LumbarDISC-layout dataset (<root>/{}/<study> or {}/<study>)",
            Split::Train,
            Split::Test
        ))
    })?;
    let ds = Dataset::open(layout.root()).map_err(|e| bad(e.to_string()))?;
    let points: Vec<LabelPoint> = ds.points(study).map_err(|e| bad(e.to_string()))?;
    let mut grades = BTreeMap::new();
    if let Some(row) = ds
        .labels()
        .map_err(|e| bad(e.to_string()))?
        .into_iter()
        .find(|r| r.study == study)
    {
        for col in discus_core::LabelColumn::all() {
            grades.insert((col.condition, col.level), row.grades[col.index()]);
        }
    }
    let mut series = Vec::new();
    let mut skipped: Vec<String> = Vec::new();
    for se in ds.series(study).map_err(|e| bad(e.to_string()))? {
        if se.n_readable < se.n_files {
            skipped.push(format!(
                "series {}: {} of {} files unreadable (`discus validate` names them)",
                se.series,
                se.n_files - se.n_readable,
                se.n_files
            ));
        }
        let stacks = ds.stacks(&se).map_err(|e| bad(e.to_string()))?;
        // All stacks of the series, each in order along its normal, stacks by their first slice.
        let mut slices = Vec::new();
        for stack in &stacks {
            for sl in &stack.slices {
                let path = ds
                    .slice_file(&se, sl.instance_number)
                    .map_err(|e| bad(e.to_string()))?;
                slices.push(Slice {
                    instance: sl.instance_number,
                    path,
                });
            }
        }
        if !slices.is_empty() {
            series.push(SeriesInfo {
                id: se.series.0,
                kind: se.kind,
                slices,
            });
        }
    }
    if series.is_empty() {
        return Err(bad("no readable series folders".into()));
    }
    let order = |k: Option<SeriesKind>| k.map(|k| k as usize).unwrap_or(3);
    series.sort_by_key(|s| (order(s.kind), s.id));
    // Panels: (series, slice index, title).
    let mut panels: Vec<(usize, usize, String)> = Vec::new();
    for (si, s) in series.iter().enumerate() {
        let n = s.slices.len();
        let with_points: Vec<usize> = {
            let mut v: Vec<usize> = points
                .iter()
                .filter(|p| p.series.0 == s.id)
                .filter_map(|p| {
                    s.slices
                        .iter()
                        .position(|x| x.instance == p.instance as i64)
                })
                .collect();
            v.sort();
            v.dedup();
            v
        };
        let name = match s.kind {
            Some(SeriesKind::SagittalT1) => "SAG T1",
            Some(SeriesKind::SagittalT2Stir) => "SAG T2/STIR",
            Some(SeriesKind::AxialT2) => "AX T2",
            None => "SERIES",
        };
        let mut chosen: Vec<usize> = if s.kind == Some(SeriesKind::AxialT2) {
            if with_points.is_empty() {
                (0..5).map(|i| i * (n - 1) / 4).collect()
            } else {
                with_points
            }
        } else {
            let mut v = vec![n / 2, n / 5, n - 1 - n / 5];
            v.extend(with_points);
            v
        };
        chosen.sort();
        chosen.dedup();
        chosen.truncate(8);
        for k in chosen {
            panels.push((si, k, format!("{name} {}/{n}", k + 1)));
        }
    }
    // Load and scale panels.
    struct Panel {
        img: Vec<u8>,
        w: usize,
        h: usize,
        scale: f64,
        series: usize,
        instance: i64,
        title: String,
    }
    let mut imgs = Vec::new();
    for (si, k, title) in panels {
        let sl = &series[si].slices[k];
        let px = decode_pixels(&sl.path)?;
        let (r, c) = (px.rows as usize, px.columns as usize);
        let vals: Vec<f64> = (0..r * c)
            .map(|i| px.values.get_i64(i).unwrap_or(0) as f64)
            .collect();
        let mut sorted = vals.clone();
        sorted.sort_by(f64::total_cmp);
        let lo = sorted[sorted.len() / 100];
        let hi = sorted[sorted.len() * 995 / 1000].max(lo + 1.0);
        let scale = PANEL_H as f64 / r as f64;
        let w = ((c as f64) * scale).round() as usize;
        let mut img = vec![0u8; w * PANEL_H];
        for y in 0..PANEL_H {
            for x in 0..w {
                // Box-average the source pixels under this output pixel.
                let (y0, y1) = (
                    (y as f64 / scale) as usize,
                    (((y + 1) as f64 / scale) as usize)
                        .max((y as f64 / scale) as usize + 1)
                        .min(r),
                );
                let (x0, x1) = (
                    (x as f64 / scale) as usize,
                    (((x + 1) as f64 / scale) as usize)
                        .max((x as f64 / scale) as usize + 1)
                        .min(c),
                );
                let mut acc = 0.0;
                let mut cnt = 0.0f64;
                for yy in y0..y1 {
                    for xx in x0..x1 {
                        acc += vals[yy * c + xx];
                        cnt += 1.0;
                    }
                }
                let v = (acc / cnt.max(1.0) - lo) / (hi - lo);
                img[y * w + x] = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
            }
        }
        imgs.push(Panel {
            img,
            w,
            h: PANEL_H,
            scale,
            series: si,
            instance: sl.instance,
            title,
        });
    }
    // Layout: rows of panels up to ~1400 px wide.
    let max_w = 1400;
    let mut rows: Vec<Vec<usize>> = vec![vec![]];
    let mut cur = 0;
    for (i, p) in imgs.iter().enumerate() {
        if cur + p.w + 4 > max_w && !rows.last().unwrap().is_empty() {
            rows.push(vec![]);
            cur = 0;
        }
        rows.last_mut().unwrap().push(i);
        cur += p.w + 4;
    }
    let width = rows
        .iter()
        .map(|r| r.iter().map(|&i| imgs[i].w + 4).sum::<usize>())
        .max()
        .unwrap_or(100)
        .max(520);
    let title_h = 12;
    let legend_h = 40;
    let height = 14 + rows.len() * (PANEL_H + title_h + 4) + legend_h;
    let mut cv = Canvas::new(width, height);
    let head = format!("STUDY {study}");
    cv.text(4, 4, &head, [255, 255, 255]);
    let mut drawn = 0;
    let mut y = 14;
    for row in &rows {
        let mut x = 0;
        for &i in row {
            let p = &imgs[i];
            cv.text(x as i64 + 2, y as i64 + 3, &p.title, [200, 200, 200]);
            let oy = y + title_h;
            for yy in 0..p.h {
                for xx in 0..p.w {
                    let v = p.img[yy * p.w + xx];
                    cv.set((x + xx) as i64, (oy + yy) as i64, [v, v, v]);
                }
            }
            let sid = series[p.series].id;
            for pt in points
                .iter()
                .filter(|q| q.series.0 == sid && q.instance as i64 == p.instance)
            {
                let (px, py) = (x as f64 + pt.x * p.scale, oy as f64 + pt.y * p.scale);
                let col = condition_colour(pt.condition);
                let g = grades.get(&(pt.condition, pt.level)).copied().flatten();
                match g {
                    Some(Severity::Severe) => cv.rect(px as i64 - 3, py as i64 - 3, 7, 7, col),
                    Some(Severity::Moderate) => {
                        cv.ring(px, py, 4.0, col);
                        cv.rect(px as i64 - 3, py as i64, 7, 1, col);
                        cv.rect(px as i64, py as i64 - 3, 1, 7, col);
                    }
                    _ => cv.ring(px, py, 4.0, col),
                }
                let lv = &pt.level.words()[..2];
                cv.text(
                    px as i64 + 7,
                    py as i64 - 2,
                    &format!("{lv}{}", grade_letter(g)),
                    col,
                );
                drawn += 1;
            }
            x += p.w + 4;
        }
        y += PANEL_H + title_h + 4;
    }
    // Legend.
    let ly = (height - legend_h + 6) as i64;
    let mut lx = 4;
    for c in Condition::ALL {
        cv.rect(lx, ly, 7, 7, condition_colour(c));
        cv.text(lx + 10, ly + 1, short(c), [230, 230, 230]);
        lx += 60;
    }
    cv.text(
        4,
        ly + 14,
        "RING=NORMAL/MILD  RING+CROSS=MODERATE  SQUARE=SEVERE  (LEVEL: L1=L1/L2 ... L5=L5/S1)",
        [230, 230, 230],
    );
    let mut bytes = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut bytes, width as u32, height as u32);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_compression(png::Compression::Best);
        let mut w = enc.write_header().map_err(|e| SheetError::Write {
            path: out.to_path_buf(),
            message: e.to_string(),
        })?;
        let flat: Vec<u8> = cv.px.iter().flatten().copied().collect();
        w.write_image_data(&flat).map_err(|e| SheetError::Write {
            path: out.to_path_buf(),
            message: e.to_string(),
        })?;
    }
    atomic_write(out, &bytes).map_err(|e| SheetError::Write {
        path: out.to_path_buf(),
        message: e.to_string(),
    })?;
    Ok(SheetSummary {
        out: out.to_path_buf(),
        width: width as u32,
        height: height as u32,
        panels: imgs.len(),
        points_drawn: drawn,
        skipped_files: skipped,
    })
}

//! Heat maps: training targets and decoding, in the localiser's grid (row, column) coordinates.
//!
//! Decoding one channel: the arg-max cell, refined to sub-cell precision per axis by the vertex of
//! the parabola through the logits of the arg-max and its two neighbours (the logits of a network
//! trained with a softmax against a Gaussian target approach the Gaussian's logarithm, a parabola,
//! so this is exact for the target itself; the softmax-weighted 3 x 3 mean used before pulled
//! every point up to 0.36 cells, 1.6 mm on the canal grid, towards the cell centre). **Level order is enforced after decoding**: the five
//! decoded points are sorted from head to foot (by the patient's superior coordinate, DICOM +z) and
//! named L1/L2 .. L5/S1 in that order, i.e. counted upwards from the sacrum the lowest is L5/S1.
//! So a network that swaps two channels still yields levels in anatomical order.

/// A decoded peak in grid coordinates, with its confidence.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Peak {
    /// Row (fractional).
    pub row: f64,
    /// Column (fractional).
    pub column: f64,
    /// Softmax probability mass of the 3 x 3 neighbourhood of the arg-max (0..1).
    pub confidence: f64,
}

/// A Gaussian target for the spatial-softmax loss: `exp(-d^2 / (2 sigma^2))` around `(row, column)`,
/// normalised to sum 1 (all zeros when the point lies far outside the grid).
pub fn gaussian_target(h: usize, w: usize, row: f64, column: f64, sigma: f64) -> Vec<f32> {
    let mut t = vec![0f32; h * w];
    let mut sum = 0.0f64;
    for r in 0..h {
        for c in 0..w {
            let d2 = (r as f64 - row).powi(2) + (c as f64 - column).powi(2);
            let v = (-d2 / (2.0 * sigma * sigma)).exp();
            t[r * w + c] = v as f32;
            sum += v;
        }
    }
    if sum > 1e-12 {
        for v in &mut t {
            *v = (*v as f64 / sum) as f32;
        }
    }
    t
}

/// Decodes one channel of logits (`h * w`, row by row): the arg-max refined per axis by a parabola
/// through the logits, and the softmax mass of the 3 x 3 neighbourhood as the confidence.
pub fn decode_channel(logits: &[f32], h: usize, w: usize) -> Peak {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let p: Vec<f64> = logits.iter().map(|v| ((v - max) as f64).exp()).collect();
    let total: f64 = p.iter().sum();
    let arg = (0..h * w)
        .max_by(|a, b| logits[*a].total_cmp(&logits[*b]).then(b.cmp(a)))
        .unwrap_or(0);
    let (r0, c0) = ((arg / w) as i64, (arg % w) as i64);
    let at = |r: i64, c: i64| -> Option<f64> {
        (r >= 0 && c >= 0 && r < h as i64 && c < w as i64)
            .then(|| logits[(r as usize) * w + c as usize] as f64)
    };
    // Vertex of the parabola through (-1, a), (0, b), (1, c), within half a cell.
    let vertex = |a: Option<f64>, b: f64, c: Option<f64>| -> f64 {
        match (a, c) {
            (Some(a), Some(c)) => {
                let d = a - 2.0 * b + c;
                if d < -1e-12 {
                    (0.5 * (a - c) / d).clamp(-0.5, 0.5)
                } else {
                    0.0
                }
            }
            _ => 0.0,
        }
    };
    let b = logits[arg] as f64;
    let row = r0 as f64 + vertex(at(r0 - 1, c0), b, at(r0 + 1, c0));
    let column = c0 as f64 + vertex(at(r0, c0 - 1), b, at(r0, c0 + 1));
    let mut sw = 0.0;
    for dr in -1..=1 {
        for dc in -1..=1 {
            let (r, c) = (r0 + dr, c0 + dc);
            if r < 0 || c < 0 || r >= h as i64 || c >= w as i64 {
                continue;
            }
            sw += p[(r as usize) * w + c as usize];
        }
    }
    Peak {
        row,
        column,
        confidence: sw / total,
    }
}

/// Decodes the five level channels (`5 * h * w` logits) and returns the peaks in level order
/// L1/L2 .. L5/S1, given `superior(row, column)`: the patient's superior coordinate (mm) of a grid
/// position; peaks are sorted by it, highest first.
pub fn decode_levels(
    logits: &[f32],
    h: usize,
    w: usize,
    superior: impl Fn(f64, f64) -> f64,
) -> [Peak; 5] {
    let mut peaks: Vec<Peak> = (0..5)
        .map(|c| decode_channel(&logits[c * h * w..(c + 1) * h * w], h, w))
        .collect();
    peaks.sort_by(|a, b| superior(b.row, b.column).total_cmp(&superior(a.row, a.column)));
    [peaks[0], peaks[1], peaks[2], peaks[3], peaks[4]]
}

/// Decodes one output channel spread over `n` candidate slices (`n * h * w` logits, candidate by
/// candidate): the candidate holding the arg-max of a softmax taken over all candidates together,
/// and the peak on it (sub-cell refined as in [`decode_channel`]; its confidence is the 3 x 3
/// neighbourhood's share of the probability mass of every candidate).
pub fn decode_over_slices(logits: &[f32], n: usize, h: usize, w: usize) -> (usize, Peak) {
    let m = h * w;
    let arg = (0..n * m)
        .max_by(|a, b| logits[*a].total_cmp(&logits[*b]).then(b.cmp(a)))
        .unwrap_or(0);
    let k = arg / m;
    let mut peak = decode_channel(&logits[k * m..(k + 1) * m], h, w);
    // Rescale the confidence from this candidate's mass to all candidates' mass.
    let max = logits[arg];
    let mass = |s: &[f32]| s.iter().map(|v| ((v - max) as f64).exp()).sum::<f64>();
    let all = mass(&logits[..n * m]);
    if all > 0.0 {
        peak.confidence *= mass(&logits[k * m..(k + 1) * m]) / all;
    }
    (k, peak)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaussian_sums_to_one_and_peaks_at_the_point() {
        let t = gaussian_target(16, 20, 5.0, 7.0, 1.5);
        let s: f32 = t.iter().sum();
        assert!((s - 1.0).abs() < 1e-5);
        let arg = (0..t.len()).max_by(|a, b| t[*a].total_cmp(&t[*b])).unwrap();
        assert_eq!((arg / 20, arg % 20), (5, 7));
    }

    #[test]
    fn the_log_of_a_gaussian_target_decodes_to_its_centre() {
        // The encode -> decode round trip of the canal grid: log(target) as logits (what a
        // perfectly trained localiser outputs up to a constant) gives back the point (the
        // log-parabola is exact), anywhere inside a cell.
        for &(r, c) in &[(10.0, 20.0), (10.5, 20.5), (31.27, 5.81), (50.93, 44.4)] {
            let t = gaussian_target(64, 64, r, c, 1.5);
            let logits: Vec<f32> = t.iter().map(|v| v.max(1e-30).ln()).collect();
            let p = decode_channel(&logits, 64, 64);
            assert!(
                (p.row - r).abs() < 1e-3 && (p.column - c).abs() < 1e-3,
                "{p:?} vs {r},{c}"
            );
        }
    }

    #[test]
    fn decoding_over_slices_picks_the_slice_and_the_point() {
        // Three candidates; a sharp Gaussian on candidate 2 at (6.4, 3.0), weaker ones elsewhere.
        let (h, w) = (12, 10);
        let mut logits = Vec::new();
        for (r0, c0, a) in [(3.0, 3.0, 2.0), (8.0, 7.0, 3.0), (6.4, 3.0, 6.0)] {
            for y in 0..h {
                for x in 0..w {
                    let d2 = (y as f64 - r0).powi(2) + (x as f64 - c0).powi(2);
                    logits.push((a - d2 / 2.0) as f32);
                }
            }
        }
        let (k, p) = decode_over_slices(&logits, 3, h, w);
        assert_eq!(k, 2);
        assert!(
            (p.row - 6.4).abs() < 0.35 && (p.column - 3.0).abs() < 0.05,
            "{p:?}"
        );
        assert!(p.confidence > 0.5 && p.confidence < 1.0, "{p:?}");
    }

    #[test]
    fn decoding_recovers_known_points_in_level_order() {
        let (h, w) = (40, 30);
        // Five points top to bottom (rows increase towards the feet), given to the channels shuffled.
        let truth = [
            (4.3, 12.6),
            (11.0, 13.2),
            (18.7, 14.9),
            (26.2, 15.4),
            (33.55, 17.0),
        ];
        let order = [3, 0, 4, 1, 2];
        let mut logits = Vec::new();
        for &i in &order {
            let (r, c) = truth[i];
            for y in 0..h {
                for x in 0..w {
                    let d2 = (y as f64 - r).powi(2) + (x as f64 - c).powi(2);
                    logits.push((-d2 / (2.0 * 1.2f64.powi(2))) as f32);
                }
            }
        }
        // Superior coordinate: the grid's rows run head to foot, so superior = -row.
        let peaks = decode_levels(&logits, h, w, |r, _| -r);
        for (p, (r, c)) in peaks.iter().zip(truth) {
            assert!(
                (p.row - r).abs() < 0.35 && (p.column - c).abs() < 0.35, // the 3 x 3 centroid's bias
                "{p:?} vs {r},{c}"
            );
            assert!(p.confidence > 0.5);
        }
    }
}

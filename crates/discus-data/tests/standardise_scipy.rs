//! Crops and percentiles of `discus_data::standardise` against an independent numpy/scipy computation
//! (tests/python/crop_scipy.py: numpy solves the voxel coordinates from the raw IPP/IOP/spacing, and
//! `scipy.ndimage.map_coordinates(order=1)` samples in-plane, `mode="grid-constant"` for zero padding
//! and `mode="nearest"` for edge padding) on an oblique stack with random pixels, to 1e-4.
//!
//! Pinned: numpy 1.26.4 and scipy 1.13.1 (Python 3.11 wheels). When python3 is absent the test prints
//! why and returns; any other failure fails the test.

use discus_data::dataset::Volume;
use discus_data::geometry::{assemble_stacks, SliceGeometry, SliceInput, StackOptions};
use discus_data::standardise::{crop, percentile, CropSpec, IntensityWindow, Padding};
use std::path::Path;
use std::process::Command;

/// SplitMix64: fixed-seed values, the same on every run.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E3779B97F4A7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn python() -> Option<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new(root.join("scripts/pyvenv"))
        .args(["numpy-scipy", "numpy==1.26.4", "scipy==1.13.1"])
        .output()
        .expect("running scripts/pyvenv");
    match out.status.code() {
        Some(0) => Some(String::from_utf8(out.stdout).unwrap().trim().to_string()),
        Some(3) => {
            println!(
                "skipping the scipy cross-check: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            None
        }
        _ => panic!(
            "scripts/pyvenv failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

#[test]
fn crops_and_percentiles_match_numpy_scipy() {
    let Some(py) = python() else { return };
    let (rows, cols, n) = (37usize, 45usize, 9usize);
    // An oblique, slightly rotated sagittal-like stack: uniform 3.7 mm slice steps along the normal
    // plus an in-plane shift per slice (a sheared stack is still uniform for the linear solve).
    let iop = [0.08, 0.99, 0.05, 0.03, 0.05, -0.998];
    let spacing = [1.3, 1.1];
    let probe = SliceGeometry::new([0.0; 3], iop, spacing, rows as u32, cols as u32).unwrap();
    let normal = probe.normal();
    let origin = [-12.0, -80.5, 60.25];
    let ipp: Vec<[f64; 3]> = (0..n)
        .map(|k| {
            let t = k as f64 * 3.7;
            [
                origin[0] + normal[0] * t,
                origin[1] + normal[1] * t,
                origin[2] + normal[2] * t,
            ]
        })
        .collect();
    // Instance numbers in reverse, so the stack order is not the file order.
    let slices: Vec<SliceInput> = ipp
        .iter()
        .enumerate()
        .map(|(k, p)| SliceInput {
            instance_number: (n - k) as i64,
            geometry: SliceGeometry::new(*p, iop, spacing, rows as u32, cols as u32).unwrap(),
        })
        .collect();
    let stack = assemble_stacks(slices, &StackOptions::default()).remove(0);
    let mut rng = Rng(42);
    let data: Vec<f32> = (0..n * rows * cols)
        .map(|_| (rng.unit() * 1000.0 - 100.0) as f32)
        .collect();
    let volume = Volume {
        stack,
        rows,
        columns: cols,
        data,
    };

    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("vol.f32");
    let bytes: Vec<u8> = volume.data.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&raw, bytes).unwrap();

    // Cases: inside, near an edge (padding matters), beyond the last slice, mirrored, coarse/fine.
    let mut cases = Vec::new();
    let mut specs = Vec::new();
    let voxels = [
        [20.3, 17.8, 4.2],
        [1.2, 35.6, 0.4],
        [43.7, 2.1, 7.6],
        [22.0, 18.0, 8.3],
        [-3.5, 10.25, 1.1],
        [30.9, 30.1, 5.8],
    ];
    for (i, v) in voxels.iter().enumerate() {
        let p = volume.voxel_to_patient(*v);
        let spec = CropSpec {
            slices: [3, 5, 1][i % 3],
            slice_step: 1 + i % 2,
            rows: 11 + i,
            columns: 13 - i,
            spacing_mm: [0.9, 1.7, 2.35][i % 3],
            padding: if i % 2 == 0 {
                Padding::Zero
            } else {
                Padding::Edge
            },
        };
        let mirror = i == 3 || i == 5;
        cases.push(serde_json::json!({
            "point": p, "slices": spec.slices, "step": spec.slice_step, "rows": spec.rows,
            "columns": spec.columns, "spacing_mm": spec.spacing_mm,
            "padding": if spec.padding == Padding::Zero { "zero" } else { "edge" },
            "mirror": mirror,
        }));
        specs.push((p, spec, mirror));
    }
    let qs = [0.5, 3.0, 50.0, 99.5];
    let cfg = serde_json::json!({
        "rows": rows, "columns": cols, "ipp": ipp, "iop": iop, "spacing": spacing,
        "data": raw, "cases": cases, "percentiles": qs,
    });
    let cfg_path = dir.path().join("cfg.json");
    std::fs::write(&cfg_path, serde_json::to_vec(&cfg).unwrap()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/crop_scipy.py");
    let out = Command::new(&py)
        .arg(&script)
        .arg(&cfg_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();

    for (i, (p, spec, mirror)) in specs.iter().enumerate() {
        let got = crop(&volume, *p, spec, *mirror).unwrap();
        let w: Vec<f64> = want["crops"][i]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(got.data.len(), w.len(), "case {i}");
        let nonzero = w.iter().filter(|v| v.abs() > 1e-9).count();
        assert!(nonzero > 0, "case {i}: the reference crop is all zeros");
        for (j, (g, w)) in got.data.iter().zip(&w).enumerate() {
            assert!(
                (*g as f64 - w).abs() <= 1e-4 * w.abs().max(1.0),
                "case {i} value {j}: discus {g} scipy {w}"
            );
        }
    }
    for (i, q) in qs.iter().enumerate() {
        let w = want["percentiles"][i].as_f64().unwrap();
        let g = percentile(&volume.data, *q).unwrap() as f64;
        assert!((g - w).abs() <= 1e-4 * w.abs().max(1.0), "p{q}: {g} vs {w}");
    }
    let win = IntensityWindow::of_volume(&volume).unwrap();
    assert!((win.lo as f64 - want["percentiles"][0].as_f64().unwrap()).abs() < 1e-3);
    assert!((win.hi as f64 - want["percentiles"][3].as_f64().unwrap()).abs() < 1e-3);
}

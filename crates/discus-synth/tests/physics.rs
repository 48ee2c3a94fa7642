//! Image statistics of the MR physics: tissue mean intensities in the published order per sequence,
//! SNR per site against its profile, and the darkening of degenerated nuclei on T2 against the
//! published relaxation of Pfirrmann I and IV discs.
//!
//! Tissue regions come from the tissue model at the pixel centres, kept only where the tissue is the
//! same across the slice thickness and over a 3 x 3 neighbourhood (no partial volume, Gibbs ringing or
//! chemical shift at the pixel).

use discus_core::SeriesKind;
use discus_synth::anatomy::{Anatomy, Tissue, N_TISSUE_CODES};
use discus_synth::protocol::{sagittal_stack, series_signal, Site, SliceGeom, T2Flavour};
use discus_synth::raster::{
    for_each_pixel, render_clean, render_slice, sub_sample_offsets, tissue_codes,
};
use discus_synth::signal::Sequence;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Codes of pixels whose tissue is the same at the slice centre, at both sub-sample depths and over
/// the 3 x 3 neighbourhood; 255 elsewhere.
fn clean_codes(anat: &Anatomy, g: &SliceGeom) -> Vec<u8> {
    let (rows, cols) = (g.rows as usize, g.cols as usize);
    let mut layers = vec![tissue_codes(anat, g, 0.0)];
    for off in sub_sample_offsets(g) {
        layers.push(tissue_codes(anat, g, off));
    }
    let mut out = vec![255u8; rows * cols];
    for r in 1..rows - 1 {
        for c in 1..cols - 1 {
            let t = layers[0][r * cols + c];
            let ok = layers.iter().all(|l| {
                (r - 1..=r + 1).all(|rr| (c - 1..=c + 1).all(|cc| l[rr * cols + cc] == t))
            });
            if ok {
                out[r * cols + c] = t;
            }
        }
    }
    out
}

/// Mean of `img` per tissue code over the clean pixels accepted by `keep(pixel index)`.
fn means(codes: &[u8], img: &[f64], keep: impl Fn(usize) -> bool) -> Vec<Option<f64>> {
    let mut sum = [0f64; N_TISSUE_CODES];
    let mut n = [0usize; N_TISSUE_CODES];
    for (i, &c) in codes.iter().enumerate() {
        if c != 255 && keep(i) {
            sum[c as usize] += img[i];
            n[c as usize] += 1;
        }
    }
    (0..N_TISSUE_CODES)
        .map(|c| (n[c] >= 20).then(|| sum[c] / n[c] as f64))
        .collect()
}

fn site_with(flavour: T2Flavour, field: f64, seed: u64) -> Site {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut s = Site::make_sites(1, &mut rng).remove(0);
    s.t2_flavour = flavour;
    s.field_t = field;
    s.t2_timing = if flavour == T2Flavour::Stir {
        (4000.0, 50.0, 12)
    } else {
        (4000.0, 100.0, 16)
    };
    s.t1_timing = (550.0, 12.0, 3);
    s.p_motion = 0.0;
    s
}

type Scene = (
    Anatomy,
    Vec<SliceGeom>,
    discus_synth::raster::SeriesSignal,
    Sequence,
);

/// As [`scenes`], with the slice nearest the midline only.
fn scene(
    site: &Site,
    kind: SeriesKind,
    seed: u64,
) -> (
    Anatomy,
    SliceGeom,
    discus_synth::raster::SeriesSignal,
    Sequence,
) {
    let (a, mut gs, sig, seq) = scenes(site, kind, seed);
    (a, gs.remove(0), sig, seq)
}

/// A patient with a healthy (Pfirrmann I) L3/L4 nucleus and a Pfirrmann IV L4/L5 one, the slices of a
/// sagittal stack of a series kind at a site within 25 mm of the midline (nearest first), and the
/// series' signal model (no motion, no coil ripple or gradient: gain depends on depth only).
fn scenes(site: &Site, kind: SeriesKind, seed: u64) -> Scene {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut anat = Anatomy::sample(&mut rng);
    anat.disc_deg[5] = 0.0; // L3/L4: Pfirrmann I
    anat.disc_deg[6] = 0.75; // L4/L5: Pfirrmann IV
    let slices = sagittal_stack(&anat, site, &mut rng);
    // Distance from the patient's own midline at L3/L4 (patients lie off-centre, some rotated).
    let mid = anat.to_patient(discus_synth::anatomy::SpineCoord {
        s: anat.disc_s(5),
        x: 0.0,
        d: 0.0,
    })[0];
    let x = |a: &SliceGeom| {
        (a.pixel_to_patient(a.cols as f64 / 2.0, a.rows as f64 / 2.0)[0] - mid).abs()
    };
    let mut near: Vec<SliceGeom> = slices.iter().filter(|a| x(a) < 25.0).cloned().collect();
    near.sort_by(|a, b| x(a).total_cmp(&x(b)));
    let g = near[0].clone();
    let seq = discus_synth::protocol::sequence_for(kind, site, &mut rng);
    let mut sig = series_signal(&anat, site, kind, &seq, std::slice::from_ref(&g), &mut rng);
    sig.ghost = None;
    sig.coil_ripple = 0.0;
    sig.bias_grad = [0.0; 3];
    (anat, near, sig, seq)
}

fn within_iso(g: &SliceGeom, iso: [f64; 3], r: f64) -> impl Fn(usize) -> bool + '_ {
    move |i| {
        let (row, col) = (i / g.cols as usize, i % g.cols as usize);
        let p = g.pixel_to_patient(col as f64, row as f64);
        (0..3).map(|k| (p[k] - iso[k]).powi(2)).sum::<f64>().sqrt() < r
    }
}

#[test]
fn tissue_means_fall_in_the_published_order_for_every_sequence_and_field() {
    let nuc = |j: usize| Tissue::Nucleus(j as u8).code();
    for field in [1.5, 3.0] {
        for flavour in [T2Flavour::Plain, T2Flavour::Stir, T2Flavour::FatSat] {
            let site = site_with(flavour, field, 11);
            for kind in [SeriesKind::SagittalT1, SeriesKind::SagittalT2Stir] {
                if kind == SeriesKind::SagittalT1 && flavour != T2Flavour::Plain {
                    continue;
                }
                let (anat, gs, sig, seq) = scenes(&site, kind, 5);
                // Pool the slices within 25 mm of the midline (muscle is paramedian), pixels within
                // 100 mm of the isocentre (fat saturation fails further out, as on scanners).
                let mut sums = vec![(0.0, 0usize); N_TISSUE_CODES];
                for g in &gs {
                    let img = render_slice(&anat, g, &sig, 99)
                        .into_iter()
                        .map(|v| v as f64)
                        .collect::<Vec<_>>();
                    let codes = clean_codes(&anat, g);
                    let keep = within_iso(g, sig.iso, 100.0);
                    for (i, &c) in codes.iter().enumerate() {
                        if c != 255 && keep(i) {
                            sums[c as usize].0 += img[i];
                            sums[c as usize].1 += 1;
                        }
                    }
                }
                let m: Vec<Option<f64>> = sums
                    .iter()
                    .map(|&(s, n)| (n >= 20).then(|| s / n as f64))
                    .collect();
                let get = |c: usize| {
                    m[c].unwrap_or_else(|| {
                        panic!("{field} T {flavour:?} {kind:?}: no clean pixels of tissue code {c}")
                    })
                };
                let (csf, fat, marrow, muscle, annulus, cortex, healthy) = (
                    get(Tissue::Csf.code()),
                    get(Tissue::Fat.code()),
                    get(Tissue::Marrow.code()),
                    get(Tissue::Muscle.code()),
                    get(Tissue::Annulus.code()),
                    get(Tissue::Cortex.code()),
                    get(nuc(5)),
                );
                let what = format!(
                    "{field} T {flavour:?} {kind:?} {seq:?}: csf {csf:.0} nucleus {healthy:.0} fat {fat:.0} marrow {marrow:.0} muscle {muscle:.0} annulus {annulus:.0} cortex {cortex:.0}"
                );
                eprintln!("{what}");
                match (kind, flavour) {
                    (SeriesKind::SagittalT1, _) => {
                        // T1: fat > marrow > muscle > CSF; marrow > nucleus > CSF.
                        assert!(fat > marrow && marrow > muscle && muscle > csf, "{what}");
                        assert!(marrow > healthy && healthy > csf, "{what}");
                        assert!(cortex < csf.max(muscle), "{what}");
                    }
                    (_, T2Flavour::Plain) => {
                        // T2: CSF > healthy nucleus > fat > marrow > muscle > annulus and cortex.
                        assert!(csf > healthy && healthy > fat && fat > marrow, "{what}");
                        assert!(
                            marrow > muscle && muscle > annulus && muscle > cortex,
                            "{what}"
                        );
                    }
                    _ => {
                        // Fat suppressed (STIR, fat-saturated T2): CSF > nucleus > muscle > fat;
                        // fatty marrow dark, below muscle; annulus and cortex dark.
                        assert!(csf > healthy && healthy > muscle && muscle > fat, "{what}");
                        assert!(
                            muscle > marrow && muscle > annulus && muscle > cortex,
                            "{what}"
                        );
                        assert!(fat < 0.3 * healthy, "{what}");
                    }
                }
            }
        }
    }
}

#[test]
fn degenerated_nuclei_are_darker_on_t2_by_the_published_amount() {
    // Published: Pfirrmann I nucleus T2 210 ms, IV 51 ms [42]; T1 and PD of the normal (1165 ms, 79)
    // and desiccated (554 ms, 48) discs [41]; 1.5 T.
    let site = site_with(T2Flavour::Plain, 1.5, 3);
    let (anat, g, sig, seq) = scene(&site, SeriesKind::SagittalT2Stir, 8);
    let (tr, te) = (seq.tr(), seq.te());
    let s = |pd: f64, t1: f64, t2: f64| pd * (1.0 - (-tr / t1).exp()) * (-te / t2).exp();
    let want = s(48.0, 554.0, 51.0) / s(79.0, 1165.0, 210.0);
    let img = render_clean(&anat, &g, &sig);
    let codes = clean_codes(&anat, &g);
    let m = means(&codes, &img, |_| true);
    let healthy = m[Tissue::Nucleus(5).code()].expect("healthy nucleus pixels");
    let dark = m[Tissue::Nucleus(6).code()].expect("degenerated nucleus pixels");
    let got = dark / healthy;
    eprintln!("T2 TR {tr} TE {te}: degenerated/healthy {got:.3}, published {want:.3}");
    assert!(got < 0.5, "{got}");
    assert!(
        (got / want - 1.0).abs() < 0.12,
        "measured {got:.3}, expected {want:.3}"
    );
}

#[test]
fn measured_snr_of_every_site_is_within_15_percent_of_its_profile() {
    let mut rng = ChaCha8Rng::seed_from_u64(2024);
    let sites = Site::make_sites(6, &mut rng);
    for site in &sites {
        for kind in [SeriesKind::SagittalT1, SeriesKind::SagittalT2Stir] {
            let (anat, g, mut sig, _) = scene(site, kind, 40 + site.index as u64);
            // Keep the site's coil shading (ripple and gradient) for this one.
            let mut rng = ChaCha8Rng::seed_from_u64(1);
            sig.coil_ripple = site.coil_ripple;
            sig.coil_phase = rand::Rng::gen_range(&mut rng, 0.0..std::f64::consts::TAU);
            let a = render_slice(&anat, &g, &sig, 1);
            let b = render_slice(&anat, &g, &sig, 2);
            let codes = clean_codes(&anat, &g);
            // The reference: marrow of L3 on T1, CSF in the sac at L3 on T2/STIR.
            let (tissue, want) = match kind {
                SeriesKind::SagittalT1 => (Tissue::Marrow, site.snr_t1),
                _ => (Tissue::Csf, site.snr_t2),
            };
            // L3 for marrow; L2-L4 for CSF, whose clean pixels lie between the cauda equina roots.
            let (l3_top, l3_bot) = match kind {
                SeriesKind::SagittalT1 => (anat.s_top[5], anat.s_bot[5]),
                _ => (anat.s_top[4], anat.s_bot[6]),
            };
            let mut roi = Vec::new();
            for_each_pixel(&anat, &g, 0.0, |i, c, _, _| {
                if codes[i] == tissue.code() as u8 && c.s > l3_top && c.s < l3_bot {
                    roi.push(i);
                }
            });
            assert!(roi.len() > 30, "{}: ROI {}", site.profile, roi.len());
            let n = roi.len() as f64;
            let mean = roi.iter().map(|&i| a[i] as f64).sum::<f64>() / n;
            let d: Vec<f64> = roi.iter().map(|&i| a[i] as f64 - b[i] as f64).collect();
            let dm = d.iter().sum::<f64>() / n;
            let sd =
                (d.iter().map(|v| (v - dm).powi(2)).sum::<f64>() / (n - 1.0)).sqrt() / 2f64.sqrt();
            let snr = mean / sd;
            eprintln!(
                "{} {kind:?}: SNR measured {snr:.1}, profile {want:.1} ({} pixels)",
                site.profile,
                roi.len()
            );
            assert!(
                (snr / want - 1.0).abs() < 0.15,
                "{} {kind:?}: {snr} vs {want}",
                site.profile
            );
        }
    }
}

/// Within-tissue texture: against the same render with the texture's weights zeroed, the clean
/// pixels of a tissue vary by the texture's relaxation variation (2.5 %, unit-variance fields)
/// times the tissue's sensitivity `sqrt((d ln S/d ln T1)^2 + (d ln S/d ln T2)^2)` (checked against
/// the spin-echo derivatives in `signal`'s unit tests): on T2 about 6 % for muscle (TE/T2 ~ 2.3),
/// 1.5 % for CSF (whose T1 is close to TR). Measured within 0.6-1.3 of the prediction (the fields
/// are smoothed by the slice profile and the interpolation grid).
#[test]
fn texture_follows_each_tissues_relaxation_sensitivity() {
    use discus_synth::signal::TEXTURE_CV;
    let site = site_with(T2Flavour::Plain, 1.5, 3);
    let (anat, g, sig, _) = scene(&site, SeriesKind::SagittalT2Stir, 8);
    let mut flat = sig.clone();
    flat.table.t1_slope = [0.0; N_TISSUE_CODES];
    flat.table.t2_slope = [0.0; N_TISSUE_CODES];
    let a = render_clean(&anat, &g, &sig);
    let b = render_clean(&anat, &g, &flat);
    let codes = clean_codes(&anat, &g);
    let spread = |t: Tissue| {
        let r: Vec<f64> = codes
            .iter()
            .enumerate()
            .filter(|(i, &c)| c == t.code() as u8 && b[*i] > 0.0)
            .map(|(i, _)| a[i] / b[i])
            .collect();
        assert!(r.len() > 50, "{t:?}: {} pixels", r.len());
        let m = r.iter().sum::<f64>() / r.len() as f64;
        (r.iter().map(|v| (v - m).powi(2)).sum::<f64>() / r.len() as f64).sqrt()
    };
    let mut got = Vec::new();
    for t in [Tissue::Muscle, Tissue::Csf] {
        let c = t.code();
        let want = TEXTURE_CV
            * ((sig.table.t1_slope[c] as f64).powi(2) + (sig.table.t2_slope[c] as f64).powi(2))
                .sqrt();
        let sd = spread(t);
        eprintln!("texture SD {t:?}: {sd:.4}, predicted {want:.4}");
        assert!(sd / want > 0.6 && sd / want < 1.3, "{t:?}: {sd} vs {want}");
        got.push(sd);
    }
    assert!(got[0] > 2.5 * got[1], "muscle {} vs CSF {}", got[0], got[1]);
}

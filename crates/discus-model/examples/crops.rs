//! Crops per second for bench/crops.sh: every labelled point of every study of a dataset, a
//! 3 x 32 x 32 crop at 1.5 mm there (the graders' default crop), each stack read once for its
//! intensity window (0.5/99.5 percentiles of every voxel) and only the slices the crops need
//! normalised. Prints JSON: studies, crops, seconds, crops per second and the sum of
//! every crop value (to check that the Python pipeline cut the same crops). Studies run in
//! parallel on rayon's threads (`RAYON_NUM_THREADS=1`: one core).
//!
//! Usage: cargo run --release -p discus-model --example crops -- DATASET

use discus_core::StudyId;
use discus_data::dataset::Dataset;
use discus_data::standardise::{crop, crop_slices};
use discus_model::prep::Preprocessing;
use rayon::prelude::*;
use std::collections::btree_map::Entry;
use std::collections::BTreeMap;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let profile = args.iter().any(|a| a == "--profile");
    let root = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .ok_or("usage: crops DATASET [--profile]")?;
    let root = std::path::PathBuf::from(root);
    // Builds or refreshes the index once; the workers then open it read as it is.
    let studies = Dataset::open(&root)?.studies()?;
    if profile {
        return profile_phases(&root, &studies);
    }
    let t0 = std::time::Instant::now();
    // Studies in parallel (rayon; RAYON_NUM_THREADS=1 for one core), each worker with its own
    // connection to the index; per-study sums are added in study order (deterministic).
    let per_study = studies
        .par_iter()
        .map_init(
            || Dataset::open_indexed(&root),
            |ds, st| -> Result<(usize, f64), String> {
                let ds = ds.as_ref().map_err(|e| e.to_string())?;
                crops_of(ds, st.study).map_err(|e| e.to_string())
            },
        )
        .collect::<Result<Vec<_>, _>>()?;
    let n: usize = per_study.iter().map(|p| p.0).sum();
    let sum: f64 = per_study.iter().map(|p| p.1).sum();
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "{{\"studies\": {}, \"crops\": {n}, \"seconds\": {secs:.4}, \"crops_per_second\": {:.1}, \"sum\": {sum:.3}, \"threads\": {}}}",
        studies.len(),
        n as f64 / secs,
        rayon::current_num_threads()
    );
    Ok(())
}

/// The crops of every labelled point of one study: their number and the sum of their values.
/// Each stack a point lies on is read once for its intensity window, and only the slices the
/// crops need are normalised (`Dataset::load_normalised`).
fn crops_of(ds: &Dataset, study: StudyId) -> Result<(usize, f64), Box<dyn std::error::Error>> {
    let pre = Preprocessing::default();
    // Pass 1: every point's stack, slice and patient position; the slices each stack's crops need.
    let mut series_stacks = BTreeMap::new();
    let mut sites = Vec::new();
    let mut wanted: BTreeMap<(u64, usize), Vec<usize>> = BTreeMap::new();
    for p in ds.points(study)? {
        if let Entry::Vacant(e) = series_stacks.entry(p.series.0) {
            let Some(series) = ds.find_series(study, p.series)? else {
                continue;
            };
            let stacks = ds.stacks(&series)?;
            e.insert((series, stacks));
        }
        let (_, stacks) = &series_stacks[&p.series.0];
        let Some((si, k)) = stacks
            .iter()
            .enumerate()
            .find_map(|(i, s)| s.find_instance(p.instance as i64).map(|k| (i, k)))
        else {
            continue;
        };
        let mm = stacks[si].pixel_to_patient(k, p.x, p.y);
        wanted
            .entry((p.series.0, si))
            .or_default()
            .extend(crop_slices(&stacks[si], mm, &pre.crop));
        sites.push(((p.series.0, si), mm));
    }
    // Pass 2: each stack's window and wanted slices, then the crops in point order.
    let mut volumes = BTreeMap::new();
    for (key, ks) in &wanted {
        let (series, stacks) = &series_stacks[&key.0];
        let v = ds.load_normalised(series, &stacks[key.1], pre.percentiles, ks)?;
        volumes.insert(*key, v);
    }
    let (mut n, mut sum) = (0usize, 0f64);
    for (key, mm) in sites {
        let c = crop(&volumes[&key], mm, &pre.crop, false)?;
        sum += c.data.iter().map(|x| *x as f64).sum::<f64>();
        n += 1;
    }
    Ok((n, sum))
}

/// `--profile`: the same work on one thread, phase by phase (what `Dataset::load_normalised`
/// does for native pixel data, spelled out with the public calls it makes), printed as JSON
/// seconds per phase: index look-ups, file reads, counting every slice's stored values, the
/// window from the counts, keeping the wanted slices' stored values, cutting the crops (which
/// rescale and normalise the patches they read).
fn profile_phases(
    root: &std::path::Path,
    studies: &[discus_data::dataset::StudyRef],
) -> Result<(), Box<dyn std::error::Error>> {
    use discus_data::dicom::native_frame;
    use discus_data::standardise::StoredHistogram;
    use std::time::Instant;
    let ds = Dataset::open_indexed(root)?;
    let pre = Preprocessing::default();
    let mut t = [0f64; 6];
    let names = ["index", "read", "count", "window", "keep", "crop"];
    let (mut n, mut sum, mut files, mut normalised) = (0usize, 0f64, 0usize, 0usize);
    for st in studies {
        let at = Instant::now();
        let mut series_stacks = BTreeMap::new();
        let mut sites = Vec::new();
        let mut wanted: BTreeMap<(u64, usize), Vec<usize>> = BTreeMap::new();
        for p in ds.points(st.study)? {
            if let Entry::Vacant(e) = series_stacks.entry(p.series.0) {
                let Some(series) = ds.find_series(st.study, p.series)? else {
                    continue;
                };
                let stacks = ds.stacks(&series)?;
                e.insert((series, stacks));
            }
            let (_, stacks) = &series_stacks[&p.series.0];
            let Some((si, k)) = stacks
                .iter()
                .enumerate()
                .find_map(|(i, s)| s.find_instance(p.instance as i64).map(|k| (i, k)))
            else {
                continue;
            };
            let mm = stacks[si].pixel_to_patient(k, p.x, p.y);
            wanted
                .entry((p.series.0, si))
                .or_default()
                .extend(crop_slices(&stacks[si], mm, &pre.crop));
            sites.push(((p.series.0, si), mm));
        }
        t[0] += at.elapsed().as_secs_f64();
        let mut volumes = BTreeMap::new();
        for (key, ks) in &wanted {
            let (series, stacks) = &series_stacks[&key.0];
            let stack = &stacks[key.1];
            let mut hist: Option<StoredHistogram> = None;
            let mut kept = Vec::new();
            for (k, s) in stack.slices.iter().enumerate() {
                let at = Instant::now();
                let path = ds.slice_file(series, s.instance_number)?;
                t[0] += at.elapsed().as_secs_f64();
                let at = Instant::now();
                let bytes = std::fs::read(&path)?;
                t[1] += at.elapsed().as_secs_f64();
                let at = Instant::now();
                let f = native_frame(&bytes, &path)
                    .ok_or("--profile reads native grey-scale pixel data only")?;
                let slope = f
                    .header
                    .rescale_slope
                    .filter(|s| s.is_finite() && *s != 0.0)
                    .unwrap_or(1.0);
                let intercept = f
                    .header
                    .rescale_intercept
                    .filter(|s| s.is_finite())
                    .unwrap_or(0.0);
                f.count_into(hist.get_or_insert_with(|| StoredHistogram::new(slope, intercept)));
                t[2] += at.elapsed().as_secs_f64();
                files += 1;
                if ks.contains(&k) {
                    let at = Instant::now();
                    kept.push(f.to_owned_frame());
                    t[4] += at.elapsed().as_secs_f64();
                }
            }
            let at = Instant::now();
            let w = hist
                .ok_or("empty stack")?
                .window(pre.percentiles.0, pre.percentiles.1)?;
            t[3] += at.elapsed().as_secs_f64();
            normalised += kept.len();
            // The timed phases above are what load_normalised does (the crops then rescale and
            // normalise only the patches they read); the crops are cut from its result (not timed
            // twice), whose window must be the one counted here.
            let part = ds.load_normalised(series, stack, pre.percentiles, ks)?;
            assert_eq!(
                part.window, w,
                "the profile's window differs from load_normalised's"
            );
            assert_eq!(part.held(), kept.len());
            volumes.insert(*key, part);
        }
        let at = Instant::now();
        for (key, mm) in sites {
            let c = crop(&volumes[&key], mm, &pre.crop, false)?;
            sum += c.data.iter().map(|x| *x as f64).sum::<f64>();
            n += 1;
        }
        t[5] += at.elapsed().as_secs_f64();
    }
    let total: f64 = t.iter().sum();
    let phases: Vec<String> = names
        .iter()
        .zip(t)
        .map(|(n, s)| format!("\"{n}\": {s:.4}"))
        .collect();
    println!(
        "{{\"crops\": {n}, \"files\": {files}, \"slices_kept\": {normalised}, \"seconds\": {total:.4}, \"sum\": {sum:.3}, \"phases\": {{{}}}}}",
        phases.join(", ")
    );
    Ok(())
}

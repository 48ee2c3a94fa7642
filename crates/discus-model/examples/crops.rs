//! Crops per second for bench/crops.sh: every labelled point of every study of a dataset, its
//! series decoded and intensity-normalised once per stack, a 3 x 32 x 32 crop at 1.5 mm there (the
//! graders' default crop). Prints JSON: studies, crops, seconds, crops per second and the sum of
//! every crop value (to check that the Python pipeline cut the same crops). Studies run in
//! parallel on rayon's threads (`RAYON_NUM_THREADS=1`: one core).
//!
//! Usage: cargo run --release -p discus-model --example crops -- DATASET

use discus_core::StudyId;
use discus_data::dataset::Dataset;
use discus_data::standardise::{crop, IntensityWindow};
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
fn crops_of(ds: &Dataset, study: StudyId) -> Result<(usize, f64), Box<dyn std::error::Error>> {
    let pre = Preprocessing::default();
    let (mut n, mut sum) = (0usize, 0f64);
    let mut volumes = BTreeMap::new();
    let mut series_stacks = BTreeMap::new();
    for p in ds.points(study)? {
        if let Entry::Vacant(e) = series_stacks.entry(p.series.0) {
            let Some(series) = ds.find_series(study, p.series)? else {
                continue;
            };
            let stacks = ds.stacks(&series)?;
            e.insert((series, stacks));
        }
        let (series, stacks) = &series_stacks[&p.series.0];
        let Some((si, k)) = stacks
            .iter()
            .enumerate()
            .find_map(|(i, s)| s.find_instance(p.instance as i64).map(|k| (i, k)))
        else {
            continue;
        };
        let key = (p.series.0, si);
        if let Entry::Vacant(e) = volumes.entry(key) {
            let v = ds.load_stack(series, &stacks[si])?;
            let w = IntensityWindow::of_values(&v.data, pre.percentiles.0, pre.percentiles.1)?;
            e.insert(w.normalise_owned(v));
        }
        let v = &volumes[&key];
        let mm = stacks[si].pixel_to_patient(k, p.x, p.y);
        let c = crop(v, mm, &pre.crop, false)?;
        sum += c.data.iter().map(|x| *x as f64).sum::<f64>();
        n += 1;
    }
    Ok((n, sum))
}

/// `--profile`: the same work on one thread, phase by phase (what `Dataset::load_stack` does,
/// spelled out with the public calls it makes), printed as JSON seconds per phase.
fn profile_phases(
    root: &std::path::Path,
    studies: &[discus_data::dataset::StudyRef],
) -> Result<(), Box<dyn std::error::Error>> {
    use discus_data::dataset::{rescaled_slice, Volume};
    use discus_data::dicom::{decode_pixels_bytes, read_header_bytes};
    use std::time::Instant;
    let ds = Dataset::open_indexed(root)?;
    let pre = Preprocessing::default();
    let mut t = [0f64; 7];
    let names = [
        "index", "read", "header", "decode", "rescale", "window", "crop",
    ];
    let (mut n, mut sum, mut slices) = (0usize, 0f64, 0usize);
    let t0 = Instant::now();
    for st in studies {
        let mut volumes = BTreeMap::new();
        let mut series_stacks = BTreeMap::new();
        let at = Instant::now();
        let points = ds.points(st.study)?;
        t[0] += at.elapsed().as_secs_f64();
        for p in points {
            let at = Instant::now();
            if let Entry::Vacant(e) = series_stacks.entry(p.series.0) {
                let Some(series) = ds.find_series(st.study, p.series)? else {
                    continue;
                };
                let stacks = ds.stacks(&series)?;
                e.insert((series, stacks));
            }
            t[0] += at.elapsed().as_secs_f64();
            let (series, stacks) = &series_stacks[&p.series.0];
            let Some((si, k)) = stacks
                .iter()
                .enumerate()
                .find_map(|(i, s)| s.find_instance(p.instance as i64).map(|k| (i, k)))
            else {
                continue;
            };
            let key = (p.series.0, si);
            if let Entry::Vacant(e) = volumes.entry(key) {
                let stack = &stacks[si];
                let (rows, columns) = (stack.rows as usize, stack.columns as usize);
                let mut data = Vec::with_capacity(stack.len() * rows * columns);
                for s in &stack.slices {
                    let at = Instant::now();
                    let path = ds.slice_file(series, s.instance_number)?;
                    t[0] += at.elapsed().as_secs_f64();
                    let at = Instant::now();
                    let bytes = std::fs::read(&path)?;
                    t[1] += at.elapsed().as_secs_f64();
                    let at = Instant::now();
                    let header = read_header_bytes(&bytes, &path)?;
                    t[2] += at.elapsed().as_secs_f64();
                    let at = Instant::now();
                    let px = decode_pixels_bytes(&bytes, &path)?;
                    t[3] += at.elapsed().as_secs_f64();
                    let at = Instant::now();
                    data.extend(rescaled_slice(&path, &header, &px, rows, columns)?);
                    t[4] += at.elapsed().as_secs_f64();
                    slices += 1;
                }
                let at = Instant::now();
                let v = Volume {
                    stack: stack.clone(),
                    rows,
                    columns,
                    data,
                };
                let w = IntensityWindow::of_values(&v.data, pre.percentiles.0, pre.percentiles.1)?;
                e.insert(w.normalise_owned(v));
                t[5] += at.elapsed().as_secs_f64();
            }
            let at = Instant::now();
            let v = &volumes[&key];
            let mm = stacks[si].pixel_to_patient(k, p.x, p.y);
            let c = crop(v, mm, &pre.crop, false)?;
            sum += c.data.iter().map(|x| *x as f64).sum::<f64>();
            n += 1;
            t[6] += at.elapsed().as_secs_f64();
        }
    }
    let total = t0.elapsed().as_secs_f64();
    let phases: Vec<String> = names
        .iter()
        .zip(t)
        .map(|(n, s)| format!("\"{n}\": {s:.4}"))
        .collect();
    println!(
        "{{\"crops\": {n}, \"slices\": {slices}, \"seconds\": {total:.4}, \"sum\": {sum:.3}, \"phases\": {{{}}}}}",
        phases.join(", ")
    );
    Ok(())
}

//! Crops per second for bench/crops.sh: every labelled point of every study of a dataset, its
//! series decoded and intensity-normalised once per stack, a 3 x 32 x 32 crop at 1.5 mm there (the
//! graders' default crop). Prints JSON: studies, crops, seconds, crops per second and the sum of
//! every crop value (to check that the Python pipeline cut the same crops).
//!
//! Usage: cargo run --release -p discus-model --example crops -- DATASET

use discus_data::dataset::Dataset;
use discus_data::standardise::{crop, IntensityWindow};
use discus_model::prep::Preprocessing;
use std::collections::btree_map::Entry;
use std::collections::BTreeMap;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::env::args().nth(1).ok_or("usage: crops DATASET")?;
    let ds = Dataset::open(std::path::Path::new(&root))?;
    let pre = Preprocessing::default();
    let t0 = std::time::Instant::now();
    let (mut n, mut studies, mut sum) = (0usize, 0usize, 0f64);
    for st in ds.studies()? {
        studies += 1;
        let mut volumes = BTreeMap::new();
        let mut series_stacks = BTreeMap::new();
        for p in ds.points(st.study)? {
            if let Entry::Vacant(e) = series_stacks.entry(p.series.0) {
                let Some(series) = ds.find_series(st.study, p.series)? else {
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
                e.insert(w.normalise(&v));
            }
            let v = &volumes[&key];
            let mm = stacks[si].pixel_to_patient(k, p.x, p.y);
            let c = crop(v, mm, &pre.crop, false)?;
            sum += c.data.iter().map(|x| *x as f64).sum::<f64>();
            n += 1;
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "{{\"studies\": {studies}, \"crops\": {n}, \"seconds\": {secs:.4}, \"crops_per_second\": {:.1}, \"sum\": {sum:.3}}}",
        n as f64 / secs
    );
    Ok(())
}

//! Contact sheets of a small synthetic cohort, one PNG per study: how docs/synth_site*.png are made.
//!
//! `cargo run --release -p discus-synth --example sheets -- OUT_DIR [STUDIES] [SITES] [SEED] [SCALE]`
//! writes the cohort under `OUT_DIR/cohort` and `OUT_DIR/<study>.png`.

use discus_core::layout::{Layout, Split};
use discus_synth::cohort::{generate, SynthConfig};
use discus_synth::sheet::render_contact_sheet;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let out = PathBuf::from(
        args.first()
            .ok_or("usage: sheets OUT_DIR [STUDIES] [SITES] [SEED] [SCALE]")?,
    );
    let arg = |i: usize, d: f64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(d);
    let config = SynthConfig {
        studies: arg(1, 3.0) as usize,
        sites: arg(2, 3.0) as usize,
        seed: arg(3, 3.0) as u64,
        matrix_scale: arg(4, 1.0),
        ..SynthConfig::default()
    };
    let root = out.join("cohort");
    let start = std::time::Instant::now();
    generate(&root, &config, &|_| {})?;
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "generated {} studies in {secs:.1} s: {:.1} studies/minute on {} threads",
        config.studies,
        config.studies as f64 / secs * 60.0,
        rayon::current_num_threads()
    );
    let images = Layout::new(&root).images(Split::Train);
    let mut studies: Vec<PathBuf> = std::fs::read_dir(&images)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    studies.sort();
    for st in studies {
        let name = st.file_name().unwrap().to_string_lossy().to_string();
        let png = out.join(format!("{name}.png"));
        render_contact_sheet(&st, &png)?;
        println!("{}", png.display());
    }
    Ok(())
}

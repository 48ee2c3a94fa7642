//! `discus synth` without the CLI's model stack, for benchmarks (`bench/synth.sh`): generates a
//! cohort and prints the summary as JSON.
//!
//! Usage: `cargo run -p discus-synth --example synth -- OUT STUDIES SITES SEED [--masks] [--rescan]
//! [--matrix-scale K]`, or `... -- render STUDY_DIR OUT.png` for a contact sheet.

use discus_synth::cohort::{generate, SynthConfig};
use std::path::PathBuf;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `synth render STUDY_DIR OUT.png`: a contact sheet, as `discus render` draws it.
    if args.first().map(String::as_str) == Some("render") && args.len() == 3 {
        match discus_synth::sheet::render_contact_sheet(args[1].as_ref(), args[2].as_ref()) {
            Ok(_) => return,
            Err(e) => {
                eprintln!("render: {e}");
                std::process::exit(1);
            }
        }
    }
    if args.len() < 4 {
        eprintln!("usage: synth OUT STUDIES SITES SEED [--masks] [--rescan] [--matrix-scale K]");
        std::process::exit(2);
    }
    let num = |i: usize| -> u64 {
        args[i].parse().unwrap_or_else(|_| {
            eprintln!("not a number: {}", args[i]);
            std::process::exit(2)
        })
    };
    let scale = args
        .iter()
        .position(|a| a == "--matrix-scale")
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().expect("a matrix scale"))
        .unwrap_or(1.0);
    let config = SynthConfig {
        studies: num(1) as usize,
        sites: num(2) as usize,
        seed: num(3),
        readers: 3,
        quirk_rate: 0.0,
        matrix_scale: scale,
        rescan: args.iter().any(|a| a == "--rescan"),
        masks: args.iter().any(|a| a == "--masks"),
    };
    let t0 = std::time::Instant::now();
    match generate(&PathBuf::from(&args[0]), &config, &|_| {}) {
        Ok(s) => {
            let mut v = serde_json::to_value(&s).expect("summary serialises");
            v["seconds"] = serde_json::json!(t0.elapsed().as_secs_f64());
            println!("{}", serde_json::to_string_pretty(&v).expect("json"));
        }
        Err(e) => {
            eprintln!("synth: {e}");
            std::process::exit(1);
        }
    }
}

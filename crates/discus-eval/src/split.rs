//! Study-level K-fold splits, stratified by site and by the presence of severe disease.
//!
//! Studies are grouped into strata (site, has a Severe grade anywhere). Strata are visited in sorted
//! order; within each, studies are sorted by id, shuffled with a ChaCha8 generator seeded by `seed`,
//! and dealt to folds in turn, continuing the turn from one stratum to the next. So every stratum is
//! spread over the folds within one study, the fold sizes differ by at most one, each study is in
//! exactly one fold, and the same inputs and seed give the same split on every machine.

use crate::EvalError;
use discus_core::formats::StudyLabels;
use discus_core::fsio::atomic_write;
use discus_core::{Severity, StudyId};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::path::Path;

/// Whether any of the study's 25 grades is Severe.
pub fn has_severe(labels: &StudyLabels) -> bool {
    labels.grades.contains(&Some(Severity::Severe))
}

/// Assigns each `(study, stratum)` a fold in `0..k`; returns `(study, fold)` in input order.
pub fn stratified_folds(
    studies: &[(StudyId, String)],
    k: usize,
    seed: u64,
) -> Result<Vec<(StudyId, usize)>, EvalError> {
    if k < 2 {
        return Err(EvalError::Invalid(format!(
            "--folds must be at least 2, got {k}"
        )));
    }
    if studies.len() < k {
        return Err(EvalError::Invalid(format!(
            "{} studies cannot fill {k} folds",
            studies.len()
        )));
    }
    let mut strata: BTreeMap<&str, Vec<StudyId>> = BTreeMap::new();
    for (s, key) in studies {
        strata.entry(key.as_str()).or_default().push(*s);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut fold_of: BTreeMap<StudyId, usize> = BTreeMap::new();
    let mut turn = 0usize;
    for members in strata.values_mut() {
        members.sort();
        members.dedup();
        members.shuffle(&mut rng);
        for s in members.iter() {
            if fold_of.insert(*s, turn % k).is_some() {
                return Err(EvalError::Invalid(format!(
                    "study {s} is listed in two strata"
                )));
            }
            turn += 1;
        }
    }
    let mut seen = std::collections::HashSet::new();
    Ok(studies
        .iter()
        .filter(|(s, _)| seen.insert(*s))
        .map(|(s, _)| (*s, fold_of[s]))
        .collect())
}

/// The `study_id,fold` CSV text.
pub fn folds_csv(folds: &[(StudyId, usize)]) -> String {
    let mut s = String::from("study_id,fold\n");
    for (study, fold) in folds {
        s.push_str(&format!("{study},{fold}\n"));
    }
    s
}

/// Writes the `study_id,fold` CSV atomically.
pub fn write_folds(path: &Path, folds: &[(StudyId, usize)]) -> Result<(), EvalError> {
    atomic_write(path, folds_csv(folds).as_bytes()).map_err(|source| EvalError::Io {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cohort() -> Vec<(StudyId, String)> {
        // 3 sites of different sizes x severe or not, 157 studies
        (0..157u64)
            .map(|i| {
                let site = ["A", "B", "C"][(i % 7 % 3) as usize];
                let severe = i % 5 == 0;
                (StudyId(4_000_000_000 + i * 13), format!("{site}|{severe}"))
            })
            .collect()
    }

    #[test]
    fn each_study_once_and_strata_balanced_within_one() {
        let c = cohort();
        for k in [2, 5, 7] {
            let f = stratified_folds(&c, k, 42).unwrap();
            assert_eq!(f.len(), c.len());
            let ids: std::collections::HashSet<_> = f.iter().map(|x| x.0).collect();
            assert_eq!(ids.len(), c.len(), "a study in two folds");
            let mut per: HashMap<&str, Vec<usize>> = HashMap::new();
            let mut sizes = vec![0usize; k];
            let stratum: HashMap<StudyId, &str> = c.iter().map(|(s, k)| (*s, k.as_str())).collect();
            for (s, fold) in &f {
                assert!(*fold < k);
                per.entry(stratum[s]).or_insert_with(|| vec![0; k])[*fold] += 1;
                sizes[*fold] += 1;
            }
            for (name, counts) in per {
                let (lo, hi) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
                assert!(hi - lo <= 1, "stratum {name}: {counts:?}");
            }
            let (lo, hi) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
            assert!(hi - lo <= 1, "{sizes:?}");
        }
    }

    #[test]
    fn deterministic_for_a_seed() {
        let c = cohort();
        let a = stratified_folds(&c, 5, 1).unwrap();
        assert_eq!(a, stratified_folds(&c, 5, 1).unwrap());
        // Input order does not change the assignment.
        let mut r = c.clone();
        r.reverse();
        let b: HashMap<_, _> = stratified_folds(&r, 5, 1).unwrap().into_iter().collect();
        assert!(a.iter().all(|(s, f)| b[s] == *f));
        assert_ne!(a, stratified_folds(&c, 5, 2).unwrap());
        assert!(folds_csv(&a).starts_with("study_id,fold\n4000000000,"));
    }

    #[test]
    fn refuses_bad_k() {
        let c = cohort();
        assert!(stratified_folds(&c, 1, 0).is_err());
        assert!(stratified_folds(&c[..3], 4, 0).is_err());
    }
}

//! The contrast a series' TR, TE and TI point to.

use super::*;

/// The contrast a series' TR, TE and TI point to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Contrast {
    /// T1-weighted: short TR and short TE.
    T1,
    /// T2-weighted: long TR and long TE.
    T2,
    /// Short-tau inversion recovery: TI of 100-300 ms (fat nulled).
    Stir,
}

/// T1: short TR (< 1000 ms) and short TE (< 30 ms); STIR: an inversion time of 100-300 ms (fat
/// nulling is ~150 ms at 1.5 T, ~220-250 ms at 3 T); T2: long TR (>= 1500 ms) and long TE (>= 50 ms).
/// Anything else (proton density, T1 FLAIR with TI ~800 ms, missing values) is `None`: no claim is made.
pub fn infer_contrast(tr: Option<f64>, te: Option<f64>, ti: Option<f64>) -> Option<Contrast> {
    if let Some(ti) = ti {
        if (100.0..=300.0).contains(&ti) {
            return Some(Contrast::Stir);
        }
    }
    let (tr, te) = (tr?, te?);
    if tr < 1000.0 && te < 30.0 && ti.is_none_or(|t| t <= 0.0) {
        Some(Contrast::T1)
    } else if tr >= 1500.0 && te >= 50.0 {
        Some(Contrast::T2)
    } else {
        None
    }
}

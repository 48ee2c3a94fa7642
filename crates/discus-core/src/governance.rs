//! Dataset governance: the card that travels beside every dataset (`dataset.toml`), the licence check
//! a command makes before it exports or serves anything, and the provenance a derived artifact
//! records so the licence follows the data.
//!
//! A card says where the data came from, under which licence, which uses that licence permits, what
//! de-identification was applied, which sites contributed, and when. A command that is about to use
//! data for a purpose calls [`check_sources`] (or [`DatasetCard::check_use`]) and refuses with the
//! reason when any source forbids it. A derived artifact (an index, a report, consensus labels, a
//! model) embeds a [`Provenance`] listing the cards it came from, so the same check can be made on the
//! artifact later without the original datasets at hand.
//!
//! ```
//! use discus_core::governance::{DatasetCard, Use};
//! let card = DatasetCard::lumbardisc();
//! assert!(card.check_use(Use::Research).is_ok());
//! let refused = card.check_use(Use::Commercial).unwrap_err();
//! assert!(refused.reason.contains("commercial"));
//! // Cards round-trip through TOML.
//! let text = card.to_toml().unwrap();
//! assert_eq!(DatasetCard::from_toml(&text).unwrap(), card);
//! ```

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};

/// The card's file name inside a dataset root.
pub const CARD_FILE: &str = crate::layout::CARD_FILE;

/// A use a licence may permit or forbid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Use {
    /// Non-commercial research, including training and evaluating models for publication.
    Research,
    /// Teaching and training people.
    Education,
    /// Any use for commercial advantage: products, paid services, commercial model training.
    Commercial,
    /// Use in the care of patients (diagnostic assistance in a clinic).
    Clinical,
    /// Passing the data (or an artifact that contains it) on to third parties.
    Redistribution,
}

impl Use {
    /// Every use, in declaration order.
    pub const ALL: [Use; 5] = [
        Use::Research,
        Use::Education,
        Use::Commercial,
        Use::Clinical,
        Use::Redistribution,
    ];

    /// The spelling used in cards and on command lines.
    pub fn as_str(self) -> &'static str {
        match self {
            Use::Research => "research",
            Use::Education => "education",
            Use::Commercial => "commercial",
            Use::Clinical => "clinical",
            Use::Redistribution => "redistribution",
        }
    }
}

impl fmt::Display for Use {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Use {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Use::ALL
            .into_iter()
            .find(|u| u.as_str() == s)
            .ok_or_else(|| {
                let all: Vec<&str> = Use::ALL.iter().map(|u| u.as_str()).collect();
                format!("unknown use {s:?} (expected one of: {})", all.join(", "))
            })
    }
}

/// The licence terms of a dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Licence {
    /// Short name, e.g. "RSNA LumbarDISC competition data terms".
    pub name: String,
    /// Where the licence text can be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Uses the licence permits; anything not listed is refused.
    pub permitted_uses: Vec<Use>,
    /// Whether derived work must cite the dataset.
    #[serde(default)]
    pub citation_required: bool,
    /// The citation to give, when required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub citation: Option<String>,
}

impl Licence {
    /// The permitted uses as text for people: `"research, education"`, or `"none"`.
    pub fn permitted_uses_text(&self) -> String {
        if self.permitted_uses.is_empty() {
            return "none".to_string();
        }
        let uses: Vec<&str> = self.permitted_uses.iter().map(|u| u.as_str()).collect();
        uses.join(", ")
    }
}

/// The de-identification a dataset has been through.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deidentification {
    /// Whether the data was de-identified before it entered this dataset.
    pub applied: bool,
    /// The method as words, e.g. "DICOM PS3.15 E.1 Basic Application Level Confidentiality Profile".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Options applied, as words (e.g. "Retain Longitudinal Temporal Information Modified Dates Option").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    /// Who or what de-identified it (tool and version, or the provider).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// When (ISO 8601 date or date-time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
}

/// The card beside a dataset (`<root>/dataset.toml`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetCard {
    /// Dataset name, e.g. "LumbarDISC".
    pub name: String,
    /// Where the data came from (publisher, URL, or the contributing site's own description).
    pub source: String,
    /// When the dataset was released or assembled (ISO 8601).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    /// Contributing sites.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sites: Vec<String>,
    /// The licence the dataset is distributed under.
    pub licence: Licence,
    /// The de-identification the data has been through (default: none recorded).
    #[serde(default)]
    pub deidentification: Deidentification,
    /// Cards of the datasets this one was derived from (e.g. the raw site data behind a de-identified copy).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub derived_from: Vec<DatasetCard>,
}

/// A use that a licence does not permit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct UseRefused {
    /// The name of the dataset whose licence refuses the use.
    pub dataset: String,
    /// The use that was refused.
    pub use_: Use,
    /// Why, in words (shown as the error message).
    pub reason: String,
}

/// Failure to read or parse a card.
#[derive(Debug, thiserror::Error)]
pub enum CardError {
    /// The card could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The card file.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The card is not valid TOML or not a valid card.
    #[error("{path}: not a valid dataset card: {message}")]
    Parse {
        /// The card file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
}

/// Why a command may not go ahead with its sources.
#[derive(Debug, thiserror::Error)]
pub enum GovernanceError {
    /// The card could not be read or parsed.
    #[error(transparent)]
    Card(#[from] CardError),
    /// A licence in the lineage does not permit the use.
    #[error("refused: {0}")]
    Refused(#[from] UseRefused),
    /// The dataset has no card beside it, so the use cannot be checked.
    #[error("{path}: no dataset card ({CARD_FILE}); cannot tell whether {use_} use is permitted")]
    NoCard {
        /// The card path that was looked for.
        path: PathBuf,
        /// The use that was asked for.
        use_: Use,
    },
}

impl DatasetCard {
    /// The card for the public RSNA LumbarDISC data: non-commercial use only, citation required.
    pub fn lumbardisc() -> DatasetCard {
        DatasetCard {
            name: "LumbarDISC".into(),
            source: "RSNA 2024 Lumbar Spine Degenerative Classification (Kaggle competition data)".into(),
            date: Some("2024".into()),
            sites: Vec::new(),
            licence: Licence {
                name: "RSNA LumbarDISC data terms: non-commercial use only".into(),
                url: Some("https://www.kaggle.com/competitions/rsna-2024-lumbar-spine-degenerative-classification/rules".into()),
                permitted_uses: vec![Use::Research, Use::Education],
                citation_required: true,
                citation: Some("RSNA 2024 Lumbar Spine Degenerative Classification dataset (cite the dataset's publication when using it).".into()),
            },
            deidentification: Deidentification {
                applied: true,
                method: Some("de-identified by the data provider".into()),
                ..Deidentification::default()
            },
            derived_from: Vec::new(),
        }
    }

    /// Parses a card from TOML text (the contents of `dataset.toml`).
    pub fn from_toml(text: &str) -> Result<DatasetCard, toml::de::Error> {
        toml::from_str(text)
    }

    /// The card as pretty TOML, as written to `dataset.toml`.
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        toml::to_string_pretty(self)
    }

    /// Reads a card file.
    pub fn read(path: &Path) -> Result<DatasetCard, CardError> {
        let text = std::fs::read_to_string(path).map_err(|source| CardError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        DatasetCard::from_toml(&text).map_err(|e| CardError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    /// Writes the card atomically to `path`.
    pub fn write(&self, path: &Path) -> Result<(), CardError> {
        let text = self.to_toml().map_err(|e| CardError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        crate::fsio::atomic_write(path, text.as_bytes()).map_err(|source| CardError::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Whether this dataset (and every dataset it was derived from) may be used for `use_`.
    pub fn check_use(&self, use_: Use) -> Result<(), UseRefused> {
        if !self.licence.permitted_uses.contains(&use_) {
            let permitted = self.licence.permitted_uses_text();
            return Err(UseRefused {
                dataset: self.name.clone(),
                use_,
                reason: format!(
                    "dataset {:?} is licensed under {:?}, which does not permit {use_} use (permitted: {permitted})",
                    self.name, self.licence.name
                ),
            });
        }
        for parent in &self.derived_from {
            parent.check_use(use_).map_err(|e| UseRefused {
                reason: format!("{} (dataset {:?} derives from it)", e.reason, self.name),
                ..e
            })?;
        }
        Ok(())
    }

    /// Citations owed by anyone using this dataset (its own and its parents'), deduplicated.
    pub fn citations(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.collect_citations(&mut out);
        out
    }

    fn collect_citations(&self, out: &mut Vec<String>) {
        if self.licence.citation_required {
            let c = self
                .licence
                .citation
                .clone()
                .unwrap_or_else(|| format!("cite dataset {:?} ({})", self.name, self.source));
            if !out.contains(&c) {
                out.push(c);
            }
        }
        for p in &self.derived_from {
            p.collect_citations(out);
        }
    }
}

/// Reads `<dataset_root>/dataset.toml`: `Ok(None)` when there is no card, an error when there is one
/// that cannot be read or parsed (a broken card is never treated as "no restrictions").
pub fn load_card(dataset_root: &Path) -> Result<Option<DatasetCard>, CardError> {
    let path = dataset_root.join(CARD_FILE);
    if !path.exists() {
        return Ok(None);
    }
    DatasetCard::read(&path).map(Some)
}

/// What a derived artifact records about where it came from. Serialises to JSON for embedding in
/// `report.json`, index metadata, model files and the like.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Provenance {
    /// The tool and command that made the artifact, e.g. "discus 0.1.0 deid".
    pub made_by: String,
    /// The cards of every dataset the artifact came from (absent cards are not invented).
    pub sources: Vec<DatasetCard>,
    /// Artifacts the artifact came from, with their own provenance (lineage).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<Provenance>,
}

impl Provenance {
    /// The provenance of an artifact made by `made_by` directly from `sources` (no inputs).
    pub fn new(made_by: impl Into<String>, sources: Vec<DatasetCard>) -> Provenance {
        Provenance {
            made_by: made_by.into(),
            sources,
            inputs: Vec::new(),
        }
    }

    /// Every card in the lineage (own sources, then inputs' sources).
    pub fn all_cards(&self) -> Vec<&DatasetCard> {
        let mut out: Vec<&DatasetCard> = self.sources.iter().collect();
        for i in &self.inputs {
            out.extend(i.all_cards());
        }
        out
    }

    /// Whether the artifact may be used for `use_`: every card in its lineage must permit it.
    pub fn check_use(&self, use_: Use) -> Result<(), UseRefused> {
        for card in self.all_cards() {
            card.check_use(use_)?;
        }
        Ok(())
    }

    /// The provenance as pretty-printed JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("provenance serialises")
    }
}

/// The check a command makes before exporting or serving anything derived from `dataset_roots` for
/// `use_`: loads each root's card, refuses when any card forbids the use, and (when all permit it)
/// returns the provenance to embed in what it writes. A root without a card is refused when
/// `require_cards` is set, and otherwise recorded as having none (it contributes no card).
pub fn check_sources(
    made_by: &str,
    dataset_roots: &[&Path],
    use_: Use,
    require_cards: bool,
) -> Result<Provenance, GovernanceError> {
    let mut cards = Vec::new();
    for root in dataset_roots {
        match load_card(root)? {
            Some(card) => {
                card.check_use(use_)?;
                cards.push(card);
            }
            None if require_cards => {
                return Err(GovernanceError::NoCard {
                    path: root.to_path_buf(),
                    use_,
                })
            }
            None => {}
        }
    }
    Ok(Provenance::new(made_by, cards))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permitted_uses_read_as_a_list_or_none() {
        let mut l = Licence {
            name: "terms".into(),
            url: None,
            permitted_uses: vec![Use::Research, Use::Education],
            citation_required: false,
            citation: None,
        };
        assert_eq!(l.permitted_uses_text(), "research, education");
        l.permitted_uses.clear();
        assert_eq!(l.permitted_uses_text(), "none");
    }

    fn site_card() -> DatasetCard {
        DatasetCard {
            name: "site-a-lumbar".into(),
            source: "Hospital A PACS export".into(),
            date: Some("2026-01-02".into()),
            sites: vec!["Hospital A".into()],
            licence: Licence {
                name: "data sharing agreement A-17".into(),
                url: None,
                permitted_uses: vec![Use::Research, Use::Commercial],
                citation_required: false,
                citation: None,
            },
            deidentification: Deidentification::default(),
            derived_from: vec![],
        }
    }

    #[test]
    fn parses_a_hand_written_card() {
        let text = r#"
name = "LumbarDISC"
source = "RSNA"
sites = ["a", "b"]
[licence]
name = "non-commercial"
permitted_uses = ["research", "education"]
citation_required = true
citation = "Cite it."
[deidentification]
applied = true
options = ["Retain UIDs Option"]
"#;
        let card = DatasetCard::from_toml(text).unwrap();
        assert_eq!(card.sites, vec!["a", "b"]);
        assert_eq!(
            card.licence.permitted_uses,
            vec![Use::Research, Use::Education]
        );
        assert!(card.deidentification.applied);
        assert_eq!(card.citations(), vec!["Cite it.".to_string()]);
        assert!(card.check_use(Use::Clinical).is_err());
    }

    #[test]
    fn unknown_use_and_unknown_field_are_errors() {
        let bad_use = "name='x'\nsource='y'\n[licence]\nname='l'\npermitted_uses=['resarch']\n";
        assert!(DatasetCard::from_toml(bad_use).is_err());
        let bad_field =
            "name='x'\nsource='y'\nlicense='typo'\n[licence]\nname='l'\npermitted_uses=[]\n";
        assert!(DatasetCard::from_toml(bad_field).is_err());
    }

    #[test]
    fn lumbardisc_forbids_commercial_and_the_restriction_is_inherited() {
        let mut derived = site_card();
        derived.derived_from.push(DatasetCard::lumbardisc());
        assert!(site_card().check_use(Use::Commercial).is_ok());
        let e = derived.check_use(Use::Commercial).unwrap_err();
        assert_eq!(e.dataset, "LumbarDISC");
        assert!(
            e.reason.contains("does not permit commercial use"),
            "{}",
            e.reason
        );
        assert!(derived.check_use(Use::Research).is_ok());
    }

    #[test]
    fn provenance_round_trips_and_checks_its_lineage() {
        let mut p = Provenance::new("discus test", vec![site_card()]);
        p.inputs.push(Provenance::new(
            "discus index",
            vec![DatasetCard::lumbardisc()],
        ));
        let back: Provenance = serde_json::from_str(&p.to_json()).unwrap();
        assert_eq!(back, p);
        assert!(p.check_use(Use::Research).is_ok());
        assert!(p.check_use(Use::Commercial).is_err());
        assert!(Provenance::new("x", vec![site_card()])
            .check_use(Use::Commercial)
            .is_ok());
    }

    #[test]
    fn load_card_and_check_sources() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load_card(dir.path()).unwrap().is_none());
        assert!(matches!(
            check_sources("t", &[dir.path()], Use::Research, true),
            Err(GovernanceError::NoCard { .. })
        ));
        assert!(check_sources("t", &[dir.path()], Use::Research, false)
            .unwrap()
            .sources
            .is_empty());
        DatasetCard::lumbardisc()
            .write(&dir.path().join(CARD_FILE))
            .unwrap();
        let p = check_sources("t", &[dir.path()], Use::Research, true).unwrap();
        assert_eq!(p.sources, vec![DatasetCard::lumbardisc()]);
        assert!(matches!(
            check_sources("t", &[dir.path()], Use::Commercial, true),
            Err(GovernanceError::Refused(_))
        ));
        std::fs::write(dir.path().join(CARD_FILE), "name = ").unwrap();
        let e = load_card(dir.path()).unwrap_err();
        assert!(e.to_string().contains("dataset.toml"), "{e}");
    }
}

//! `serve.toml`: where the node listens, who may talk to it, when a study is complete, its limits
//! and where results go. Every field but `data_dir` and `model` has a default (see the README).

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a valid configuration.
    #[error("{}: {what}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
}

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    /// The node's working folder: SQLite job table, received instances, job folders, results.
    pub data_dir: PathBuf,
    /// The model folder (`discus train` output).
    pub model: PathBuf,
    /// The HTTP side (DICOMweb STOW-RS, jobs, health, metrics).
    #[serde(default)]
    pub http: HttpConfig,
    /// The DICOM side (Storage SCP).
    #[serde(default)]
    pub dicom: DicomConfig,
    /// When a study counts as complete.
    #[serde(default)]
    pub trigger: TriggerConfig,
    /// Caps on what the node accepts.
    #[serde(default)]
    pub limits: Limits,
    /// Retries of result delivery.
    #[serde(default)]
    pub delivery: DeliveryConfig,
    /// Where results are sent (none: results stay in `data_dir/results`).
    #[serde(default)]
    pub destinations: Vec<Destination>,
    /// The reading room at `/reader/` (none: not served).
    #[serde(default)]
    pub reader: Option<crate::reader::ReaderConfig>,
}

/// The HTTP listener.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address to bind (port 0: any free port, printed at start).
    pub bind: SocketAddr,
    /// The bearer token every request but `/health` must carry (`Authorization: Bearer <token>`).
    pub token: Option<String>,
    /// A file holding the token (first line), instead of `token`.
    pub token_file: Option<PathBuf>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 8042)),
            token: None,
            token_file: None,
        }
    }
}

/// The Storage SCP.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DicomConfig {
    /// Address to bind (port 0: any free port, printed at start).
    pub bind: SocketAddr,
    /// This node's AE title; associations calling another title are rejected.
    pub ae_title: String,
    /// Calling AE titles allowed to associate (empty: none may).
    pub allowed_ae_titles: Vec<String>,
    /// Seconds of silence after which an association is aborted.
    pub read_timeout_s: f64,
    /// The largest PDU this node receives (offered in A-ASSOCIATE-AC).
    pub max_pdu: u32,
    /// Associations served at once; more are rejected (transient, local limit exceeded).
    pub max_associations: usize,
}

impl Default for DicomConfig {
    fn default() -> Self {
        DicomConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 11112)),
            ae_title: "DISCUS".into(),
            allowed_ae_titles: Vec::new(),
            read_timeout_s: 30.0,
            max_pdu: 65536,
            max_associations: 8,
        }
    }
}

/// When a study is complete.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TriggerConfig {
    /// Seconds after a study's last instance at which it counts as complete.
    pub stable_age_s: f64,
    /// How often studies are checked, milliseconds.
    pub poll_ms: u64,
    /// Milliseconds a job waits between ingest and grading (default 0: no wait). Not needed in
    /// normal use; it lets an operator, or a test, stop the node while a job is running.
    pub hold_after_ingest_ms: u64,
}

impl Default for TriggerConfig {
    fn default() -> Self {
        TriggerConfig {
            stable_age_s: 60.0,
            poll_ms: 500,
            hold_after_ingest_ms: 0,
        }
    }
}

/// Caps; each refusal says which cap was hit.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Instances kept per study; more are refused (C-STORE 0xA700, STOW failure 0xA700).
    pub max_instances_per_study: usize,
    /// Bytes of one STOW-RS request body; more: 413.
    pub max_body_bytes: u64,
    /// Bytes of received instances kept on disk; more: refused (C-STORE 0xA700, STOW 507).
    pub max_disk_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_instances_per_study: 5000,
            max_body_bytes: 2 << 30,
            max_disk_bytes: 20 << 30,
        }
    }
}

/// Delivery retries: `attempts` tries, waiting `backoff_s`, doubling each time.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// Tries per destination before the result goes to the dead-letter list.
    pub attempts: u32,
    /// The first wait, seconds (doubled after each failure).
    pub backoff_s: f64,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            attempts: 5,
            backoff_s: 2.0,
        }
    }
}

/// A destination for results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Destination {
    /// C-STORE to a Storage SCP.
    CStore {
        /// `host:port`.
        address: String,
        /// The SCP's AE title.
        ae_title: String,
        /// The calling AE title (default: this node's).
        #[serde(default)]
        calling_ae_title: Option<String>,
    },
    /// STOW-RS to a DICOMweb origin server (`.../studies` is appended to `url`).
    Stow {
        /// The DICOMweb root, e.g. `http://127.0.0.1:8042/dicom-web`.
        url: String,
        /// A bearer token to send, if the server wants one.
        #[serde(default)]
        token: Option<String>,
    },
}

impl Destination {
    /// A short name for `/jobs` and logs.
    pub fn name(&self) -> String {
        match self {
            Destination::CStore {
                address, ae_title, ..
            } => format!("c-store {ae_title}@{address}"),
            Destination::Stow { url, .. } => format!("stow {url}"),
        }
    }
}

impl ServeConfig {
    /// Reads and checks `serve.toml`; relative paths are taken from the file's folder.
    pub fn read(path: &Path) -> Result<ServeConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut c: ServeConfig = toml::from_str(&text).map_err(|e| ConfigError::Invalid {
            path: path.to_path_buf(),
            what: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [&mut c.data_dir, &mut c.model] {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        if let Some(t) = &mut c.http.token_file {
            if t.is_relative() {
                *t = base.join(&*t);
            }
        }
        if let Some(r) = &mut c.reader {
            r.resolve(base).map_err(|what| ConfigError::Invalid {
                path: path.to_path_buf(),
                what,
            })?;
        }
        c.check().map_err(|what| ConfigError::Invalid {
            path: path.to_path_buf(),
            what,
        })?;
        Ok(c)
    }

    /// Checks values that parse but cannot work.
    pub fn check(&self) -> Result<(), String> {
        if self.dicom.ae_title.is_empty() || self.dicom.ae_title.len() > 16 {
            return Err("dicom.ae_title must have 1 to 16 characters".into());
        }
        if self.dicom.max_pdu < 4096 {
            return Err("dicom.max_pdu must be at least 4096".into());
        }
        if self.dicom.max_associations == 0 {
            return Err("dicom.max_associations must be at least 1".into());
        }
        if self.trigger.stable_age_s.is_nan() || self.trigger.stable_age_s < 0.0 {
            return Err("trigger.stable_age_s must be 0 or more".into());
        }
        if self.delivery.attempts == 0 {
            return Err("delivery.attempts must be at least 1".into());
        }
        if self.http.token.is_some() && self.http.token_file.is_some() {
            return Err("give http.token or http.token_file, not both".into());
        }
        Ok(())
    }

    /// The bearer token (read from `token_file` when given); `None` leaves HTTP open (only sensible on
    /// loopback).
    pub fn token(&self) -> Result<Option<String>, ConfigError> {
        if let Some(f) = &self.http.token_file {
            let t = std::fs::read_to_string(f).map_err(|source| ConfigError::Io {
                path: f.clone(),
                source,
            })?;
            let t = t.lines().next().unwrap_or("").trim().to_string();
            if t.is_empty() {
                return Err(ConfigError::Invalid {
                    path: f.clone(),
                    what: "empty token file".into(),
                });
            }
            return Ok(Some(t));
        }
        Ok(self.http.token.clone())
    }

    /// The association read timeout.
    pub fn read_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.dicom.read_timeout_s.max(0.1))
    }
}

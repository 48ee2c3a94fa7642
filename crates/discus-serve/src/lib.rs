//! # discus-serve
//!
//! `discus serve`: a diagnostic-assist node for PACS. Studies come in by DICOM C-STORE
//! ([`scp`]) or DICOMweb STOW-RS ([`http`]); a study counts as complete `stable_age_s` after its
//! last instance; a job (in SQLite, [`store`]) selects the series with the ingest classifier, runs
//! the model and writes the result ([`jobs`]); DICOM results go back to the configured
//! destinations with retries and a dead-letter list ([`deliver`]). `GET /jobs`, `/health` and
//! `/metrics` show what it does.
//!
//! ```no_run
//! let config = discus_serve::config::ServeConfig::read(std::path::Path::new("serve.toml"))?;
//! let running = discus_serve::start(config)?;
//! println!("HTTP on {}, DICOM on {}", running.http_addr, running.dicom_addr);
//! running.wait();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Threads: one accepting DICOM associations (one more per association, up to
//! `max_associations`), a tokio runtime for HTTP, one trigger thread, one worker (the model is
//! CPU-bound; 2 cores are assumed), one per delivery in progress.

#![deny(missing_docs)]

pub mod config;
pub mod deliver;
pub mod dimse;
pub mod http;
pub mod jobs;
pub mod node;
pub mod reader;
pub mod receive;
pub mod scp;
pub mod store;

use config::ServeConfig;
use node::{Metrics, Node};
use sha2::{Digest, Sha256};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why the node could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// The reading room cannot start.
    #[error(transparent)]
    Reader(#[from] reader::ReaderError),
    /// The job store cannot be opened.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// The model cannot be loaded.
    #[error("model {}: {what}", path.display())]
    Model {
        /// The model folder.
        path: PathBuf,
        /// Why.
        what: String,
    },
    /// A folder or socket could not be set up.
    #[error("{what}: {source}")]
    Io {
        /// What was being set up.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ServeError {
    let what = what.into();
    move |source| ServeError::Io { what, source }
}

/// The model version of a model folder: the first 16 hex digits of SHA-256 over `model.toml` and
/// the weights (part of every job key, so a new model re-runs studies once).
pub fn model_version(dir: &Path) -> Result<String, ServeError> {
    let mut h = Sha256::new();
    for f in [discus_model::CARD_FILE, discus_model::WEIGHTS_FILE] {
        let p = dir.join(f);
        let bytes = std::fs::read(&p).map_err(io(p.display().to_string()))?;
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(&bytes);
    }
    Ok(h.finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// A started node.
pub struct Running {
    /// Where HTTP listens.
    pub http_addr: SocketAddr,
    /// Where the Storage SCP listens.
    pub dicom_addr: SocketAddr,
    /// The shared state.
    pub node: Arc<Node>,
    /// Jobs requeued at start (interrupted by the previous process's end).
    pub recovered: usize,
    http: std::thread::JoinHandle<()>,
}

impl Running {
    /// Blocks while the node runs.
    pub fn wait(self) {
        let _ = self.http.join();
    }
}

/// The data folder's SQLite file.
pub fn store_path(data_dir: &Path) -> PathBuf {
    data_dir.join("serve.sqlite")
}

/// Starts a node: opens the store (requeueing interrupted jobs), loads the model, binds both
/// listeners and starts the threads.
pub fn start(config: ServeConfig) -> Result<Running, ServeError> {
    let data_dir = config.data_dir.clone();
    std::fs::create_dir_all(&data_dir).map_err(io(data_dir.display().to_string()))?;
    // Leftover partial bodies of a previous process.
    let _ = std::fs::remove_dir_all(data_dir.join("tmp"));
    let token = config.token()?;
    let store = store::Store::open(&store_path(&data_dir))?;
    let recovered = store.recover()?;
    // The model is loaded on the worker thread that uses it (burn's modules need not be `Send`);
    // its loading result comes back before the listeners open.
    let model_dir = config.model.clone();
    let (model_tx, model_rx) = std::sync::mpsc::channel();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Arc<Node>>();
    std::thread::spawn(move || match discus_model::Model::load(&model_dir) {
        Ok(model) => {
            let _ = model_tx.send(Ok(()));
            if let Ok(node) = ready_rx.recv() {
                jobs::worker_loop(node, model);
            }
        }
        Err(e) => {
            let _ = model_tx.send(Err(e.to_string()));
        }
    });
    match model_rx.recv() {
        Ok(Ok(())) => {}
        Ok(Err(what)) => {
            return Err(ServeError::Model {
                path: config.model.clone(),
                what,
            })
        }
        Err(_) => {
            return Err(ServeError::Model {
                path: config.model.clone(),
                what: "the model thread stopped".into(),
            })
        }
    }
    let model_version = model_version(&config.model)?;
    let reading_room = match &config.reader {
        Some(r) => Some(reader::ReaderState::open(r.clone())?),
        None => None,
    };
    let dicom_listener = std::net::TcpListener::bind(config.dicom.bind)
        .map_err(io(format!("binding DICOM {}", config.dicom.bind)))?;
    let http_listener = std::net::TcpListener::bind(config.http.bind)
        .map_err(io(format!("binding HTTP {}", config.http.bind)))?;
    http_listener
        .set_nonblocking(true)
        .map_err(io("HTTP listener"))?;
    let dicom_addr = dicom_listener.local_addr().map_err(io("DICOM listener"))?;
    let http_addr = http_listener.local_addr().map_err(io("HTTP listener"))?;
    let node = Arc::new(Node {
        config,
        data_dir,
        store,
        metrics: Metrics::default(),
        model_version,
        token,
        running: Default::default(),
        stopping: Default::default(),
    });
    if recovered > 0 {
        node.log(format!(
            "{recovered} job(s) interrupted by the last stop are queued again"
        ));
    }
    {
        let n = node.clone();
        std::thread::spawn(move || scp::serve(n, dicom_listener));
    }
    {
        let n = node.clone();
        std::thread::spawn(move || jobs::trigger_loop(n));
    }
    let _ = ready_tx.send(node.clone());
    jobs::resume_deliveries(&node);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(io("HTTP runtime"))?;
    let mut app = http::router(node.clone());
    if let Some(room) = reading_room {
        app = app.merge(reader::router(room));
    }
    let http = std::thread::spawn(move || {
        runtime.block_on(async move {
            match tokio::net::TcpListener::from_std(http_listener) {
                Ok(l) => {
                    if let Err(e) = axum::serve(l, app).await {
                        eprintln!("discus serve: HTTP: {e}");
                    }
                }
                Err(e) => eprintln!("discus serve: HTTP: {e}"),
            }
        })
    });
    Ok(Running {
        http_addr,
        dicom_addr,
        node,
        recovered,
        http,
    })
}

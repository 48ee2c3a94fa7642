//! Sending results to a PACS: C-STORE (as an SCU, dicom-ul) and STOW-RS (HTTP POST of
//! `multipart/related; type="application/dicom"`), with retries and a dead-letter list.

use crate::config::Destination;
use crate::dimse;
use crate::node::Node;
use dicom_dictionary_std::tags;
use dicom_ul::pdu::PDataValueType;
use dicom_ul::{ClientAssociationOptions, Pdu};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why a delivery attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// A result file could not be read.
    #[error("{}: {what}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// The destination could not be reached or refused the association.
    #[error("{0}")]
    Network(String),
    /// The destination answered with a failure.
    #[error("refused: {0}")]
    Refused(String),
}

/// Tries `dest` up to `delivery.attempts` times, waiting `backoff_s` (doubling) between tries,
/// and records every attempt; after the last failure the delivery is `dead` (the dead-letter list).
pub fn deliver_with_retries(node: &Node, job: i64, dest: &Destination, files: &[PathBuf]) {
    let c = &node.config.delivery;
    let name = dest.name();
    let mut wait = c.backoff_s.max(0.0);
    for attempt in 1..=c.attempts {
        match deliver(dest, &node.config.dicom.ae_title, files) {
            Ok(()) => {
                let _ = node.store.record_delivery(job, &name, "delivered", None);
                node.metrics
                    .inc("discus_deliveries_total{result=\"delivered\"}");
                node.log(format!("job {job}: delivered to {name}"));
                return;
            }
            Err(e) => {
                let last = attempt == c.attempts;
                let state = if last { "dead" } else { "pending" };
                let msg = e.to_string();
                let _ = node.store.record_delivery(job, &name, state, Some(&msg));
                node.log(format!(
                    "job {job}: delivery to {name} failed (attempt {attempt} of {}): {msg}",
                    c.attempts
                ));
                if last {
                    node.metrics.inc("discus_deliveries_total{result=\"dead\"}");
                    return;
                }
                node.metrics
                    .inc("discus_deliveries_total{result=\"retry\"}");
                std::thread::sleep(Duration::from_secs_f64(wait));
                wait *= 2.0;
            }
        }
    }
}

/// One delivery attempt of `files` to `dest`.
pub fn deliver(dest: &Destination, this_ae: &str, files: &[PathBuf]) -> Result<(), DeliveryError> {
    match dest {
        Destination::CStore {
            address,
            ae_title,
            calling_ae_title,
        } => c_store(
            address,
            ae_title,
            calling_ae_title.as_deref().unwrap_or(this_ae),
            files,
        ),
        Destination::Stow { url, token } => stow(url, token.as_deref(), files),
    }
}

struct Outgoing {
    sop_class: String,
    sop_uid: String,
    transfer_syntax: String,
    data: Vec<u8>,
}

fn read_outgoing(path: &Path) -> Result<Outgoing, DeliveryError> {
    let bad = |what: String| DeliveryError::File {
        path: path.to_path_buf(),
        what,
    };
    let obj = dicom_object::open_file(path).map_err(|e| bad(e.to_string()))?;
    let meta = obj.meta();
    let ts_uid = meta.transfer_syntax().trim_end_matches('\0').to_string();
    let ts = dicom_transfer_syntax_registry::TransferSyntaxRegistry
        .get(&ts_uid)
        .ok_or_else(|| bad(format!("unknown transfer syntax {ts_uid}")))?;
    let mut data = Vec::new();
    obj.write_dataset_with_ts(&mut data, ts)
        .map_err(|e| bad(e.to_string()))?;
    Ok(Outgoing {
        sop_class: meta
            .media_storage_sop_class_uid()
            .trim_end_matches('\0')
            .to_string(),
        sop_uid: meta
            .media_storage_sop_instance_uid()
            .trim_end_matches('\0')
            .to_string(),
        transfer_syntax: ts_uid,
        data,
    })
}

use dicom_encoding::TransferSyntaxIndex;

/// C-STORE every file over one association.
pub fn c_store(
    address: &str,
    called: &str,
    calling: &str,
    files: &[PathBuf],
) -> Result<(), DeliveryError> {
    let outgoing: Vec<Outgoing> = files
        .iter()
        .map(|f| read_outgoing(f))
        .collect::<Result<_, _>>()?;
    let mut options = ClientAssociationOptions::new()
        .calling_ae_title(calling.to_string())
        .called_ae_title(called.to_string())
        .read_timeout(Duration::from_secs(30))
        .write_timeout(Duration::from_secs(30))
        .connection_timeout(Duration::from_secs(10));
    let mut pairs: Vec<(String, String)> = outgoing
        .iter()
        .map(|o| (o.sop_class.clone(), o.transfer_syntax.clone()))
        .collect();
    pairs.sort();
    pairs.dedup();
    for (class, ts) in &pairs {
        options = options.with_presentation_context(class.clone(), vec![ts.clone()]);
    }
    let mut assoc = options
        .establish(address)
        .map_err(|e| DeliveryError::Network(format!("association with {address}: {e}")))?;
    for (i, o) in outgoing.iter().enumerate() {
        let pc = assoc
            .presentation_contexts()
            .iter()
            .find(|pc| {
                pc.abstract_syntax.trim_end_matches('\0') == o.sop_class
                    && pc.transfer_syntax.trim_end_matches('\0') == o.transfer_syntax
                    && pc.reason == dicom_ul::pdu::PresentationContextResultReason::Acceptance
            })
            .map(|pc| pc.id)
            .ok_or_else(|| {
                DeliveryError::Refused(format!(
                    "no accepted presentation context for {} in {}",
                    o.sop_class, o.transfer_syntax
                ))
            })?;
        let cmd = dimse::c_store_rq((i + 1) as u16, &o.sop_class, &o.sop_uid);
        assoc
            .send(&dimse::command_pdu(pc, cmd))
            .map_err(|e| DeliveryError::Network(e.to_string()))?;
        {
            let mut w = assoc.send_pdata(pc);
            w.write_all(&o.data)
                .map_err(|e| DeliveryError::Network(e.to_string()))?;
            w.finish()
                .map_err(|e| DeliveryError::Network(e.to_string()))?;
        }
        let status = read_status(&mut assoc)?;
        if status != 0 && (status & 0xF000) != 0xB000 {
            let _ = assoc.abort();
            return Err(DeliveryError::Refused(format!(
                "C-STORE status {status:#06x}"
            )));
        }
    }
    let _ = assoc.release();
    Ok(())
}

fn read_status(
    assoc: &mut dicom_ul::ClientAssociation<std::net::TcpStream>,
) -> Result<u16, DeliveryError> {
    let mut cmd = Vec::new();
    loop {
        match assoc
            .receive()
            .map_err(|e| DeliveryError::Network(e.to_string()))?
        {
            Pdu::PData { data } => {
                for pdv in data {
                    if pdv.value_type == PDataValueType::Command {
                        cmd.extend_from_slice(&pdv.data);
                        if pdv.is_last {
                            let obj = dimse::decode(&cmd).map_err(DeliveryError::Network)?;
                            return dimse::us(&obj, tags::STATUS).ok_or_else(|| {
                                DeliveryError::Network("C-STORE-RSP without a status".into())
                            });
                        }
                    }
                }
            }
            other => {
                return Err(DeliveryError::Network(format!(
                    "unexpected PDU while waiting for C-STORE-RSP: {:?}",
                    std::mem::discriminant(&other)
                )))
            }
        }
    }
}

/// STOW-RS: one POST of every file to `<url>/studies`.
pub fn stow(url: &str, token: Option<&str>, files: &[PathBuf]) -> Result<(), DeliveryError> {
    let boundary = format!("discus-{:016x}", rand_u64());
    let mut body = Vec::new();
    for f in files {
        let bytes = std::fs::read(f).map_err(|e| DeliveryError::File {
            path: f.clone(),
            what: e.to_string(),
        })?;
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Type: application/dicom\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(&bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let target = format!("{}/studies", url.trim_end_matches('/'));
    let mut req = ureq::post(&target)
        .timeout(Duration::from_secs(60))
        .set(
            "Content-Type",
            &format!("multipart/related; type=\"application/dicom\"; boundary={boundary}"),
        )
        .set("Accept", "application/dicom+json");
    if let Some(t) = token {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    match req.send_bytes(&body) {
        Ok(r) if r.status() == 200 => Ok(()),
        Ok(r) => Err(DeliveryError::Refused(format!(
            "STOW-RS {target}: HTTP {}",
            r.status()
        ))),
        Err(ureq::Error::Status(code, _)) => Err(DeliveryError::Refused(format!(
            "STOW-RS {target}: HTTP {code}"
        ))),
        Err(e) => Err(DeliveryError::Network(format!("STOW-RS {target}: {e}"))),
    }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

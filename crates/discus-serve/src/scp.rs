//! The Storage SCP: C-STORE and C-ECHO over dicom-ul's blocking API, one thread per association.
//!
//! - Only associations calling this node's AE title from an allowed calling AE title are accepted
//!   (A-ASSOCIATE-RJ, permanent, service user: calling/called AE title not recognised).
//! - Beyond `max_associations` open at once: A-ASSOCIATE-RJ, transient, service provider
//!   (presentation): local limit exceeded.
//! - The node offers `max_pdu` as its maximum PDU length and answers within the requestor's.
//! - Data sets stream to a temporary Part 10 file as the P-DATA fragments arrive (the file meta
//!   group carries the negotiated transfer syntax), never wholly in memory.
//! - An association silent for `read_timeout_s` is aborted.

use crate::dimse;
use crate::node::Node;
use crate::receive::{take, Refused};
use dicom_dictionary_std::tags;
use dicom_object::FileMetaTableBuilder;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use dicom_ul::association::server::AccessControl;
use dicom_ul::pdu::{
    AssociationRJ, AssociationRJResult, AssociationRJServiceProviderPresentationReason,
    AssociationRJServiceUserReason, AssociationRJSource, PDataValue, PDataValueType, UserIdentity,
};
use dicom_ul::{Pdu, ServerAssociationOptions};
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Verification SOP Class.
const VERIFICATION: &str = "1.2.840.10008.1.1";

/// C-STORE statuses used (PS3.4 Annex B.2.3).
pub mod status {
    /// Success.
    pub const SUCCESS: u16 = 0x0000;
    /// Refused: out of resources.
    pub const OUT_OF_RESOURCES: u16 = 0xA700;
    /// Error: cannot understand.
    pub const CANNOT_UNDERSTAND: u16 = 0xC000;
}

/// The allow-list check.
struct AllowList {
    allowed: Vec<String>,
}

impl AccessControl for AllowList {
    fn check_access(
        &self,
        this_ae_title: &str,
        calling_ae_title: &str,
        called_ae_title: &str,
        _user_identity: Option<&UserIdentity>,
    ) -> Result<(), AssociationRJServiceUserReason> {
        if called_ae_title.trim() != this_ae_title.trim() {
            return Err(AssociationRJServiceUserReason::CalledAETitleNotRecognized);
        }
        if !self
            .allowed
            .iter()
            .any(|a| a.trim() == calling_ae_title.trim())
        {
            return Err(AssociationRJServiceUserReason::CallingAETitleNotRecognized);
        }
        Ok(())
    }
}

/// Serves associations on `listener` until the node stops (one thread per association).
pub fn serve(node: Arc<Node>, listener: TcpListener) {
    for conn in listener.incoming() {
        if node.is_stopping() {
            break;
        }
        let Ok(stream) = conn else { continue };
        let open = node
            .metrics
            .associations_open
            .fetch_add(1, Ordering::SeqCst);
        if open >= node.config.dicom.max_associations {
            node.metrics
                .associations_open
                .fetch_sub(1, Ordering::SeqCst);
            node.metrics
                .inc("discus_associations_rejected_total{reason=\"too_many\"}");
            reject_busy(stream);
            continue;
        }
        let n = node.clone();
        std::thread::spawn(move || {
            association(&n, stream);
            n.metrics.associations_open.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

fn reject_busy(mut stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(2)));
    // Read the A-ASSOCIATE-RQ header and body (best effort), then reject.
    let mut head = [0u8; 6];
    if std::io::Read::read_exact(&mut stream, &mut head).is_ok() {
        let len = u32::from_be_bytes([head[2], head[3], head[4], head[5]]) as u64;
        let _ = std::io::copy(
            &mut std::io::Read::take(&mut stream, len.min(1 << 20)),
            &mut std::io::sink(),
        );
    }
    let pdu = Pdu::from(AssociationRJ {
        result: AssociationRJResult::Transient,
        source: AssociationRJSource::ServiceProviderPresentation(
            AssociationRJServiceProviderPresentationReason::LocalLimitExceeded,
        ),
    });
    let mut buf = Vec::new();
    if dicom_ul::write_pdu(&mut buf, &pdu).is_ok() {
        let _ = stream.write_all(&buf);
    }
}

/// One instance being received.
struct Incoming {
    sop_class: String,
    sop_uid: String,
    message_id: u16,
    file: Option<tempfile::NamedTempFile>,
    failed: Option<String>,
}

fn association(node: &Node, stream: TcpStream) {
    let c = &node.config.dicom;
    let mut options = ServerAssociationOptions::new()
        .ae_access_control(AllowList {
            allowed: c.allowed_ae_titles.clone(),
        })
        .ae_title(c.ae_title.clone())
        .max_pdu_length(c.max_pdu)
        .strict(false)
        .promiscuous(true)
        .read_timeout(node.config.read_timeout())
        .write_timeout(node.config.read_timeout())
        .with_abstract_syntax(VERIFICATION);
    for ts in TransferSyntaxes::all() {
        options = options.with_transfer_syntax(ts);
    }
    let mut assoc = match options.establish(stream) {
        Ok(a) => a,
        Err(e) => {
            node.metrics
                .inc("discus_associations_rejected_total{reason=\"negotiation\"}");
            node.log(format!("association refused: {e}"));
            return;
        }
    };
    node.metrics.inc("discus_associations_total");
    let mut command: Vec<u8> = Vec::new();
    let mut current: Option<Incoming> = None;
    loop {
        let pdu = match assoc.receive() {
            Ok(p) => p,
            Err(e) => {
                if current.is_some() {
                    node.log(format!("association ended mid-instance: {e}"));
                }
                let _ = assoc.abort();
                return;
            }
        };
        match pdu {
            Pdu::PData { data } => {
                for pdv in data {
                    match pdv.value_type {
                        PDataValueType::Command => {
                            command.extend_from_slice(&pdv.data);
                            if !pdv.is_last {
                                continue;
                            }
                            let cmd = std::mem::take(&mut command);
                            match on_command(&cmd) {
                                Command::Echo { message_id } => {
                                    let rsp = dimse::response(
                                        dimse::field::C_ECHO_RSP,
                                        message_id,
                                        VERIFICATION,
                                        None,
                                        status::SUCCESS,
                                        None,
                                    );
                                    if send(&mut assoc, pdv.presentation_context_id, rsp).is_err() {
                                        return;
                                    }
                                }
                                Command::Store {
                                    sop_class,
                                    sop_uid,
                                    message_id,
                                } => {
                                    current = Some(Incoming {
                                        sop_class,
                                        sop_uid,
                                        message_id,
                                        file: None,
                                        failed: None,
                                    });
                                }
                                Command::Other(why) => {
                                    node.log(format!("unsupported DIMSE command: {why}"));
                                    let _ = assoc.abort();
                                    return;
                                }
                            }
                        }
                        PDataValueType::Data => {
                            let Some(inc) = current.as_mut() else {
                                let _ = assoc.abort();
                                return;
                            };
                            if inc.failed.is_none() {
                                if let Err(e) = append(node, &assoc, inc, &pdv) {
                                    inc.failed = Some(e);
                                }
                            }
                            if pdv.is_last {
                                let inc = current.take().expect("current instance");
                                let (st, comment) = finish(node, inc.file, inc.failed);
                                let rsp = dimse::response(
                                    dimse::field::C_STORE_RSP,
                                    inc.message_id,
                                    &inc.sop_class,
                                    Some(&inc.sop_uid),
                                    st,
                                    comment.as_deref(),
                                );
                                if send(&mut assoc, pdv.presentation_context_id, rsp).is_err() {
                                    return;
                                }
                            }
                        }
                    }
                }
            }
            Pdu::ReleaseRQ => {
                let _ = assoc.send(&Pdu::ReleaseRP);
                return;
            }
            Pdu::AbortRQ { .. } => return,
            _ => {}
        }
    }
}

/// The transfer syntaxes offered: every one the registry can read.
struct TransferSyntaxes;

impl TransferSyntaxes {
    fn all() -> Vec<String> {
        let mut v: Vec<String> = TransferSyntaxRegistry
            .iter()
            .filter(|ts| !ts.is_unsupported())
            .map(|ts| ts.uid().to_string())
            .collect();
        // Explicit then implicit VR little endian first: the SCU's order decides, but these are
        // what the pipeline reads fastest.
        v.sort_by_key(|u| match u.as_str() {
            "1.2.840.10008.1.2.1" => 0,
            "1.2.840.10008.1.2" => 1,
            _ => 2,
        });
        v
    }
}

fn append(
    node: &Node,
    assoc: &dicom_ul::ServerAssociation<TcpStream>,
    inc: &mut Incoming,
    pdv: &PDataValue,
) -> Result<(), String> {
    if inc.file.is_none() {
        let ts = assoc
            .presentation_contexts()
            .iter()
            .find(|pc| pc.id == pdv.presentation_context_id)
            .map(|pc| pc.transfer_syntax.trim_end_matches('\0').to_string())
            .ok_or("unknown presentation context")?;
        let meta = FileMetaTableBuilder::new()
            .media_storage_sop_class_uid(inc.sop_class.as_str())
            .media_storage_sop_instance_uid(inc.sop_uid.as_str())
            .transfer_syntax(ts.as_str())
            .build()
            .map_err(|e| format!("file meta: {e}"))?;
        let mut f = node.tmp_file().map_err(|e| e.to_string())?;
        f.write_all(&[0u8; 128]).map_err(|e| e.to_string())?;
        f.write_all(b"DICM").map_err(|e| e.to_string())?;
        meta.write(&mut f).map_err(|e| format!("file meta: {e}"))?;
        inc.file = Some(f);
    }
    inc.file
        .as_mut()
        .expect("file")
        .write_all(&pdv.data)
        .map_err(|e| e.to_string())
}

fn finish(
    node: &Node,
    file: Option<tempfile::NamedTempFile>,
    failed: Option<String>,
) -> (u16, Option<String>) {
    if let Some(e) = failed {
        return (status::OUT_OF_RESOURCES, Some(e));
    }
    let Some(f) = file else {
        return (status::CANNOT_UNDERSTAND, Some("no data set".into()));
    };
    let path = f.into_temp_path();
    let keep = match path.keep() {
        Ok(p) => p,
        Err(e) => return (status::OUT_OF_RESOURCES, Some(e.to_string())),
    };
    match take(node, &keep, None) {
        Ok(_) => (status::SUCCESS, None),
        Err(Refused::NotDicom(e)) => (status::CANNOT_UNDERSTAND, Some(e)),
        Err(e) => (status::OUT_OF_RESOURCES, Some(e.to_string())),
    }
}

enum Command {
    Echo {
        message_id: u16,
    },
    Store {
        sop_class: String,
        sop_uid: String,
        message_id: u16,
    },
    Other(String),
}

fn on_command(bytes: &[u8]) -> Command {
    let obj = match dimse::decode(bytes) {
        Ok(o) => o,
        Err(e) => return Command::Other(e),
    };
    let message_id = dimse::us(&obj, tags::MESSAGE_ID).unwrap_or(0);
    match dimse::us(&obj, tags::COMMAND_FIELD).unwrap_or(0) {
        dimse::field::C_ECHO_RQ => Command::Echo { message_id },
        dimse::field::C_STORE_RQ => Command::Store {
            sop_class: dimse::ui(&obj, tags::AFFECTED_SOP_CLASS_UID),
            sop_uid: dimse::ui(&obj, tags::AFFECTED_SOP_INSTANCE_UID),
            message_id,
        },
        other => Command::Other(format!("command field {other:#06x}")),
    }
}

fn send(
    assoc: &mut dicom_ul::ServerAssociation<TcpStream>,
    pc: u8,
    command: Vec<u8>,
) -> Result<(), ()> {
    assoc.send(&dimse::command_pdu(pc, command)).map_err(|_| ())
}

//! DIMSE command sets (PS3.7 section 9.3 and 9.1.5), shared by the Storage SCP ([`crate::scp`])
//! and the C-STORE SCU ([`crate::deliver`]): always implicit VR little endian, preceded by their
//! Command Group Length (0000,0000).

use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::entries::IMPLICIT_VR_LITTLE_ENDIAN;
use dicom_ul::pdu::{PDataValue, PDataValueType};
use dicom_ul::Pdu;

/// Command Field values (PS3.7 E.1).
pub mod field {
    /// C-STORE-RQ.
    pub const C_STORE_RQ: u16 = 0x0001;
    /// C-STORE-RSP.
    pub const C_STORE_RSP: u16 = 0x8001;
    /// C-ECHO-RQ.
    pub const C_ECHO_RQ: u16 = 0x0030;
    /// C-ECHO-RSP.
    pub const C_ECHO_RSP: u16 = 0x8030;
}

/// Command Data Set Type: a data set follows.
const DATA_SET_PRESENT: u16 = 0x0000;
/// Command Data Set Type: no data set follows.
const NO_DATA_SET: u16 = 0x0101;

fn put_us(obj: &mut InMemDicomObject, tag: Tag, v: u16) {
    obj.put(DataElement::new(tag, VR::US, PrimitiveValue::from(v)));
}

fn put_ui(obj: &mut InMemDicomObject, tag: Tag, v: &str) {
    obj.put(DataElement::new(tag, VR::UI, PrimitiveValue::from(v)));
}

/// Encodes a command set in implicit VR little endian, preceded by its Command Group Length.
pub fn encode(obj: InMemDicomObject) -> Vec<u8> {
    let ts = IMPLICIT_VR_LITTLE_ENDIAN.erased();
    let mut body = Vec::new();
    obj.write_dataset_with_ts(&mut body, &ts)
        .expect("writing a command set to memory");
    let mut out = Vec::with_capacity(body.len() + 12);
    // (0000,0000) UL, implicit VR: tag, 4-byte length 4, then the value.
    out.extend_from_slice(&[0, 0, 0, 0, 4, 0, 0, 0]);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// Reads a command set (the concatenated command fragments of one message).
pub fn decode(bytes: &[u8]) -> Result<InMemDicomObject, String> {
    let ts = IMPLICIT_VR_LITTLE_ENDIAN.erased();
    InMemDicomObject::read_dataset_with_ts(bytes, &ts)
        .map_err(|e| format!("unreadable command set: {e}"))
}

/// A US element of a command set (`None` when absent or unreadable).
pub fn us(obj: &InMemDicomObject, tag: Tag) -> Option<u16> {
    obj.element(tag).ok().and_then(|e| e.to_int::<u16>().ok())
}

/// A UI element of a command set, padding removed (empty when absent).
pub fn ui(obj: &InMemDicomObject, tag: Tag) -> String {
    obj.element(tag)
        .ok()
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim_end_matches(['\0', ' ']).to_string())
        .unwrap_or_default()
}

/// A C-STORE-RQ (medium priority) announcing a data set.
pub fn c_store_rq(message_id: u16, sop_class: &str, sop_uid: &str) -> Vec<u8> {
    let mut obj = InMemDicomObject::new_empty();
    put_ui(&mut obj, tags::AFFECTED_SOP_CLASS_UID, sop_class);
    put_us(&mut obj, tags::COMMAND_FIELD, field::C_STORE_RQ);
    put_us(&mut obj, tags::MESSAGE_ID, message_id);
    put_us(&mut obj, tags::PRIORITY, 0);
    put_us(&mut obj, tags::COMMAND_DATA_SET_TYPE, DATA_SET_PRESENT);
    put_ui(&mut obj, tags::AFFECTED_SOP_INSTANCE_UID, sop_uid);
    encode(obj)
}

/// A response without a data set (`field` is C-STORE-RSP or C-ECHO-RSP); `comment` becomes the
/// Error Comment (at most 64 characters).
pub fn response(
    field: u16,
    message_id: u16,
    sop_class: &str,
    sop_uid: Option<&str>,
    status: u16,
    comment: Option<&str>,
) -> Vec<u8> {
    let mut obj = InMemDicomObject::new_empty();
    put_ui(&mut obj, tags::AFFECTED_SOP_CLASS_UID, sop_class);
    put_us(&mut obj, tags::COMMAND_FIELD, field);
    put_us(&mut obj, tags::MESSAGE_ID_BEING_RESPONDED_TO, message_id);
    put_us(&mut obj, tags::COMMAND_DATA_SET_TYPE, NO_DATA_SET);
    put_us(&mut obj, tags::STATUS, status);
    if let Some(c) = comment {
        let c: String = c.chars().take(64).collect();
        obj.put(DataElement::new(
            tags::ERROR_COMMENT,
            VR::LO,
            PrimitiveValue::from(c),
        ));
    }
    if let Some(u) = sop_uid {
        put_ui(&mut obj, tags::AFFECTED_SOP_INSTANCE_UID, u);
    }
    encode(obj)
}

/// A P-DATA-TF carrying one whole command set on presentation context `pc`.
pub fn command_pdu(pc: u8, command: Vec<u8>) -> Pdu {
    Pdu::PData {
        data: vec![PDataValue {
            presentation_context_id: pc,
            value_type: PDataValueType::Command,
            is_last: true,
            data: command,
        }],
    }
}

//! DIMSE command sets of `discus_serve::dimse`: the Command Group Length counts the bytes after it
//! (PS3.7 9.3), the Command Field, Data Set Type and Status values are those of PS3.7 E.1 and
//! 9.3.1, and the Error Comment is cut to 64 characters (LO). Interoperability with an independent
//! DIMSE implementation (DCMTK's storescu/storescp) is tested in discus-cli's serve tests.

use dicom_dictionary_std::tags;
use discus_serve::dimse::{c_store_rq, decode, response, ui, us};

/// C-STORE-RSP (PS3.7 E.1).
const C_STORE_RSP: u16 = 0x8001;

#[test]
fn a_c_store_rq_reads_back_with_its_group_length() {
    let bytes = c_store_rq(7, "1.2.840.10008.5.1.4.1.1.4", "1.2.3.4");
    // Group length = the bytes after the 12-byte (0000,0000) element.
    let gl = u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize;
    assert_eq!(gl, bytes.len() - 12);
    let obj = decode(&bytes).unwrap();
    // C-STORE-RQ is 0x0001 (PS3.7 E.1).
    assert_eq!(us(&obj, tags::COMMAND_FIELD), Some(0x0001));
    assert_eq!(us(&obj, tags::MESSAGE_ID), Some(7));
    assert_eq!(us(&obj, tags::COMMAND_DATA_SET_TYPE), Some(0));
    assert_eq!(ui(&obj, tags::AFFECTED_SOP_INSTANCE_UID), "1.2.3.4");
    // "1.2.3.4" is padded to an even length on the wire.
    assert_eq!(bytes.len() % 2, 0);
}

#[test]
fn a_response_carries_status_and_a_short_comment() {
    let long = "x".repeat(100);
    let obj = decode(&response(
        C_STORE_RSP,
        3,
        "1.2",
        Some("1.2.3"),
        0xA700,
        Some(&long),
    ))
    .unwrap();
    assert_eq!(us(&obj, tags::STATUS), Some(0xA700));
    assert_eq!(us(&obj, tags::MESSAGE_ID_BEING_RESPONDED_TO), Some(3));
    assert_eq!(us(&obj, tags::COMMAND_DATA_SET_TYPE), Some(0x0101));
    assert_eq!(ui(&obj, tags::ERROR_COMMENT).len(), 64);
}

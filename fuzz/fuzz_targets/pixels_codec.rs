//! The codecs, reached directly: the first 8 input bytes choose the compressed transfer syntax and
//! the image attributes ([`discus_fuzz::CodecHeader`]), the rest is the one fragment of a one-frame
//! file that [`discus_fuzz::codec_file`] builds; `decode_pixels_bytes` decodes it.
#![no_main]

use discus_data::dicom::decode_pixels_bytes;
use discus_fuzz::{codec_file, guard, CodecHeader, HEADER_LEN};
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Some((head, fragment)) = data.split_first_chunk::<HEADER_LEN>() else {
        return;
    };
    let h = CodecHeader::from_bytes(head);
    let file = codec_file(&h, fragment);
    let path = Path::new("fuzz/pixels_codec.dcm");
    if let Ok(px) = guard("decode_pixels_bytes", || decode_pixels_bytes(&file, path)) {
        assert_eq!(px.values.len(), px.shape().iter().product::<usize>());
        assert_eq!((px.rows, px.columns), (h.rows as u32, h.columns as u32));
    }
});

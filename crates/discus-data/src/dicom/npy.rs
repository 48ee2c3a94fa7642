//! NumPy `.npy` files of stored pixel values.

use super::{DicomError, PixelValues, StoredPixels};
use std::path::Path;

/// [`StoredPixels::shape`] and dtype [`StoredPixels::dtype`], C order.
pub fn npy_bytes(pixels: &StoredPixels) -> Vec<u8> {
    let shape = pixels.shape();
    let shape_txt = if shape.len() == 1 {
        format!("({},)", shape[0])
    } else {
        format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let mut header = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {}, }}",
        pixels.dtype(),
        shape_txt
    );
    // magic (6) + version (2) + length (2) + header, padded with spaces and ended by '\n' to a
    // multiple of 64 bytes.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + pixels.values.len() * 4);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    match &pixels.values {
        PixelValues::U8(v) => out.extend_from_slice(v),
        PixelValues::I8(v) => out.extend(v.iter().map(|&x| x as u8)),
        PixelValues::U16(v) => out.extend(v.iter().flat_map(|x| x.to_le_bytes())),
        PixelValues::I16(v) => out.extend(v.iter().flat_map(|x| x.to_le_bytes())),
        PixelValues::U32(v) => out.extend(v.iter().flat_map(|x| x.to_le_bytes())),
        PixelValues::I32(v) => out.extend(v.iter().flat_map(|x| x.to_le_bytes())),
    }
    out
}

/// Writes `pixels` to `path` as a NumPy `.npy` file (see [`npy_bytes`]), atomically.
pub fn write_npy(path: &Path, pixels: &StoredPixels) -> Result<(), DicomError> {
    discus_core::fsio::atomic_write(path, &npy_bytes(pixels)).map_err(|source| DicomError::Write {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_header_is_padded_to_64_bytes() {
        let px = StoredPixels {
            frames: 1,
            rows: 2,
            columns: 3,
            samples_per_pixel: 1,
            bits_allocated: 16,
            bits_stored: 12,
            pixel_representation: 1,
            photometric_interpretation: "MONOCHROME2".into(),
            values: PixelValues::I16(vec![-1, 0, 1, 2, 3, -2048]),
        };
        let b = npy_bytes(&px);
        let hlen = u16::from_le_bytes([b[8], b[9]]) as usize;
        assert_eq!((10 + hlen) % 64, 0);
        let header = std::str::from_utf8(&b[10..10 + hlen]).unwrap();
        assert!(
            header.starts_with("{'descr': '<i2', 'fortran_order': False, 'shape': (1, 2, 3), }")
        );
        assert!(header.ends_with('\n'));
        assert_eq!(b.len(), 10 + hlen + 12);
        assert_eq!(&b[10 + hlen..10 + hlen + 2], &[0xff, 0xff]);
        assert_eq!(&b[b.len() - 2..], &(-2048i16).to_le_bytes());
    }
}

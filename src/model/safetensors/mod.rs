//! Reading safetensors checkpoints: the validated header ([`header`]) and tensor data as f32.

mod header;

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

pub use header::*;

/// Reads and validates the header of the safetensors file at `path`.
pub fn read_header(path: &Path) -> crate::Result<(File, Header)> {
    let bad = |message: String| crate::Error::Model {
        path: path.to_path_buf(),
        message,
    };
    let read_err = |source| crate::Error::Read {
        path: path.to_path_buf(),
        source,
    };
    crate::fsx::input::regular_file(path)?;
    let mut file = File::open(path).map_err(read_err)?;
    let file_len = file.metadata().map_err(read_err)?.len();
    if file_len < 8 {
        return Err(bad(
            "file is shorter than the 8-byte header length; not a safetensors file".into(),
        ));
    }
    let mut len = [0u8; 8];
    file.read_exact(&mut len).map_err(read_err)?;
    let n = check_header_len(len, file_len).map_err(bad)?;
    let mut json = vec![0u8; n];
    file.read_exact(&mut json).map_err(read_err)?;
    let header = parse_header(&json, file_len).map_err(bad)?;
    Ok((file, header))
}

/// Reads one tensor's data as f32 values (converting F16, BF16 and F64).
pub fn read_f32(file: &mut File, path: &Path, entry: &TensorEntry) -> crate::Result<Vec<f32>> {
    let read_err = |source| crate::Error::Read {
        path: path.to_path_buf(),
        source,
    };
    let len = (entry.end - entry.start) as usize;
    let mut raw = vec![0u8; len];
    file.seek(SeekFrom::Start(entry.start)).map_err(read_err)?;
    file.read_exact(&mut raw).map_err(read_err)?;
    Ok(convert(&raw, entry.dtype))
}

/// Converts little-endian raw bytes of `dtype` to f32.
pub fn convert(raw: &[u8], dtype: Dtype) -> Vec<f32> {
    match dtype {
        Dtype::F32 => raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F16 => raw
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::BF16 => raw
            .chunks_exact(2)
            .map(|c| f32::from_bits(u32::from(u16::from_le_bytes([c[0], c[1]])) << 16))
            .collect(),
        Dtype::F64 => raw
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_half_types() {
        assert_eq!(convert(&[0x00, 0x3c], Dtype::F16), vec![1.0]);
        assert_eq!(convert(&[0x80, 0x3f], Dtype::BF16), vec![1.0]);
        assert_eq!(convert(&1.5f64.to_le_bytes(), Dtype::F64), vec![1.5]);
    }
}

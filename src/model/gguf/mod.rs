//! Reading GGUF files: the validated header ([`header`]) and tensors dequantised to f32 (candle's
//! block kernels), so scoring runs on the fast f32 matmul.

mod header;

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use candle_core::quantized::{GgmlDType, ggml_file::qtensor_from_ggml};

pub use header::*;

fn ggml(ty: TensorType) -> GgmlDType {
    match ty.id {
        0 => GgmlDType::F32,
        1 => GgmlDType::F16,
        2 => GgmlDType::Q4_0,
        3 => GgmlDType::Q4_1,
        6 => GgmlDType::Q5_0,
        7 => GgmlDType::Q5_1,
        8 => GgmlDType::Q8_0,
        9 => GgmlDType::Q8_1,
        10 => GgmlDType::Q2K,
        11 => GgmlDType::Q3K,
        12 => GgmlDType::Q4K,
        13 => GgmlDType::Q5K,
        14 => GgmlDType::Q6K,
        15 => GgmlDType::Q8K,
        _ => GgmlDType::BF16,
    }
}

/// Reads and validates the header of the GGUF file at `path`.
pub fn read_header(path: &Path) -> crate::Result<(File, Header)> {
    let read_err = |source| crate::Error::Read {
        path: path.to_path_buf(),
        source,
    };
    crate::fsx::input::regular_file(path)?;
    let file = File::open(path).map_err(read_err)?;
    let len = file.metadata().map_err(read_err)?.len();
    let header =
        parse_header(BufReader::new(&file), len).map_err(|message| crate::Error::Model {
            path: path.to_path_buf(),
            message,
        })?;
    Ok((file, header))
}

/// Reads one tensor and dequantises it to f32 (row-major, `info.shape`).
pub fn read_f32(
    file: &mut File,
    path: &Path,
    name: &str,
    info: &TensorInfo,
) -> crate::Result<Vec<f32>> {
    let read_err = |source| crate::Error::Read {
        path: path.to_path_buf(),
        source,
    };
    let n = info.len as usize;
    // The block kernels read the bytes as structs holding f16/f32 fields: give them an 8-aligned slice.
    let mut buf = vec![0u8; n + 8];
    let off = buf.as_ptr().align_offset(8);
    file.seek(SeekFrom::Start(info.start)).map_err(read_err)?;
    file.read_exact(&mut buf[off..off + n]).map_err(read_err)?;
    let raw = &buf[off..off + n];
    use super::safetensors::{Dtype, convert};
    Ok(match info.ty.id {
        0 => convert(raw, Dtype::F32),
        1 => convert(raw, Dtype::F16),
        30 => convert(raw, Dtype::BF16),
        _ => dequantize(raw, info).map_err(|e| crate::Error::Model {
            path: path.to_path_buf(),
            message: format!("tensor '{name}': cannot dequantise {}: {e}", info.ty.name),
        })?,
    })
}

/// Dequantises an 8-aligned block buffer of `info.ty` to f32.
pub fn dequantize(raw: &[u8], info: &TensorInfo) -> Result<Vec<f32>, String> {
    if raw.len() as u64 != info.len || raw.as_ptr().align_offset(8) != 0 {
        return Err("buffer length or alignment does not match the tensor".into());
    }
    let q = qtensor_from_ggml(
        ggml(info.ty),
        raw,
        info.shape.clone(),
        &candle_core::Device::Cpu,
    )
    .map_err(|e| e.to_string())?;
    let t = q
        .dequantize(&candle_core::Device::Cpu)
        .map_err(|e| e.to_string())?;
    t.flatten_all()
        .and_then(|t| t.to_vec1::<f32>())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(out: &mut Vec<u8>, v: &str) {
        out.extend_from_slice(&(v.len() as u64).to_le_bytes());
        out.extend_from_slice(v.as_bytes());
    }

    /// A GGUF file with one string key and one 32-element Q8_0 tensor.
    fn tiny() -> Vec<u8> {
        let mut b = b"GGUF".to_vec();
        b.extend_from_slice(&3u32.to_le_bytes());
        b.extend_from_slice(&1u64.to_le_bytes());
        b.extend_from_slice(&1u64.to_le_bytes());
        s(&mut b, "general.architecture");
        b.extend_from_slice(&8u32.to_le_bytes());
        s(&mut b, "llama");
        s(&mut b, "w");
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&32u64.to_le_bytes());
        b.extend_from_slice(&8u32.to_le_bytes());
        b.extend_from_slice(&0u64.to_le_bytes());
        while !b.len().is_multiple_of(32) {
            b.push(0);
        }
        b.extend_from_slice(&half::f16::from_f32(0.5).to_le_bytes());
        b.extend((0..32).map(|i| (i as i8 - 16) as u8));
        b
    }

    #[test]
    fn reads_and_dequantises_q8_0() {
        let bytes = tiny();
        let h = parse_header(&bytes[..], bytes.len() as u64).unwrap();
        assert_eq!(
            h.get("general.architecture").unwrap().as_str(),
            Some("llama")
        );
        let info = &h.tensors["w"];
        assert_eq!(info.shape, vec![32]);
        let mut buf = vec![0u8; info.len as usize + 8];
        let off = buf.as_ptr().align_offset(8);
        buf[off..off + info.len as usize].copy_from_slice(&bytes[info.start as usize..]);
        let v = dequantize(&buf[off..off + info.len as usize], info).unwrap();
        // Q8_0: value = scale · q.
        let want: Vec<f32> = (0..32).map(|i| 0.5 * (i as f32 - 16.0)).collect();
        assert_eq!(v, want);
    }

    #[test]
    fn rejects_bad_files() {
        let good = tiny();
        let mut bad_magic = good.clone();
        bad_magic[0] = b'X';
        let mut bad_version = good.clone();
        bad_version[4] = 9;
        let mut bad_type = good.clone();
        // The tensor type u32 sits 12 bytes before the end of the tensor info (type, then u64 offset).
        let info_end = 4 + 4 + 8 + 8 + (8 + 20 + 4 + 8 + 5) + (8 + 1 + 4 + 8) + 4 + 8;
        bad_type[info_end - 12] = 99;
        let truncated = good[..good.len() - 10].to_vec();
        let mut huge_count = good.clone();
        huge_count[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        for (bytes, want) in [
            (bad_magic, "bad magic"),
            (bad_version, "version 9"),
            (bad_type, "type 99"),
            (truncated, "past the end"),
            (huge_count, "more than the file"),
            (b"GG".to_vec(), "shorter"),
        ] {
            let err = parse_header(&bytes[..], bytes.len() as u64).unwrap_err();
            assert!(err.contains(want), "{err} should contain {want}");
        }
    }
}

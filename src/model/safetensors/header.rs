//! The safetensors header parser: pure (std + serde_json only), so the fuzz target can build it alone.
//!
//! A defensive reader for the safetensors format (Hugging Face checkpoints).
//!
//! Layout: an 8-byte little-endian header length `n`, `n` bytes of JSON mapping tensor names to
//! `{dtype, shape, data_offsets: [begin, end]}` (offsets relative to the data region that follows the
//! header), then the data. Everything read from the file is checked against the file's length before
//! anything is allocated from it: the header length, each tensor's offsets, and each tensor's byte size
//! against its dtype and shape.

use std::collections::BTreeMap;

/// Largest JSON header accepted (the format's own reference implementation uses the same bound).
pub const MAX_HEADER_BYTES: u64 = 100 * 1024 * 1024;

/// Element types phiprobe reads (all converted to f32), plus the integer types it recognises by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dtype {
    /// 32-bit float.
    F32,
    /// IEEE half precision.
    F16,
    /// bfloat16.
    BF16,
    /// 64-bit float (converted down).
    F64,
}

impl Dtype {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Dtype::F32 => 4,
            Dtype::F16 | Dtype::BF16 => 2,
            Dtype::F64 => 8,
        }
    }

    /// The name used in the file.
    pub fn name(self) -> &'static str {
        match self {
            Dtype::F32 => "F32",
            Dtype::F16 => "F16",
            Dtype::BF16 => "BF16",
            Dtype::F64 => "F64",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "F32" => Dtype::F32,
            "F16" => Dtype::F16,
            "BF16" => Dtype::BF16,
            "F64" => Dtype::F64,
            _ => return None,
        })
    }
}

/// One tensor's entry in the header, with absolute file offsets.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorEntry {
    /// Element type.
    pub dtype: Dtype,
    /// Shape (row-major).
    pub shape: Vec<usize>,
    /// Absolute offset of the first byte in the file.
    pub start: u64,
    /// Absolute offset one past the last byte.
    pub end: u64,
}

/// A parsed and validated header.
#[derive(Debug, Clone, Default)]
pub struct Header {
    /// Tensors by name, in name order.
    pub tensors: BTreeMap<String, TensorEntry>,
    /// The free-form `__metadata__` string map.
    pub metadata: BTreeMap<String, String>,
}

/// Validates the JSON header `json` of a file of `file_len` bytes whose header is `json.len()` bytes
/// long. Pure; used by [`read_header`] and by the fuzz target.
pub fn parse_header(json: &[u8], file_len: u64) -> Result<Header, String> {
    let data_start = 8u64
        .checked_add(json.len() as u64)
        .ok_or("header length overflows")?;
    if data_start > file_len {
        return Err(format!(
            "header length {} is larger than the file ({file_len} bytes)",
            json.len()
        ));
    }
    let data_len = file_len - data_start;
    let value: serde_json::Value = serde_json::from_slice(json).map_err(|e| {
        format!(
            "header is not valid JSON (line {}, column {}); the file is truncated or not safetensors",
            e.line(),
            e.column()
        )
    })?;
    let map = value
        .as_object()
        .ok_or("header is not a JSON object; not a safetensors file")?;
    let mut header = Header::default();
    let mut spans: Vec<(u64, u64, &str)> = Vec::with_capacity(map.len());
    for (name, entry) in map {
        if name == "__metadata__" {
            let meta = entry
                .as_object()
                .ok_or("__metadata__ is not an object of strings")?;
            for (k, v) in meta {
                let v = v.as_str().ok_or("__metadata__ values must be strings")?;
                header.metadata.insert(k.clone(), v.to_string());
            }
            continue;
        }
        let obj = entry
            .as_object()
            .ok_or_else(|| format!("tensor '{name}': entry is not an object"))?;
        let dtype_name = obj
            .get("dtype")
            .and_then(|d| d.as_str())
            .ok_or_else(|| format!("tensor '{name}': no dtype"))?;
        let dtype = Dtype::parse(dtype_name).ok_or_else(|| {
            format!(
                "tensor '{name}': dtype {dtype_name} is not supported (F32, F16, BF16, F64 are)"
            )
        })?;
        let shape: Vec<usize> = obj
            .get("shape")
            .and_then(|s| s.as_array())
            .ok_or_else(|| format!("tensor '{name}': no shape"))?
            .iter()
            .map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()))
            .collect::<Option<_>>()
            .ok_or_else(|| {
                format!("tensor '{name}': shape is not a list of non-negative integers")
            })?;
        let offsets: Vec<u64> = obj
            .get("data_offsets")
            .and_then(|s| s.as_array())
            .ok_or_else(|| format!("tensor '{name}': no data_offsets"))?
            .iter()
            .map(|d| d.as_u64())
            .collect::<Option<_>>()
            .ok_or_else(|| format!("tensor '{name}': data_offsets are not integers"))?;
        let [begin, end] = offsets[..] else {
            return Err(format!(
                "tensor '{name}': data_offsets must be [begin, end]"
            ));
        };
        if begin > end || end > data_len {
            return Err(format!(
                "tensor '{name}': data [{begin}, {end}) lies past the end of the file's data ({data_len} bytes); the file is truncated or corrupt"
            ));
        }
        let bytes = shape
            .iter()
            .try_fold(dtype.size() as u64, |acc, &d| acc.checked_mul(d as u64))
            .ok_or_else(|| format!("tensor '{name}': shape {shape:?} overflows"))?;
        if bytes != end - begin {
            return Err(format!(
                "tensor '{name}': shape {shape:?} of {} needs {bytes} bytes but data_offsets span {}",
                dtype.name(),
                end - begin
            ));
        }
        spans.push((begin, end, name));
        header.tensors.insert(
            name.clone(),
            TensorEntry {
                dtype,
                shape,
                start: data_start + begin,
                end: data_start + end,
            },
        );
    }
    spans.sort_unstable();
    for pair in spans.windows(2) {
        if pair[1].0 < pair[0].1 {
            return Err(format!(
                "tensors '{}' and '{}' overlap",
                pair[0].2, pair[1].2
            ));
        }
    }
    Ok(header)
}

/// Parses a whole file held in memory (for tests and fuzzing).
pub fn parse_bytes(bytes: &[u8]) -> Result<Header, String> {
    if bytes.len() < 8 {
        return Err("file is shorter than the 8-byte header length; not a safetensors file".into());
    }
    let n = check_header_len(bytes[..8].try_into().expect("8 bytes"), bytes.len() as u64)?;
    parse_header(&bytes[8..8 + n], bytes.len() as u64)
}

/// Checks the 8-byte header length against the file length and the size limit.
pub fn check_header_len(prefix: [u8; 8], file_len: u64) -> Result<usize, String> {
    let n = u64::from_le_bytes(prefix);
    if n > file_len.saturating_sub(8) {
        return Err(format!(
            "header length {n} is larger than the file ({file_len} bytes); the file is truncated or not safetensors"
        ));
    }
    if n > MAX_HEADER_BYTES {
        return Err(format!(
            "header length {n} exceeds the {MAX_HEADER_BYTES}-byte limit"
        ));
    }
    Ok(n as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(json: &str, data: &[u8]) -> Vec<u8> {
        let mut v = (json.len() as u64).to_le_bytes().to_vec();
        v.extend_from_slice(json.as_bytes());
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn reads_a_valid_header() {
        let bytes = file(
            r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"__metadata__":{"format":"pt"}}"#,
            &[0; 8],
        );
        let h = parse_bytes(&bytes).unwrap();
        assert_eq!(h.tensors["a"].shape, vec![2]);
        assert_eq!(h.metadata["format"], "pt");
        assert_eq!(h.tensors["a"].end as usize, bytes.len());
    }

    #[test]
    fn rejects_bad_headers() {
        let cases = [
            (
                file(
                    r#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#,
                    &[0; 8],
                ),
                "needs 12 bytes",
            ),
            (
                file(
                    r#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#,
                    &[0; 8],
                ),
                "past the end",
            ),
            (
                file(
                    r#"{"a":{"dtype":"I8","shape":[1],"data_offsets":[0,1]}}"#,
                    &[0; 1],
                ),
                "not supported",
            ),
            (
                file(
                    r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}}"#,
                    &[0; 8],
                ),
                "overlap",
            ),
            (
                file(
                    r#"{"a":{"dtype":"F32","shape":[18446744073709551615, 4],"data_offsets":[0,4]}}"#,
                    &[0; 4],
                ),
                "overflows",
            ),
            (file(r#"{"a":"#, &[]), "not valid JSON"),
            (vec![1, 2, 3], "shorter"),
            (
                {
                    let mut v = file("{}", &[]);
                    v[0] = 200;
                    v
                },
                "larger than the file",
            ),
        ];
        for (bytes, want) in cases {
            let err = parse_bytes(&bytes).unwrap_err();
            assert!(err.contains(want), "{err} should contain {want}");
        }
    }
}

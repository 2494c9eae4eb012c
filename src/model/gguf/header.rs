//! The GGUF header parser: pure (std only), so the fuzz target can build it alone.
//!
//! A defensive reader for GGUF files (llama.cpp's model format), versions 2 and 3.
//!
//! Layout: magic `GGUF`, version, tensor count, metadata count, the metadata key/value pairs, the tensor
//! infos (name, dims, type, offset), padding to `general.alignment`, then the tensor data. Every count and
//! length read from the file is checked against the bytes that remain before anything is allocated from
//! it; tensor data ranges are checked against the file length.

use std::collections::BTreeMap;
use std::io::Read;

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Any unsigned integer type.
    U(u64),
    /// Any signed integer type.
    I(i64),
    /// f32 or f64.
    F(f64),
    /// bool.
    Bool(bool),
    /// UTF-8 string.
    Str(String),
    /// Array of values.
    Array(Vec<Value>),
}

impl Value {
    /// As an unsigned integer, if it is a non-negative integer.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U(u) => Some(u),
            Value::I(i) => u64::try_from(i).ok(),
            _ => None,
        }
    }
    /// As a float, if numeric.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::U(u) => Some(u as f64),
            Value::I(i) => Some(i as f64),
            Value::F(f) => Some(f),
            _ => None,
        }
    }
    /// As a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
    /// As a bool.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }
    /// As an array.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
}

/// A tensor type this reader knows, with its block geometry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TensorType {
    /// The ggml type id.
    pub id: u32,
    /// Its name (as llama.cpp prints it).
    pub name: &'static str,
    /// Elements per block.
    pub block: usize,
    /// Bytes per block.
    pub bytes: usize,
}

const TYPES: [TensorType; 15] = [
    TensorType {
        id: 0,
        name: "F32",
        block: 1,
        bytes: 4,
    },
    TensorType {
        id: 1,
        name: "F16",
        block: 1,
        bytes: 2,
    },
    TensorType {
        id: 2,
        name: "Q4_0",
        block: 32,
        bytes: 18,
    },
    TensorType {
        id: 3,
        name: "Q4_1",
        block: 32,
        bytes: 20,
    },
    TensorType {
        id: 6,
        name: "Q5_0",
        block: 32,
        bytes: 22,
    },
    TensorType {
        id: 7,
        name: "Q5_1",
        block: 32,
        bytes: 24,
    },
    TensorType {
        id: 8,
        name: "Q8_0",
        block: 32,
        bytes: 34,
    },
    TensorType {
        id: 9,
        name: "Q8_1",
        block: 32,
        bytes: 36,
    },
    TensorType {
        id: 10,
        name: "Q2_K",
        block: 256,
        bytes: 84,
    },
    TensorType {
        id: 11,
        name: "Q3_K",
        block: 256,
        bytes: 110,
    },
    TensorType {
        id: 12,
        name: "Q4_K",
        block: 256,
        bytes: 144,
    },
    TensorType {
        id: 13,
        name: "Q5_K",
        block: 256,
        bytes: 176,
    },
    TensorType {
        id: 14,
        name: "Q6_K",
        block: 256,
        bytes: 210,
    },
    TensorType {
        id: 15,
        name: "Q8_K",
        block: 256,
        bytes: 292,
    },
    TensorType {
        id: 30,
        name: "BF16",
        block: 1,
        bytes: 2,
    },
];

impl TensorType {
    /// Looks a type id up.
    pub fn from_id(id: u32) -> Option<Self> {
        TYPES.iter().copied().find(|t| t.id == id)
    }
}

/// One tensor's info, with its absolute data range.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    /// Shape in row-major order (GGUF stores dimensions fastest first; this is reversed).
    pub shape: Vec<usize>,
    /// Element type.
    pub ty: TensorType,
    /// Absolute file offset of the data.
    pub start: u64,
    /// Byte length of the data.
    pub len: u64,
}

/// A parsed, validated GGUF header.
#[derive(Debug, Clone, Default)]
pub struct Header {
    /// Format version (2 or 3).
    pub version: u32,
    /// Metadata by key.
    pub metadata: BTreeMap<String, Value>,
    /// Tensors by name.
    pub tensors: BTreeMap<String, TensorInfo>,
}

impl Header {
    /// A metadata value by key.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.get(key)
    }
}

struct Cursor<R> {
    inner: R,
    pos: u64,
    len: u64,
}

impl<R: Read> Cursor<R> {
    fn remaining(&self) -> u64 {
        self.len - self.pos
    }
    fn bytes(&mut self, n: u64, what: &str) -> Result<Vec<u8>, String> {
        if n > self.remaining() {
            return Err(format!(
                "{what}: length {n} at byte {} runs past the end of the file ({} bytes); the file is truncated or corrupt",
                self.pos, self.len
            ));
        }
        let mut v = vec![0u8; n as usize];
        self.inner
            .read_exact(&mut v)
            .map_err(|e| format!("{what}: read failed at byte {}: {e}", self.pos))?;
        self.pos += n;
        Ok(v)
    }
    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], String> {
        let v = self.bytes(N as u64, what)?;
        Ok(v.try_into().expect("length checked"))
    }
    fn u32(&mut self, what: &str) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    fn u64(&mut self, what: &str) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }
    fn string(&mut self, what: &str) -> Result<String, String> {
        let n = self.u64(what)?;
        let b = self.bytes(n, what)?;
        String::from_utf8(b).map_err(|_| format!("{what}: string is not valid UTF-8"))
    }
    fn value(&mut self, ty: u32, key: &str, depth: u32) -> Result<Value, String> {
        Ok(match ty {
            0 => Value::U(u64::from(self.array::<1>(key)?[0])),
            1 => Value::I(i64::from(i8::from_le_bytes(self.array(key)?))),
            2 => Value::U(u64::from(u16::from_le_bytes(self.array(key)?))),
            3 => Value::I(i64::from(i16::from_le_bytes(self.array(key)?))),
            4 => Value::U(u64::from(self.u32(key)?)),
            5 => Value::I(i64::from(i32::from_le_bytes(self.array(key)?))),
            6 => Value::F(f64::from(f32::from_le_bytes(self.array(key)?))),
            7 => match self.array::<1>(key)?[0] {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => {
                    return Err(format!(
                        "metadata '{key}': bool byte {b} is neither 0 nor 1"
                    ));
                }
            },
            8 => Value::Str(self.string(key)?),
            9 => {
                if depth > 0 {
                    return Err(format!("metadata '{key}': nested arrays are not supported"));
                }
                let elem = self.u32(key)?;
                let count = self.u64(key)?;
                // Every element takes at least one byte (strings at least eight): bound the count
                // by what is left before reserving anything.
                let min = match elem {
                    0 | 1 | 7 => 1,
                    2 | 3 => 2,
                    4..=6 => 4,
                    _ => 8,
                };
                if count.saturating_mul(min) > self.remaining() {
                    return Err(format!(
                        "metadata '{key}': array of {count} elements runs past the end of the file"
                    ));
                }
                let mut out = Vec::with_capacity(count as usize);
                for _ in 0..count {
                    out.push(self.value(elem, key, depth + 1)?);
                }
                Value::Array(out)
            }
            10 => Value::U(self.u64(key)?),
            11 => Value::I(i64::from_le_bytes(self.array(key)?)),
            12 => Value::F(f64::from_le_bytes(self.array(key)?)),
            t => return Err(format!("metadata '{key}': unknown value type {t}")),
        })
    }
}

/// Parses and validates a GGUF header from `reader`, positioned at the start of a file of `len` bytes.
/// Pure apart from reading; used by [`read_header`] and by the fuzz target.
pub fn parse_header<R: Read>(reader: R, len: u64) -> Result<Header, String> {
    let mut c = Cursor {
        inner: reader,
        pos: 0,
        len,
    };
    let magic = c
        .array::<4>("magic")
        .map_err(|_| "file is shorter than a GGUF header; not a GGUF file".to_string())?;
    if &magic != b"GGUF" {
        return Err("bad magic (expected 'GGUF'); not a GGUF file".into());
    }
    let version = c.u32("version")?;
    if !(2..=3).contains(&version) {
        return Err(format!(
            "GGUF version {version} is not supported (versions 2 and 3 are)"
        ));
    }
    let n_tensors = c.u64("tensor count")?;
    let n_kv = c.u64("metadata count")?;
    // A key/value pair takes at least 8 + 4 + 1 bytes; a tensor info at least 8 + 4 + 8 + 4 + 8.
    if n_kv.saturating_mul(13) > c.remaining() || n_tensors.saturating_mul(32) > c.remaining() {
        return Err(format!(
            "header claims {n_kv} metadata entries and {n_tensors} tensors, more than the file can hold"
        ));
    }
    let mut header = Header {
        version,
        ..Header::default()
    };
    for _ in 0..n_kv {
        let key = c.string("metadata key")?;
        let ty = c.u32(&key)?;
        let value = c.value(ty, &key, 0)?;
        if header.metadata.insert(key.clone(), value).is_some() {
            return Err(format!("metadata key '{key}' appears twice"));
        }
    }
    let alignment = match header.get("general.alignment") {
        None => 32,
        Some(v) => match v.as_u64() {
            Some(a) if a > 0 && a.is_power_of_two() && a <= 1 << 20 => a,
            _ => return Err("general.alignment is not a power of two".into()),
        },
    };
    let mut raw = Vec::with_capacity(n_tensors as usize);
    for _ in 0..n_tensors {
        let name = c.string("tensor name")?;
        let n_dims = c.u32(&name)?;
        if n_dims == 0 || n_dims > 4 {
            return Err(format!(
                "tensor '{name}': {n_dims} dimensions (1 to 4 are allowed)"
            ));
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            dims.push(c.u64(&name)?);
        }
        let type_id = c.u32(&name)?;
        let offset = c.u64(&name)?;
        raw.push((name, dims, type_id, offset));
    }
    let data_start = c.pos.div_ceil(alignment) * alignment;
    for (name, dims, type_id, offset) in raw {
        let ty = TensorType::from_id(type_id).ok_or_else(|| {
            format!(
                "tensor '{name}': tensor type {type_id} is not supported (F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 and the K-quants are)"
            )
        })?;
        let numel = dims
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d))
            .filter(|&n| n <= len.saturating_mul(8))
            .ok_or_else(|| {
                format!("tensor '{name}': dimensions {dims:?} are too large for the file")
            })?;
        if dims[0] % ty.block as u64 != 0 {
            return Err(format!(
                "tensor '{name}': row length {} is not a multiple of the {} block size {}",
                dims[0], ty.name, ty.block
            ));
        }
        let bytes = numel / ty.block as u64 * ty.bytes as u64;
        // The specification requires every tensor's offset to be a multiple of the alignment.
        if offset % alignment != 0 {
            return Err(format!(
                "tensor '{name}': data offset {offset} is not a multiple of the file's {alignment}-byte alignment; the file is corrupt"
            ));
        }
        let start = data_start
            .checked_add(offset)
            .filter(|s| s.checked_add(bytes).is_some_and(|e| e <= len))
            .ok_or_else(|| {
                format!(
                    "tensor '{name}': data at offset {offset} ({bytes} bytes) lies past the end of the file ({len} bytes); the file is truncated or corrupt"
                )
            })?;
        let shape = dims.iter().rev().map(|&d| d as usize).collect();
        let info = TensorInfo {
            shape,
            ty,
            start,
            len: bytes,
        };
        if header.tensors.insert(name.clone(), info).is_some() {
            return Err(format!("tensor '{name}' appears twice"));
        }
    }
    Ok(header)
}

//! Fuzzes the safetensors header parser: any bytes must give a header or an error, never a panic or
//! an allocation sized from unchecked input.
#![no_main]

#[allow(dead_code, missing_docs)]
#[path = "../../src/model/safetensors/header.rs"]
mod header;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(h) = header::parse_bytes(data) {
        for t in h.tensors.values() {
            assert!(t.end <= data.len() as u64 && t.start <= t.end);
        }
    }
});

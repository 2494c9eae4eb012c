//! Fuzzes the GGUF header parser: any bytes must give a header or an error, never a panic, a hang or
//! an allocation sized from unchecked input.
#![no_main]

#[allow(dead_code, missing_docs)]
#[path = "../../src/model/gguf/header.rs"]
mod header;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(h) = header::parse_header(data, data.len() as u64) {
        for t in h.tensors.values() {
            assert!(t.start + t.len <= data.len() as u64);
        }
    }
});

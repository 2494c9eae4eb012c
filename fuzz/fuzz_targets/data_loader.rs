//! Fuzzes the data loader's error paths (the structural scan, then polars) for CSV and JSON
//! lines: any bytes give rows or an error that names a line and quotes nothing of the file;
//! never a panic. The first byte picks the format and separator.
#![no_main]

use phiprobe::data::{Format, ReadOptions};
use std::path::Path;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let (format, separator) = match pick % 4 {
        0 => (Format::Csv, b','),
        1 => (Format::Csv, b';'),
        2 => (Format::Csv, b'\t'),
        _ => (Format::Jsonl, b','),
    };
    let opts = ReadOptions {
        format,
        separator,
        missing: Vec::new(),
    };
    if let Err(e) = phiprobe::data::load::parse_rows(body.to_vec(), Path::new("d"), &opts) {
        phiprobe_fuzz::assert_no_marker(body, &e.to_string());
    }
});

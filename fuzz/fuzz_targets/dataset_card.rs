//! Fuzzes dataset-card parsing: any text gives a checked card or an error without a parser's
//! echo of the input (toml's source line, serde's quoted value); never a panic.
#![no_main]

use std::path::Path;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = phiprobe::data::DatasetCard::parse(text, Path::new("card.toml")) {
        phiprobe_fuzz::assert_plain(&e.to_string());
    }
});

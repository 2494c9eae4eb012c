//! Fuzzes the Hugging Face `config.json` reader: any bytes give a configuration whose numbers
//! are all in range, or an error without a parser's echo of the input; never a panic.
#![no_main]

use std::path::Path;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    match phiprobe::model::config::ArchConfig::from_hf(&json, Path::new("config.json")) {
        Ok(c) => {
            assert!(c.norm_eps.is_finite() && c.norm_eps > 0.0);
            assert!(c.layers > 0 && c.heads > 0 && c.kv_heads > 0);
        }
        Err(e) => phiprobe_fuzz::assert_plain(&e.to_string()),
    }
});

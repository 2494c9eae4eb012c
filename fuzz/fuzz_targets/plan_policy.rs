//! Fuzzes the parsers of every TOML a user hands phiprobe besides cards: probe plans, release
//! policies, determinations and canary plans. Any text gives a checked value or an error
//! without a parser's echo of the input; never a panic.
#![no_main]

use std::path::Path;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut messages = Vec::new();
    if let Err(e) = phiprobe::run::plan::Plan::parse(text, Path::new("plan.toml")) {
        messages.push(e.to_string());
    }
    if let Err(e) = phiprobe::gate::Policy::parse(text) {
        messages.push(e);
    }
    if let Err(e) = phiprobe::run::plan::parse_determination(data, Path::new("det.toml")) {
        messages.push(e.to_string());
    }
    match phiprobe::train::canary::Plan::parse(text) {
        Ok(p) => {
            if let Err(e) = p.validate() {
                messages.push(e);
            }
        }
        Err(e) => messages.push(e),
    }
    for m in &messages {
        phiprobe_fuzz::assert_plain(m);
    }
});

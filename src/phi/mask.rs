//! Masking of our own outputs: reports never carry raw identifiers.

use super::detect;
use sha2::{Digest, Sha256};

/// Replaces every detected PHI span with `[CATEGORY]`, e.g. `[SSN]`.
pub fn mask(text: &str) -> String {
    mask_spans(text, &detect(text))
}

fn mask_spans(text: &str, found: &[super::PhiMatch]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for m in found {
        out.push_str(&text[last..m.start]);
        out.push('[');
        out.push_str(&m.category.id().to_ascii_uppercase());
        out.push(']');
        last = m.end;
    }
    out.push_str(&text[last..]);
    out
}

/// First 12 hex digits of SHA-256(salt ‖ 0x00 ‖ value): a stable pseudonym that cannot be
/// reversed without the salt.
pub fn salted_hash(salt: &[u8], value: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(salt);
    h.update([0u8]);
    h.update(value);
    let digest = h.finalize();
    digest[..6].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_and_hashes() {
        assert_eq!(mask("SSN 123-45-6789 noted"), "SSN [SSN] noted");
        let a = salted_hash(b"s1", b"x");
        assert_eq!(a.len(), 12);
        assert_ne!(a, salted_hash(b"s2", b"x"));
        assert_eq!(a, salted_hash(b"s1", b"x"));
    }
}

//! Shared checks of the fuzz targets.

/// A marker planted in seed data files (in cells, not in the header): an error message about a
/// file that holds it must not repeat it. It stands for a patient's value: a name, an SSN, a
/// note.
pub const MARKER: &str = "QQ LEAK QQ";

/// Panics when `message` repeats the marker that `input` holds, or is not a plain message.
pub fn assert_no_marker(input: &[u8], message: &str) {
    let holds = input.windows(MARKER.len()).any(|w| w == MARKER.as_bytes());
    if holds {
        assert!(
            !message.contains(MARKER),
            "an error message repeats a value of its input: {message}"
        );
    }
    assert_plain(message);
}

/// Panics when `message` carries a parser's echo of its input: toml's source-line display
/// (`TOML parse error at line …` with the line itself) or serde's quoted value (`invalid type:
/// string "…"`), or is unbounded. Configuration names a message quotes on purpose (a column,
/// an attack, a format) are allowed.
pub fn assert_plain(message: &str) {
    for echo in [
        "TOML parse error",
        "invalid type: string \"",
        "invalid value: string \"",
        "unknown variant `",
    ] {
        assert!(!message.contains(echo), "a parser echo in: {message}");
    }
    assert!(
        message.len() <= 4096,
        "a message of {} bytes: {}",
        message.len(),
        message.chars().take(300).collect::<String>()
    );
}

//! Text from outside (campaign names from the API, error messages kept in the ledger) made safe
//! to print on a terminal: a control character in it could move the cursor, rewrite lines
//! already printed or change the terminal's settings.

use std::borrow::Cow;

/// `text` with control characters (ESC, CR, BEL, DEL and the C1 range) and bidirectional
/// overrides written as Rust escapes (`\u{1b}`, `\r`), and everything else as it is.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn unsafe_char(c: char) -> bool {
    // Bidirectional embeddings, overrides and isolates reorder the text around them.
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_the_rest_kept() {
        assert_eq!(
            printable("Summer\u{1b}[2J\r\u{7}sale"),
            "Summer\\u{1b}[2J\\r\\u{7}sale"
        );
        assert_eq!(printable("tab\there\n"), "tab\\there\\n");
        assert_eq!(printable("\u{9b}31m \u{7f}"), "\\u{9b}31m \\u{7f}");
        assert_eq!(printable("abc\u{202e}cba"), "abc\\u{202e}cba");
        assert!(matches!(
            printable("Diwali ऑफ़र 🎉"),
            Cow::Borrowed("Diwali ऑफ़र 🎉")
        ));
    }
}

//! Last line of defence for secrets: every text the program writes out (logs, error output, the
//! ledger, `status`) passes through `redact`, which replaces the registered API key, personal-data
//! key and database password in any encoded form: each part of the text is read as it would be
//! decoded (`%XX` of any byte in either case, JSON's `\u` and short escapes, Rust's `\u{..}`, `+`
//! for a space), mixed freely with plain characters, and compared with the secret.

use std::borrow::Cow;
use std::io::{self, Write};
use std::sync::RwLock;

use percent_encoding::percent_decode_str;
use tracing_subscriber::fmt::MakeWriter;

/// The secrets, as bytes: a database password may decode to bytes that are not UTF-8.
static SECRETS: RwLock<Vec<Vec<u8>>> = RwLock::new(Vec::new());

const MASK: &str = "[redacted]";

/// Shortest value masked: a shorter one would garble ordinary text without protecting
/// anything. The API key and the personal-data key are refused when shorter than their own
/// minimums, so they are registered only from those.
pub const MIN_MASKED_BYTES: usize = 4;

/// Adds a value that must never be printed; one shorter than [`MIN_MASKED_BYTES`] is skipped.
pub fn register(secret: &str) {
    register_bytes(secret.as_bytes());
}

/// Adds a key the job refuses when shorter than `min` bytes: a refused key is not registered,
/// so that the refusal (whose words the key may be part of) reads as written.
pub fn register_key(secret: &str, min: usize) {
    if secret.len() >= min {
        register(secret);
    }
}

fn register_bytes(secret: &[u8]) {
    if secret.len() < MIN_MASKED_BYTES {
        return;
    }
    let mut secrets = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    if !secrets.iter().any(|s| s == secret) {
        secrets.push(secret.to_vec());
    }
    // Longest first, so a secret that holds another is masked whole.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

/// Registers the password of a database URL, as written in the URL and decoded.
pub fn register_database_url(url: &str) {
    if let Ok(parsed) = url::Url::parse(url) {
        if let Some(password) = parsed.password() {
            register(password);
            register_bytes(&Cow::from(percent_decode_str(password)));
        }
    }
}

/// `text` with its `%XX` escapes decoded; a `%` not followed by two hex digits stays as it is.
pub fn percent_decode(text: &str) -> Result<String, std::str::Utf8Error> {
    percent_decode_str(text).decode_utf8().map(Cow::into_owned)
}

/// The byte of a `%XX` escape at the start of `text`, hex digits in either case.
fn percent_escape(text: &[u8]) -> Option<u8> {
    let unit = text.get(..3).filter(|unit| unit[0] == b'%')?;
    // A valid escape decodes to one byte; an invalid one is left as its three.
    let mut decoded = percent_encoding::percent_decode(unit);
    match (decoded.next(), decoded.next()) {
        (Some(byte), None) => Some(byte),
        _ => None,
    }
}

fn hex_digit(b: u8) -> Option<u8> {
    char::from(b).to_digit(16).map(|d| d as u8)
}

/// The value of the hex digits `text` holds, when they all are.
fn hex_value(text: &[u8]) -> Option<u32> {
    text.iter()
        .try_fold(0u32, |acc, b| Some(acc << 4 | u32::from(hex_digit(*b)?)))
}

/// The bytes an escape at the start of `text` stands for, and its length: `%XX`, a JSON escape
/// (`\uXXXX`, a surrogate pair as two, `\n`, `\"`, ...) or Rust's `\u{..}`.
fn escape(text: &[u8]) -> Option<(Vec<u8>, usize)> {
    if let Some(b) = percent_escape(text) {
        return Some((vec![b], 3));
    }
    let (&b'\\', rest) = text.split_first()? else {
        return None;
    };
    let short = |b: u8| Some((vec![b], 2));
    match *rest.first()? {
        b'"' | b'\\' | b'/' | b'\'' => short(rest[0]),
        b'n' => short(b'\n'),
        b'r' => short(b'\r'),
        b't' => short(b'\t'),
        b'b' => short(0x08),
        b'f' => short(0x0c),
        b'0' => short(0),
        b'u' if rest.get(1) == Some(&b'{') => {
            let close = rest.iter().take(9).position(|&b| b == b'}')?;
            let c = char::from_u32(hex_value(rest.get(2..close)?)?)?;
            Some((c.to_string().into_bytes(), close + 2))
        }
        b'u' => {
            let unit = hex_value(rest.get(1..5)?)?;
            let (code, len) = match unit {
                0xd800..=0xdbff => {
                    let low = match text.get(6..12)? {
                        [b'\\', b'u', hex @ ..] => hex_value(hex)?,
                        _ => return None,
                    };
                    if !(0xdc00..=0xdfff).contains(&low) {
                        return None;
                    }
                    (0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00), 12)
                }
                _ => (unit, 6),
            };
            Some((char::from_u32(code)?.to_string().into_bytes(), len))
        }
        _ => None,
    }
}

/// Where a spelling of `secret` that starts at `text[0]` ends, read unit by unit: an escape
/// decoded, a `+` as a space, or a plain byte.
fn spelled(text: &[u8], secret: &[u8]) -> Option<usize> {
    let (mut i, mut k) = (0, 0);
    while k < secret.len() {
        let rest = text.get(i..).filter(|r| !r.is_empty())?;
        if let Some((bytes, len)) = escape(rest).filter(|(b, _)| secret[k..].starts_with(b)) {
            i += len;
            k += bytes.len();
        } else if rest[0] == secret[k] || (rest[0] == b'+' && secret[k] == b' ') {
            i += 1;
            k += 1;
        } else {
            return None;
        }
    }
    Some(i)
}

/// `text` for a line of output or a text column: secrets masked, then control characters
/// escaped (a NUL cannot be stored, an ESC would drive a terminal), then cut to `max` characters.
pub fn clean(text: &str, max: usize) -> String {
    let masked = redact(text);
    let printable = crate::output::terminal::printable(&masked);
    match printable.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &printable[..cut]),
        None => printable.into_owned(),
    }
}

pub fn redact(text: &str) -> String {
    let secrets = SECRETS.read().unwrap_or_else(|e| e.into_inner());
    if secrets.is_empty() {
        return text.to_owned();
    }
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while let Some(c) = text[i..].chars().next() {
        let end = secrets
            .iter()
            .filter_map(|s| spelled(&bytes[i..], s))
            .map(|len| i + len)
            .filter(|&end| text.is_char_boundary(end))
            .max();
        match end {
            Some(end) => {
                out.push_str(MASK);
                i = end;
            }
            None => {
                out.push(c);
                i += c.len_utf8();
            }
        }
    }
    out
}

/// Standard error, redacted.
pub struct RedactedStderr;

impl Write for RedactedStderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // tracing's fmt layer writes each event whole, so a secret is never split across calls.
        let text = String::from_utf8_lossy(buf);
        io::stderr().write_all(redact(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

impl<'a> MakeWriter<'a> for RedactedStderr {
    type Writer = RedactedStderr;

    fn make_writer(&'a self) -> Self::Writer {
        RedactedStderr
    }
}

/// Panics print a redacted message, never a raw payload.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        eprintln!(
            "linkrunner-sync: internal error (please report): {}",
            redact(&info.to_string()).replace('\n', " ")
        );
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_values_are_masked() {
        register("canary-unit-secret");
        register_database_url("postgres://u:p%40ss-canary@h/db");
        assert_eq!(redact("key=canary-unit-secret!"), "key=[redacted]!");
        assert_eq!(
            redact("pw p@ss-canary and p%40ss-canary"),
            "pw [redacted] and [redacted]"
        );
        register("abc");
        assert_eq!(redact("abc"), "abc");
    }

    #[test]
    fn escaped_forms_are_masked_too() {
        register(r#"k"e\y/with+odd"#);
        assert_eq!(
            redact(r#"{"msg":"k\"e\\y/with+odd"}"#),
            r#"{"msg":"[redacted]"}"#
        );
        assert_eq!(redact("?key=k%22e%5Cy%2Fwith%2Bodd"), "?key=[redacted]");
    }

    #[test]
    fn every_encoded_spelling_is_masked() {
        let key = "Sk_a-b.c~d/e+f g\u{e9}\u{1f600}z";
        register(key);
        let spellings = [
            key.to_owned(),
            url::form_urlencoded::byte_serialize(key.as_bytes()).collect(),
            // Every byte escaped, in lower case, then in upper case.
            key.bytes().map(|b| format!("%{b:02x}")).collect(),
            key.bytes().map(|b| format!("%{b:02X}")).collect(),
            // Only some escaped, mixed with plain characters.
            "Sk%5Fa%2db.c%7ed%2Fe%2bf+g%C3%a9%F0%9F%98%80z".to_owned(),
            "Sk_a-b.c~d/e+f%20g\u{e9}%f0%9f%98%80z".to_owned(),
            // JSON: the slash and every character as \u escapes, the emoji as a surrogate pair.
            r"Sk_a-b.c~d\/e+f g\u00e9\ud83d\ude00z".to_owned(),
            key.encode_utf16().map(|u| format!("\\u{u:04X}")).collect(),
            // Rust's debug form.
            r"Sk\u{5f}a-b.c~d/e+f g\u{e9}\u{1f600}z".to_owned(),
        ];
        for spelling in spellings {
            assert_eq!(
                redact(&format!("x={spelling}&")),
                "x=[redacted]&",
                "{spelling}"
            );
        }
        // Not the key: one byte off, or an escape of another byte.
        for other in ["Sk%5Ea-b.c~d/e+f g\u{e9}\u{1f600}z", "Sk_a-b.c~d/e+f gé😀Z"] {
            assert_eq!(redact(other), other);
        }
        register("ab_cd");
        assert_eq!(
            redact("ab%5Fcd ab%5fcd ab\\u005fcd"),
            "[redacted] [redacted] [redacted]"
        );
    }

    #[test]
    fn a_percent_sign_that_starts_no_escape_stays_as_it_is() {
        assert_eq!(percent_decode("a%5F%2db%7e").unwrap(), "a_-b~");
        assert_eq!(percent_decode("100%zz%4").unwrap(), "100%zz%4");
        assert!(percent_decode("%ff").is_err());
        // A password whose `%` starts no escape: masked as written, and with the `%` escaped.
        register_database_url("postgres://u:pw%zz-canary%4@h/db");
        assert_eq!(
            redact("a pw%zz-canary%4 b pw%25zz-canary%254 c"),
            "a [redacted] b [redacted] c"
        );
        assert_eq!(redact("pw%zz-canary%5"), "pw%zz-canary%5");
    }

    #[test]
    fn clean_text_is_masked_before_it_is_cut() {
        register("canary-clean-secret");
        assert_eq!(clean("ab canary-clean-secret", 5), "ab [r…");
        assert_eq!(clean("a\0b\u{1b}[2J\n", 80), "a\\0b\\u{1b}[2J\\n");
    }
}

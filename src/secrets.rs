//! Last line of defence for secrets: every text the program writes out (logs, error output, the
//! ledger, `status`) passes through `redact`, which replaces the registered API key and database
//! password, in the forms they take once escaped for JSON or a URL too.

use std::io::{self, Write};
use std::sync::RwLock;

use tracing_subscriber::fmt::MakeWriter;

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

const MASK: &str = "[redacted]";

/// Adds a value that must never be printed. Very short values are skipped: masking them would
/// garble ordinary text without protecting anything.
pub fn register(secret: &str) {
    if secret.len() < 4 {
        return;
    }
    let json = serde_json::to_string(secret).expect("a string serializes");
    let forms = [
        secret.to_owned(),
        json[1..json.len() - 1].to_owned(),
        url::form_urlencoded::byte_serialize(secret.as_bytes()).collect(),
        format!("{secret:?}").trim_matches('"').to_owned(),
    ];
    let mut secrets = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    for form in forms {
        if !secrets.contains(&form) {
            secrets.push(form);
        }
    }
    // Longest first, so a form that holds another is masked whole.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

/// Registers the password of a database URL, and the URL itself.
pub fn register_database_url(url: &str) {
    if let Ok(parsed) = url::Url::parse(url) {
        if let Some(password) = parsed.password() {
            register(password);
            // The URL form is percent-encoded; the decoded password may differ.
            if let Ok(decoded) = percent_decode(password) {
                register(&decoded);
            }
        }
    }
}

/// `text` with its `%XX` escapes decoded.
pub fn percent_decode(text: &str) -> Result<String, std::string::FromUtf8Error> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out)
}

/// `text` for a line of output or a text column: secrets masked, then control characters
/// escaped (a NUL cannot be stored, an ESC would drive a terminal), then cut to `max` characters.
pub fn clean(text: &str, max: usize) -> String {
    let masked = redact(text);
    let printable = crate::terminal::printable(&masked);
    match printable.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &printable[..cut]),
        None => printable.into_owned(),
    }
}

pub fn redact(text: &str) -> String {
    let secrets = SECRETS.read().unwrap_or_else(|e| e.into_inner());
    secrets.iter().fold(text.to_owned(), |acc, secret| {
        acc.replace(secret.as_str(), MASK)
    })
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
    fn clean_text_is_masked_before_it_is_cut() {
        register("canary-clean-secret");
        assert_eq!(clean("ab canary-clean-secret", 5), "ab [r…");
        assert_eq!(clean("a\0b\u{1b}[2J\n", 80), "a\\0b\\u{1b}[2J\\n");
    }
}

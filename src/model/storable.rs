//! The one rule for text Postgres cannot store, for rows and campaigns alike.
//!
//! An item (a row or a campaign of the list) is stored only if all of its text can be: no NUL
//! character (`\u0000`: text and jsonb refuse it), no lone UTF-16 surrogate escape (jsonb refuses
//! `"\ud83d"`), no byte that was not UTF-8 (the body escapes each as `\udcXX`, see
//! `api::models::Page::parse`), and no key longer than [`MAX_KEY_BYTES`] (a btree entry holds
//! about 2,700 bytes). An item that breaks the rule is kept in `rejected_rows` with the reason
//! and its text as received; the items beside it are stored.
//!
//! The check reads only the escapes of the item's JSON text: an item without a backslash costs
//! one `memchr`-style search, and no item is parsed a second time.

use std::borrow::Cow;
use std::fmt;

/// The longest key (user id, row key, campaign `display_id`, store listing id) stored, in bytes
/// of UTF-8. Well below a btree entry's limit (about 2,700 bytes) even with two keys in one
/// entry, as in `attributed_users`' primary key.
pub const MAX_KEY_BYTES: usize = 1024;

/// What makes an item's JSON text unstorable; several can hold at once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Problems {
    pub nul: bool,
    pub lone_surrogate: bool,
    pub not_utf8: bool,
}

impl Problems {
    pub fn any(self) -> bool {
        self.nul || self.lone_surrogate || self.not_utf8
    }

    fn add(&mut self, kind: Kind) {
        match kind {
            Kind::Nul => self.nul = true,
            Kind::LoneSurrogate => self.lone_surrogate = true,
            Kind::NotUtf8 => self.not_utf8 = true,
        }
    }
}

impl fmt::Display for Problems {
    /// The reason kept in `rejected_rows`.
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let mut parts = Vec::new();
        if self.nul {
            parts.push("\\u0000 (a NUL character)");
        }
        if self.lone_surrogate {
            parts.push("a lone UTF-16 surrogate escape (half of a character, e.g. \\ud83d)");
        }
        if self.not_utf8 {
            parts.push("bytes that are not UTF-8 (each kept as the escape \\udcXX of byte 0xXX)");
        }
        write!(
            f,
            "holds {}, which Postgres text and jsonb cannot store; raw_text has the item as \
             received, raw the same with each such escape written as text",
            parts.join(" and ")
        )
    }
}

/// The reason for a key over [`MAX_KEY_BYTES`].
pub fn long_key_reason(what: &str, bytes: usize) -> String {
    format!(
        "{what} is {bytes} bytes; keys over {MAX_KEY_BYTES} bytes are not stored (Postgres \
         cannot index them)"
    )
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Nul,
    LoneSurrogate,
    NotUtf8,
}

/// What in `json`, the text of one valid JSON value, Postgres cannot store. `recoded` says the
/// text comes from a body that was not UTF-8, whose bad bytes became `\udc80`..`\udcff`: there
/// such an escape is taken for a byte even where it follows a high surrogate escape (it may
/// have paired with one the server sent lone).
pub fn problems(json: &str, recoded: bool) -> Problems {
    let mut found = Problems::default();
    for (_, kind) in bad_escapes(json, recoded) {
        found.add(kind);
    }
    found
}

/// `json` with the backslash of each escape Postgres cannot store doubled, so that it reads as
/// the six characters of the escape: what `rejected_rows.raw` keeps.
pub fn readable(json: &str, recoded: bool) -> Cow<'_, str> {
    let mut escapes = bad_escapes(json, recoded).peekable();
    if escapes.peek().is_none() {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 16);
    let mut from = 0;
    for (at, _) in escapes {
        out.push_str(&json[from..at]);
        out.push('\\');
        from = at;
    }
    out.push_str(&json[from..]);
    Cow::Owned(out)
}

/// Where each `\u` escape Postgres cannot store starts, and why. In valid JSON a backslash
/// appears only in a string and always starts an escape, so escapes are read one after another
/// from backslash to backslash.
fn bad_escapes(json: &str, recoded: bool) -> impl Iterator<Item = (usize, Kind)> + '_ {
    let bytes = json.as_bytes();
    let mut at = 0;
    // The second of two found at once.
    let mut pending = None;
    std::iter::from_fn(move || loop {
        if let Some(found) = pending.take() {
            return Some(found);
        }
        let start = at + json.get(at..)?.find('\\')?;
        let Some(unit) = unit_at(bytes, start) else {
            at = start + 2;
            continue;
        };
        at = start + 6;
        let kind = match unit {
            0 => Kind::Nul,
            0xd800..=0xdbff => match unit_at(bytes, start + 6) {
                Some(low @ 0xdc00..=0xdfff) => {
                    at = start + 12;
                    if !(recoded && is_escaped_byte(low)) {
                        continue;
                    }
                    // The server sent the high half lone, and a byte that was not UTF-8 after it.
                    pending = Some((start + 6, Kind::NotUtf8));
                    Kind::LoneSurrogate
                }
                _ => Kind::LoneSurrogate,
            },
            0xdc00..=0xdfff if recoded && is_escaped_byte(unit) => Kind::NotUtf8,
            0xdc00..=0xdfff => Kind::LoneSurrogate,
            _ => continue,
        };
        return Some((start, kind));
    })
}

/// The code unit of the `\uXXXX` escape at `at`, if one starts there.
fn unit_at(bytes: &[u8], at: usize) -> Option<u16> {
    let escape = bytes.get(at..at + 6)?;
    if escape[0] != b'\\' || escape[1] != b'u' {
        return None;
    }
    let hex = std::str::from_utf8(&escape[2..]).ok()?;
    u16::from_str_radix(hex, 16).ok()
}

/// Whether a low surrogate is one a byte that was not UTF-8 becomes (PEP 383's
/// "surrogateescape": byte 0xXX, always 0x80 or more, to U+DCXX).
fn is_escaped_byte(unit: u16) -> bool {
    (0xdc80..=0xdcff).contains(&unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_real_escapes_count() {
        // JSON text as it arrives: `\u0000` is a NUL; `\\u0000` is a backslash and "u0000".
        let cases = [
            (r#"{"a":"x\u0000y"}"#, true),
            (r#"{"a":"x\\u0000y"}"#, false),
            (r#"{"a":"x\\\u0000y"}"#, true),
            (r#"{"a\u0000":1}"#, true),
            (r#"{"a":"\u00001"}"#, true),
            (r#"{"a":"u0000 \u0001"}"#, false),
            (r#"{"a":"\"\\\/\b\f\n\r\t"}"#, false),
        ];
        for (text, nul) in cases {
            assert_eq!(problems(text, false).nul, nul, "{text}");
            let readable = readable(text, false);
            assert!(!problems(&readable, false).any(), "{readable}");
            // Only the NULs change: each becomes the six characters \u0000.
            let value: serde_json::Value = serde_json::from_str(&readable).unwrap();
            let original: serde_json::Value = serde_json::from_str(text).unwrap();
            let as_text = original.to_string().replace("\\u0000", "\\\\u0000");
            let expected = if nul { as_text } else { original.to_string() };
            assert_eq!(value.to_string(), expected, "{text}");
        }
    }

    #[test]
    fn surrogates_count_only_when_lone() {
        let lone = |t: &str| problems(t, false).lone_surrogate;
        assert!(lone(r#""Zo\ud83d""#));
        assert!(lone(r#""\ud83d x""#));
        assert!(lone(r#""\ude00""#));
        assert!(lone(r#""\ud83d\ud83d\ude00""#));
        assert!(lone(r#""\uDE00\uD83D""#));
        assert!(!lone(r#""\ud83d\ude00""#));
        assert!(!lone(r#""\uD83D\uDE00 \u00e9""#));
        assert!(!lone(r#""\\ud83d""#));
        assert_eq!(
            readable(r#""Zo\ud83d \ud83d\ude00""#, false),
            r#""Zo\\ud83d \ud83d\ude00""#
        );
    }

    #[test]
    fn escaped_bytes_count_in_recoded_text_even_when_paired() {
        let text = r#""\udcff \ud83d\udc80 \udc00""#;
        assert_eq!(
            problems(text, true),
            Problems {
                nul: false,
                lone_surrogate: true,
                not_utf8: true
            }
        );
        // Outside a recoded body the pair is a character (U+1F480).
        assert_eq!(
            problems(text, false),
            Problems {
                nul: false,
                lone_surrogate: true,
                not_utf8: false
            }
        );
        assert_eq!(readable(text, true), r#""\\udcff \\ud83d\\udc80 \\udc00""#);
        assert!(problems(&readable(text, true), true) == Problems::default());
    }

    #[test]
    fn reasons_name_each_problem() {
        let reason = problems(r#""\u0000\ud800""#, false).to_string();
        assert!(
            reason.contains("NUL") && reason.contains("surrogate"),
            "{reason}"
        );
        assert!(long_key_reason("user_data.id", 3000).contains("3000 bytes"));
    }

    mod properties {
        use super::*;
        use crate::testing::any_json;
        use proptest::prelude::*;

        proptest! {
            /// Whatever a value holds, what the check passes Postgres's rules pass too: serde_json
            /// (which refuses lone surrogates as Postgres does) reads the readable form, and it
            /// holds no NUL.
            #[test]
            fn the_readable_form_is_storable(value in any_json(), unit in any::<u16>(), recoded in any::<bool>()) {
                let text = format!(r#"[{value},"a\u{unit:04x}b","\ud83d\u{unit:04x}"]"#);
                let readable = readable(&text, recoded);
                prop_assert!(!problems(&readable, recoded).any());
                let parsed: Result<serde_json::Value, _> = serde_json::from_str(&readable);
                prop_assert!(parsed.is_ok(), "{}", readable);
                // serde_json writes a NUL as the escape again.
                prop_assert!(!problems(&parsed.unwrap().to_string(), false).nul);
            }

            /// Text the check passes has no lone surrogate: serde_json reads it.
            #[test]
            fn passed_text_parses(unit in any::<u16>(), next in any::<u16>()) {
                let text = format!(r#""\u{unit:04x}\u{next:04x}""#);
                let bad = problems(&text, false);
                let parsed = serde_json::from_str::<String>(&text);
                prop_assert_eq!(bad.lone_surrogate, parsed.is_err(), "{}", text);
                prop_assert_eq!(bad.nul, parsed.is_ok_and(|s| s.contains('\0')), "{}", text);
            }
        }
    }
}

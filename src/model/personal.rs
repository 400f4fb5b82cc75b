//! Personal data at the door (`--personal-data`): each item the API sends is rewritten before
//! anything reads, stores or logs it, so in `hash` and `drop` modes no name, email or phone
//! reaches the warehouse as sent.
//!
//! Only the named keys change, in every object of the item at any depth (arrays included); every
//! other byte of the item is kept as received (numbers past `f64`, key order, duplicate keys).

use std::fmt::Write as _;

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

/// What happens to personal values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Store them as received.
    Keep,
    /// Replace each with its HMAC-SHA-256 under `LINKRUNNER_PII_KEY`, after normalising it.
    Hash,
    /// Remove them.
    Drop,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Keep => "keep",
            Mode::Hash => "hash",
            Mode::Drop => "drop",
        }
    }

    pub fn parse(text: &str) -> Option<Mode> {
        [Mode::Keep, Mode::Hash, Mode::Drop]
            .into_iter()
            .find(|m| m.name() == text)
    }
}

/// The keys the API documents as personal data.
pub const DEFAULT_KEYS: [&str; 3] = ["name", "email", "phone"];

/// The keys that make a row's key: hashing them would make rows of one person many.
const IDENTITY_KEYS: [&str; 2] = ["id", "device_data"];

/// Shortest `LINKRUNNER_PII_KEY` taken: a short key lets anyone with the table try every
/// likely email.
pub const MIN_KEY_BYTES: usize = 16;

/// The mode, the keys it covers, and the key hashes are made with.
#[derive(Clone, Debug)]
pub struct Protection {
    pub mode: Mode,
    pub keys: Vec<String>,
    secret: Option<SecretString>,
}

impl Default for Protection {
    fn default() -> Self {
        Protection {
            mode: Mode::Keep,
            keys: DEFAULT_KEYS.map(String::from).to_vec(),
            secret: None,
        }
    }
}

/// Text that is not a JSON object.
#[derive(Debug)]
pub struct NotAnObject;

/// What the door made of an item.
pub enum Door {
    /// The item as it came: nothing in it is personal.
    Pass(Box<RawValue>),
    /// The item rewritten, and the item as it came (its row key may hash it).
    Rewritten {
        item: Box<RawValue>,
        original: Box<RawValue>,
    },
    /// An item that could not be read closely enough to rewrite; it is set aside with this
    /// text in place of its own.
    Withheld(String),
}

impl Protection {
    /// Checks the flags: keys plain and non-empty, and a long enough secret for `hash`.
    pub fn new(
        mode: Mode,
        keys: Vec<String>,
        secret: Option<SecretString>,
    ) -> Result<Protection, String> {
        if keys.is_empty() {
            return Err("--personal-data-keys names no key".into());
        }
        if let Some(bad) = keys
            .iter()
            .find(|k| k.is_empty() || k.len() > 200 || k.chars().any(char::is_control))
        {
            return Err(format!(
                "--personal-data-keys: '{}' is not a key (a user_data key such as email)",
                bad.escape_default()
            ));
        }
        if let Some(key) = keys.iter().find(|k| IDENTITY_KEYS.contains(&k.as_str())) {
            return Err(format!(
                "--personal-data-keys cannot name '{key}': it identifies the row (use forget to \
                 erase a person)"
            ));
        }
        let secret = secret.filter(|s| !s.expose_secret().is_empty());
        if mode == Mode::Hash && secret.is_none() {
            return Err(
                "--personal-data hash needs LINKRUNNER_PII_KEY (a secret of at least 16 bytes; \
                 keep it: another key hashes the same person differently)"
                    .into(),
            );
        }
        if secret
            .as_ref()
            .is_some_and(|s| s.expose_secret().len() < MIN_KEY_BYTES)
        {
            return Err(format!(
                "LINKRUNNER_PII_KEY is shorter than {MIN_KEY_BYTES} bytes"
            ));
        }
        Ok(Protection { mode, keys, secret })
    }

    /// A value that tells keys apart without revealing one: this schema records it, so a run
    /// with another key is refused rather than hashing the same person two ways.
    pub fn key_check(&self) -> Option<String> {
        if self.mode == Mode::Keep {
            return None;
        }
        self.mac(b"linkrunner-sync: the personal-data key check")
    }

    /// The key of a row with no user or device id, from the hash of its content as received:
    /// keyed when personal values are hashed or dropped and a key is set, as the plain hash
    /// would let anyone confirm a guess of the whole row, its personal values included.
    pub fn content_key(&self, digest: &str) -> Option<String> {
        if self.mode == Mode::Keep {
            return None;
        }
        self.mac(digest.as_bytes()).map(|mac| format!("k:{mac}"))
    }

    /// The same mode over other keys, for rewriting what is stored.
    pub fn over(&self, keys: Vec<String>) -> Protection {
        Protection {
            keys,
            ..self.clone()
        }
    }

    /// A JSON object with the personal values among its members rewritten; None when it holds
    /// none, Err when it is not an object.
    pub fn rewrite_object(&self, text: &str) -> Result<Option<String>, NotAnObject> {
        self.rewrite(text, None).map_err(|()| NotAnObject)
    }

    /// A response body with the named keys rewritten at every depth, as text to keep: the body
    /// itself when nothing changes, a digest when it cannot be read.
    pub fn body(&self, text: String) -> String {
        if self.mode == Mode::Keep {
            return text;
        }
        match self.walk(&text) {
            Ok(None) => text,
            Ok(Some(rewritten)) => rewritten,
            Err(()) => self.withheld(&text),
        }
    }

    /// Normalises `value` as `key` says and hashes it; None when nothing is left.
    pub fn hash_value(&self, key: &str, value: &str) -> Option<String> {
        let normal = normalise(key, value);
        if normal.is_empty() {
            return None;
        }
        self.mac(normal.as_bytes())
    }

    /// The hashes `value` may be stored under: of its normal form, and of the earlier form
    /// where that differs (rows hashed before the normal form folded case keep theirs).
    pub fn hash_values(&self, key: &str, value: &str) -> Vec<String> {
        let mut all: Vec<String> = self.hash_value(key, value).into_iter().collect();
        if let Some(earlier) = earlier_form(key, value).filter(|e| !e.is_empty()) {
            all.extend(self.mac(earlier.as_bytes()));
        }
        all
    }

    fn mac(&self, data: &[u8]) -> Option<String> {
        let secret = self.secret.as_ref()?;
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes())
            .expect("HMAC takes a key of any length");
        mac.update(data);
        Some(hex::encode(mac.finalize().into_bytes()))
    }

    /// The item with its personal values hashed or removed.
    pub fn apply(&self, item: Box<RawValue>) -> Door {
        if self.mode == Mode::Keep {
            return Door::Pass(item);
        }
        match self.rewrite(item.get(), Some("user_data")) {
            Ok(None) => Door::Pass(item),
            Ok(Some(text)) => match RawValue::from_string(text) {
                Ok(rewritten) => Door::Rewritten {
                    item: rewritten,
                    original: item,
                },
                Err(_) => Door::Withheld(self.withheld(item.get())),
            },
            Err(()) => Door::Withheld(self.withheld(item.get())),
        }
    }

    /// The rewritten object, the named keys replaced at every depth; a member `nested` that is
    /// neither an object nor null is replaced by a note. None when it holds nothing to rewrite.
    fn rewrite(&self, item: &str, nested: Option<&str>) -> Result<Option<String>, ()> {
        let top = members(item)?;
        let mut changed = false;
        let mut out = Vec::with_capacity(top.len());
        for (key, value) in top {
            let odd = nested == Some(key.as_str())
                && !value.get().starts_with('{')
                && value.get() != "null";
            let value = if odd {
                // A user_data of another shape may hold anything: it is not kept.
                Member::Now(
                    serde_json::json!({
                        "withheld": format!("personal-data mode {}: user_data was not an object", self.mode.name())
                    })
                    .to_string(),
                )
            } else {
                self.member(&key, value)?
            };
            match value {
                Member::Same(v) => out.push((key, v.get().to_owned())),
                Member::Now(v) => {
                    changed = true;
                    out.push((key, v));
                }
                Member::Gone => changed = true,
            }
        }
        Ok(changed.then(|| object(&out)))
    }

    /// Any JSON value with the named keys of every object in it rewritten, in arrays too, at
    /// any depth; None when nothing changes, Err when it is not JSON. The one walk every stored
    /// body goes through.
    fn walk(&self, text: &str) -> Result<Option<String>, ()> {
        let value: &RawValue = serde_json::from_str(text).map_err(|_| ())?;
        self.walk_value(value)
    }

    fn walk_value(&self, value: &RawValue) -> Result<Option<String>, ()> {
        let text = value.get();
        // Without a backslash a key is spelled as it is, so a text naming no key holds none.
        if !text.contains('\\') && !self.keys.iter().any(|k| text.contains(k.as_str())) {
            return Ok(None);
        }
        match text.as_bytes().first() {
            Some(b'{') => self.rewrite(text, None),
            Some(b'[') => {
                let elements: Vec<&RawValue> = serde_json::from_str(text).map_err(|_| ())?;
                let mut changed = false;
                let mut out = Vec::with_capacity(elements.len());
                for element in elements {
                    match self.walk_value(element)? {
                        Some(now) => {
                            changed = true;
                            out.push(now);
                        }
                        None => out.push(element.get().to_owned()),
                    }
                }
                Ok(changed.then(|| format!("[{}]", out.join(","))))
            }
            _ => Ok(None),
        }
    }

    /// A member as kept: a named key hashed or gone, any other value walked.
    fn member<'a>(&self, key: &str, value: &'a RawValue) -> Result<Member<'a>, ()> {
        if !self.keys.iter().any(|k| k == key) {
            return Ok(match self.walk_value(value)? {
                Some(now) => Member::Now(now),
                None => Member::Same(value),
            });
        }
        if value.get() == "null" {
            return Ok(Member::Same(value));
        }
        Ok(match self.mode {
            Mode::Keep => Member::Same(value),
            Mode::Drop => Member::Gone,
            Mode::Hash => {
                // A string is hashed as its text; anything else (a phone sent as a number, an
                // object) as its JSON.
                let text = serde_json::from_str::<String>(value.get())
                    .unwrap_or_else(|_| value.get().to_owned());
                Member::Now(match self.hash_value(key, &text) {
                    Some(hash) => format!("\"{hash}\""),
                    None => "null".to_owned(),
                })
            }
        })
    }

    /// What is kept of an item that could not be rewritten: a digest to tell it apart from
    /// others, keyed when a key is set, so that guessing its contents cannot confirm them.
    pub fn withheld(&self, item: &str) -> String {
        let digest = self
            .mac(item.as_bytes())
            .unwrap_or_else(|| hex::encode(Sha256::digest(item.as_bytes())));
        serde_json::json!({
            "withheld": format!("personal-data mode {}: not readable enough to rewrite", self.mode.name()),
            "digest": digest,
        })
        .to_string()
    }
}

/// What identifies a person to `forget`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Identifier {
    UserId,
    Email,
    Phone,
}

impl Identifier {
    pub const ALL: [Identifier; 3] = [Identifier::UserId, Identifier::Email, Identifier::Phone];

    pub fn name(self) -> &'static str {
        match self {
            Identifier::UserId => "user_id",
            Identifier::Email => "email",
            Identifier::Phone => "phone",
        }
    }

    pub fn parse(text: &str) -> Option<Identifier> {
        Identifier::ALL.into_iter().find(|k| k.name() == text)
    }

    /// The value as compared: user ids exactly as given, emails and phones in the normal
    /// form.
    pub fn normalise(self, value: &str) -> String {
        match self {
            Identifier::UserId => value.to_owned(),
            Identifier::Email => normalise("email", value),
            Identifier::Phone => normalise("phone", value),
        }
    }

    /// What the suppression list keeps of a person: a SHA-256, never the value.
    pub fn digest(self, value: &str) -> String {
        digest_of(self, &self.normalise(value))
    }

    /// The digests a suppression entry for `value` may have been recorded under: of the
    /// normal form, and of the earlier form where that differs.
    pub fn digests(self, value: &str) -> Vec<String> {
        let mut all = vec![self.digest(value)];
        if self != Identifier::UserId {
            if let Some(earlier) = earlier_form(self.name(), value) {
                all.push(digest_of(self, &earlier));
            }
        }
        all
    }
}

fn digest_of(kind: Identifier, normal: &str) -> String {
    let text = format!("linkrunner-sync forget\n{}\n{normal}", kind.name());
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Whether `forget` has erased anyone in the schema, as a run reads it when it starts: the
/// list itself stays in Postgres, and only a run that has someone to drop asks it about each
/// page (`forget` cannot add to it while the run holds the lock).
#[derive(Clone, Copy, Debug, Default)]
pub struct Suppression {
    pub listed: bool,
}

impl Suppression {
    pub fn is_empty(&self) -> bool {
        !self.listed
    }
}

/// Of the entries of the suppression list, those a page's identifiers may match, as
/// `Suppressed::probes` asked Postgres for them.
#[derive(Clone, Debug, Default)]
pub struct Suppressed {
    digests: std::collections::HashSet<(Identifier, String)>,
}

impl Suppressed {
    pub fn new(entries: impl IntoIterator<Item = (Identifier, String)>) -> Suppressed {
        Suppressed {
            digests: entries.into_iter().collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    /// Every entry that would suppress one of `items`: the digests of their ids, emails and
    /// phones.
    pub fn probes<'a>(items: impl IntoIterator<Item = &'a RawValue>) -> Vec<(Identifier, String)> {
        let mut out = Vec::new();
        for item in items {
            identifiers(item, |kind, text| {
                out.extend(kind.digests(text).into_iter().map(|d| (kind, d)));
                false
            });
        }
        out
    }

    pub fn holds(&self, kind: Identifier, value: &str) -> bool {
        !self.digests.is_empty()
            && kind
                .digests(value)
                .into_iter()
                .any(|d| self.digests.contains(&(kind, d)))
    }

    /// Whether the item, as the API sent it, is a suppressed person's: by `user_data.id`,
    /// `email` or `phone`.
    pub fn matches(&self, item: &RawValue) -> bool {
        !self.digests.is_empty() && identifiers(item, |kind, text| self.holds(kind, text))
    }
}

/// Calls `f` with each identifier of the item's `user_data` until it says true.
fn identifiers(item: &RawValue, mut f: impl FnMut(Identifier, &str) -> bool) -> bool {
    let Ok(top) = members(item.get()) else {
        return false;
    };
    let Some((_, user_data)) = top.iter().find(|(k, _)| k == "user_data") else {
        return false;
    };
    let Ok(fields) = members(user_data.get()) else {
        return false;
    };
    fields.iter().any(|(key, value)| {
        let kind = match key.as_str() {
            "id" => Identifier::UserId,
            "email" => Identifier::Email,
            "phone" => Identifier::Phone,
            _ => return false,
        };
        if value.get() == "null" {
            return false;
        }
        let text =
            serde_json::from_str::<String>(value.get()).unwrap_or_else(|_| value.get().to_owned());
        f(kind, &text)
    })
}

enum Member<'a> {
    Same(&'a RawValue),
    Now(String),
    Gone,
}

/// White space as the normal form trims it: Unicode's, and the byte-order mark a file or a
/// form may leave at the start of a value.
fn is_space(c: char) -> bool {
    c.is_whitespace() || c == '\u{feff}'
}

/// The normal form of a personal value, the one `forget`, the suppression list, hashing and
/// the search for stored rows all use: Unicode white space (the byte-order mark too) trimmed
/// from both ends, then Unicode's full default case folding, so `Σ`, `σ` and `ς` are one
/// letter and `ß` is `ss`.
pub fn normal_form(value: &str) -> String {
    caseless::default_case_fold_str(value.trim_matches(is_space))
}

/// The documented normalisation, so the same person hashes alike across runs: emails in the
/// normal form, phones reduced to their digits after a `+`, anything else in the normal form
/// with its runs of white space made one space.
pub fn normalise(key: &str, value: &str) -> String {
    match key {
        "email" => normal_form(value),
        "phone" => phone_digits(value),
        _ => normal_form(
            &value
                .split(is_space)
                .filter(|w| !w.is_empty())
                .collect::<Vec<_>>()
                .join(" "),
        ),
    }
}

fn phone_digits(value: &str) -> String {
    let digits: String = value.chars().filter(char::is_ascii_digit).collect();
    if digits.is_empty() {
        String::new()
    } else {
        format!("+{digits}")
    }
}

/// The form values were normalised to before the normal form folded case: trimmed of
/// Unicode white space (not the byte-order mark) and lower-cased. Hashes and suppression
/// entries made then are of this form, so they are looked for by it too; None where it is
/// the normal form.
pub fn earlier_form(key: &str, value: &str) -> Option<String> {
    let earlier = match key {
        "email" => value.trim().to_lowercase(),
        "phone" => return None,
        _ => value
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase(),
    };
    (earlier != normalise(key, value)).then_some(earlier)
}

/// The members of a JSON object in order, values as received; Err for anything else.
fn members(text: &str) -> Result<Vec<(String, &RawValue)>, ()> {
    struct Members;
    impl<'de> Visitor<'de> for Members {
        type Value = Vec<(String, &'de RawValue)>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(entry) = map.next_entry::<String, &'de RawValue>()? {
                out.push(entry);
            }
            Ok(out)
        }
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let members = (&mut de).deserialize_map(Members).map_err(|_| ())?;
    de.end().map_err(|_| ())?;
    Ok(members)
}

fn object(members: &[(String, String)]) -> String {
    let mut out = String::from("{");
    for (i, (key, value)) in members.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let key = serde_json::to_string(key).expect("a string serializes");
        let _ = write!(out, "{key}:{value}");
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `forget` finds non-ASCII emails by a key (migration 18's `email_loose`) that drops the
    /// ASCII letters listed there: it is the same for every spelling of one normal form only
    /// while no character outside ASCII folds to any other ASCII character.
    #[test]
    fn non_ascii_characters_fold_to_no_ascii_but_the_loose_keys_letters() {
        let mut produced = std::collections::BTreeSet::new();
        for c in (0x80..=0x10FFFF).filter_map(char::from_u32) {
            // Between letters without ASCII in their folds, so that white space is not trimmed.
            let folded = normal_form(&format!("é{c}é"));
            produced.extend(folded.chars().filter(char::is_ascii));
        }
        let dropped: std::collections::BTreeSet<char> = "afhijklnstwy".chars().collect();
        assert!(produced.is_subset(&dropped), "{produced:?}");
    }

    fn protection(mode: Mode) -> Protection {
        let secret = SecretString::from("a-test-key-of-enough-bytes");
        Protection::new(mode, DEFAULT_KEYS.map(String::from).to_vec(), Some(secret)).unwrap()
    }

    fn passed(door: Door) -> String {
        match door {
            Door::Pass(raw) | Door::Rewritten { item: raw, .. } => raw.get().to_owned(),
            Door::Withheld(text) => panic!("withheld: {text}"),
        }
    }

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).unwrap()
    }

    #[test]
    fn normalising_makes_one_person_one_text() {
        assert_eq!(
            normalise("email", "  Priya.R@Example.NET "),
            "priya.r@example.net"
        );
        assert_eq!(normalise("phone", "+1 (555) 014-2233"), "+15550142233");
        assert_eq!(normalise("phone", "0015550142233"), "+0015550142233");
        assert_eq!(normalise("phone", "n/a"), "");
        assert_eq!(normalise("name", "  Priya   R\tSharma "), "priya r sharma");
    }

    #[test]
    fn the_normal_form_trims_unicode_white_space_and_folds_case_fully() {
        for spelling in [
            "\tTabby@Example.com",
            "tabby@example.com\n",
            "\u{a0}TABBY@example.com\u{2003}",
            "\u{feff}Tabby@Example.COM",
        ] {
            assert_eq!(normal_form(spelling), "tabby@example.com", "{spelling:?}");
        }
        // Capital, small and final sigma are one letter; ß folds to ss; İ to its folding.
        assert_eq!(
            normal_form("ΟΔΥΣΣΕΑΣ@example.gr"),
            normal_form("οδυσσεας@example.gr")
        );
        assert_eq!(normal_form("ΟΔΥΣΣΕΑΣ"), "οδυσσεασ");
        assert_eq!(normal_form("Straße@x.de"), "strasse@x.de");
        assert_eq!(normal_form("İ@x.tr"), normal_form("i\u{307}@x.tr"));
        assert_eq!(normal_form(&normal_form("ǅİß")), normal_form("ǅİß"));
        // The earlier form is looked for only where it differs.
        assert_eq!(earlier_form("email", " a@b.c "), None);
        assert_eq!(
            earlier_form("email", "ΟΔΥΣΣΕΑΣ@x.gr").as_deref(),
            Some("οδυσσεας@x.gr")
        );
    }

    #[test]
    fn every_mode_and_the_suppression_list_agree_on_one_person() {
        let p = protection(Mode::Hash);
        let plain = p.hash_value("email", "οδυσσεασ@example.gr").unwrap();
        assert_eq!(p.hash_value("email", "ΟΔΥΣΣΕΑΣ@example.gr").unwrap(), plain);
        assert_eq!(
            p.hash_value("email", "\u{feff}Οδυσσεας@Example.gr")
                .unwrap(),
            plain
        );
        // A value hashed in the earlier form is still found by its plain spelling.
        let hashes = p.hash_values("email", "ΟΔΥΣΣΕΑΣ@example.gr");
        assert_eq!(hashes.len(), 2);
        assert_eq!(hashes[1], p.mac("οδυσσεας@example.gr".as_bytes()).unwrap());
        let list = Suppressed::new([(
            Identifier::Email,
            Identifier::Email.digest("οδυσσεασ@example.gr"),
        )]);
        assert!(list.holds(Identifier::Email, "\u{a0}ΟΔΥΣΣΕΑΣ@EXAMPLE.GR\n"));
        assert!(list.holds(Identifier::Email, "Οδυσσεας@example.gr"));
    }

    #[test]
    fn hashing_is_keyed_and_follows_the_normal_form() {
        let p = protection(Mode::Hash);
        let a = p.hash_value("email", "Priya.R@example.net").unwrap();
        assert_eq!(a, p.hash_value("email", " priya.r@EXAMPLE.net").unwrap());
        assert_eq!(a.len(), 64);
        let other = Protection::new(
            Mode::Hash,
            vec!["email".into()],
            Some(SecretString::from("another-key-of-enough-bytes")),
        )
        .unwrap();
        assert_ne!(a, other.hash_value("email", "priya.r@example.net").unwrap());
        assert_ne!(p.key_check(), other.key_check());
        assert_eq!(p.hash_value("phone", "none"), None);
    }

    #[test]
    fn only_the_named_keys_change_and_the_rest_is_kept_byte_for_byte() {
        let item = r#"{"attributed_at":"2026-01-01T00:00:00.000Z","big":123456789012345678901234567890,"user_data":{"id":"u1","name":"Priya R","email":"P@X.net","phone":null,"device_data":{"gaid":"g"}},"email":"top@x.net"}"#;
        let hashed = passed(protection(Mode::Hash).apply(raw(item)));
        let p = protection(Mode::Hash);
        let name = p.hash_value("name", "priya r").unwrap();
        let email = p.hash_value("email", "p@x.net").unwrap();
        let top = p.hash_value("email", "top@x.net").unwrap();
        assert_eq!(
            hashed,
            format!(
                r#"{{"attributed_at":"2026-01-01T00:00:00.000Z","big":123456789012345678901234567890,"user_data":{{"id":"u1","name":"{name}","email":"{email}","phone":null,"device_data":{{"gaid":"g"}}}},"email":"{top}"}}"#
            )
        );
        let dropped = passed(protection(Mode::Drop).apply(raw(item)));
        assert_eq!(
            dropped,
            r#"{"attributed_at":"2026-01-01T00:00:00.000Z","big":123456789012345678901234567890,"user_data":{"id":"u1","phone":null,"device_data":{"gaid":"g"}}}"#
        );
        let plain = r#"{"user_data":{"id":"u2"}}"#;
        assert_eq!(passed(protection(Mode::Drop).apply(raw(plain))), plain);
        assert_eq!(passed(protection(Mode::Keep).apply(raw(item))), item);
    }

    #[test]
    fn named_keys_change_at_any_depth_and_in_arrays() {
        let item = r#"{"user_data":{"id":"u1","profile":{"contacts":[{"email":"a@x.net","kind":"home"},[{"name":"Ann"}]]}},"list":[1, {"phone":"+1 555"}],"n":{"em\u0061il":"b@x.net"}}"#;
        assert_eq!(
            passed(protection(Mode::Drop).apply(raw(item))),
            r#"{"user_data":{"id":"u1","profile":{"contacts":[{"kind":"home"},[{}]]}},"list":[1,{}],"n":{}}"#
        );
        let p = protection(Mode::Hash);
        let body = p.body(item.to_owned());
        let value: serde_json::Value = serde_json::from_str(&body).unwrap();
        let email = p.hash_value("email", "a@x.net").unwrap();
        assert_eq!(value["user_data"]["profile"]["contacts"][0]["email"], email);
        assert_eq!(
            value["n"]["email"],
            p.hash_value("email", "b@x.net").unwrap()
        );
        assert_eq!(
            value["list"][1]["phone"],
            p.hash_value("phone", "+1555").unwrap()
        );
        // Nothing named: kept byte for byte, spacing included.
        let plain = r#"{"data": [1, {"kind": "x"}]}"#;
        assert_eq!(p.body(plain.to_owned()), plain);
        assert!(p.body("{\"email\": ".to_owned()).contains("withheld"));
    }

    #[test]
    fn an_item_that_is_not_an_object_is_withheld_whole() {
        for item in [r#"["Priya R","p@x.net"]"#, r#""p@x.net""#] {
            match protection(Mode::Drop).apply(raw(item)) {
                Door::Withheld(text) => assert!(!text.contains("p@x.net"), "{text}"),
                Door::Pass(raw) | Door::Rewritten { item: raw, .. } => {
                    panic!("passed {}", raw.get())
                }
            }
        }
    }

    #[test]
    fn a_suppressed_person_is_known_by_id_email_or_phone_in_any_spelling() {
        let list = Suppressed::new([
            (
                Identifier::Email,
                Identifier::Email.digest("Gone@Example.net"),
            ),
            (Identifier::UserId, Identifier::UserId.digest("u-7")),
        ]);
        let item = |user_data: &str| raw(&format!(r#"{{"user_data":{user_data}}}"#));
        assert!(list.matches(&item(r#"{"id":"x","email":" gone@EXAMPLE.net"}"#)));
        assert!(list.matches(&item(r#"{"id":"u-7"}"#)));
        assert!(!list.matches(&item(r#"{"id":"U-7"}"#)));
        assert!(!list.matches(&item(r#"{"id":"x","email":null}"#)));
        assert!(!list.matches(&item("null")));
        assert!(!Suppressed::default().matches(&item(r#"{"id":"u-7"}"#)));
    }

    #[test]
    fn hash_needs_a_long_enough_key() {
        let keys = || DEFAULT_KEYS.map(String::from).to_vec();
        assert!(Protection::new(Mode::Hash, keys(), None).is_err());
        let short = SecretString::from("short");
        assert!(Protection::new(Mode::Hash, keys(), Some(short)).is_err());
        assert!(Protection::new(Mode::Drop, keys(), None).is_ok());
        assert!(Protection::new(Mode::Drop, vec![], None).is_err());
    }
}

//! Attribution look-ups: which id is asked about, where ids come from, and what Linkrunner
//! answered.

use std::fmt;

/// How an id is given to `GET /get-attribution-result`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LookupKind {
    /// The app's own user id, as given to the SDK's signup.
    UserId,
    /// An advertising id: GAID on Android, IDFA on iOS.
    DeviceIdentifier,
}

impl LookupKind {
    /// The query parameter, and the value of `attribution_results.lookup_kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            LookupKind::UserId => "user_id",
            LookupKind::DeviceIdentifier => "device_identifier",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "user_id" => Some(LookupKind::UserId),
            "device_identifier" => Some(LookupKind::DeviceIdentifier),
            _ => None,
        }
    }
}

/// One id due for a look-up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LookupId {
    pub kind: LookupKind,
    pub value: String,
    /// Its rows in `attributed_users` when it was found due: a row added later makes it due
    /// again.
    pub attributions: i64,
}

/// The attribution Linkrunner holds for an id: the documented fields, empty strings as none.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attribution {
    pub campaign_name: Option<String>,
    pub display_id: Option<String>,
    pub deeplink: Option<String>,
    pub domain_name: Option<String>,
    pub ad_set_id: Option<String>,
    pub ad_set_name: Option<String>,
    pub ad_creative_id: Option<String>,
    pub ad_creative_name: Option<String>,
    pub keyword_id: Option<String>,
    pub keyword_name: Option<String>,
    pub ad_network: Option<String>,
    /// `ORGANIC` or `INORGANIC`.
    pub attribution_type: Option<String>,
}

/// What one look-up came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// An attribution, with the response's body as received.
    Found {
        attribution: Box<Attribution>,
        raw: String,
    },
    /// HTTP 204: Linkrunner knows nothing of the id (yet).
    NotFound,
    /// An answer that cannot be used for this id (a 400, a body that is not the documented
    /// shape, text Postgres cannot store): kept with the reason, the rest go on.
    Unusable {
        reason: String,
        /// The body as received, when there was one.
        raw_text: Option<String>,
    },
}

/// A column of the app's own database that holds user ids to look up: `--lookup-from
/// schema.table.column`. Each name is a plain name as the catalog spells it; the database layer
/// quotes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LookupSource {
    pub schema: String,
    pub table: String,
    pub column: String,
}

impl LookupSource {
    pub fn parse(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split('.').collect();
        let [schema, table, column] = parts[..] else {
            return Err(format!(
                "--lookup-from '{s}' is not schema.table.column (for example app.users.id)"
            ));
        };
        for name in [schema, table, column] {
            // Postgres keeps the first 63 bytes of a longer name: a silent other name.
            if name.is_empty() || name.len() > 63 || name.contains('\0') {
                return Err(format!(
                    "--lookup-from '{s}': '{name}' is not a name Postgres can hold"
                ));
            }
        }
        // The values are sent to Linkrunner: never the server's own catalogs (password
        // hashes, settings).
        let lower = schema.to_ascii_lowercase();
        if lower.starts_with("pg_") || lower == "information_schema" {
            return Err(format!(
                "--lookup-from '{s}': schema '{schema}' is Postgres's own catalog, not the app's \
                 users; name the app's table (for example app.users.id)"
            ));
        }
        Ok(LookupSource {
            schema: schema.to_owned(),
            table: table.to_owned(),
            column: column.to_owned(),
        })
    }
}

impl fmt::Display for LookupSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.schema, self.table, self.column)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_is_three_plain_names() {
        let s = LookupSource::parse("app.users.id").unwrap();
        assert_eq!(
            (s.schema.as_str(), s.table.as_str(), s.column.as_str()),
            ("app", "users", "id")
        );
        assert_eq!(s.to_string(), "app.users.id");
        // Any text is a name once quoted, so case and quotes are kept as written.
        let odd = LookupSource::parse("App.\"users\".Id").unwrap();
        assert_eq!(odd.table, "\"users\"");
        for bad in [
            "users.id",
            "a.b.c.d",
            "app..id",
            "",
            &format!("app.{}.id", "t".repeat(64)),
            "pg_catalog.pg_authid.rolpassword",
            "PG_CATALOG.pg_user.passwd",
            "information_schema.tables.table_name",
        ] {
            assert!(LookupSource::parse(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn kinds_round_trip() {
        for kind in [LookupKind::UserId, LookupKind::DeviceIdentifier] {
            assert_eq!(LookupKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(LookupKind::parse("email"), None);
    }
}

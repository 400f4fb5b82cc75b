//! A project's schema name (`--schema`): checked once, always quoted where SQL writes it.

/// The schema when `--schema` is not given, as every version before it used.
pub const DEFAULT: &str = "linkrunner";

/// A schema name that is a plain identifier: lower-case ASCII letters, digits and `_`, starting
/// with a letter or `_`, at most 63 bytes, and none Postgres or analysts keep for themselves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schema {
    name: String,
    quoted: String,
}

impl Default for Schema {
    fn default() -> Self {
        Schema::parse(DEFAULT).expect("the default schema is a plain identifier")
    }
}

impl Schema {
    pub fn parse(name: &str) -> Result<Schema, String> {
        let plain = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && name.len() <= 63;
        if !plain {
            return Err(format!(
                "--schema '{}' is not a plain identifier: use lower-case letters, digits and _, \
                 starting with a letter, at most 63 characters (e.g. linkrunner_app2)",
                name.escape_debug()
            ));
        }
        if name.starts_with("pg_") || name == "public" || name == "information_schema" {
            return Err(format!(
                "--schema '{name}' is kept for Postgres or shared by everyone: give the project a \
                 schema of its own (e.g. linkrunner_app2)"
            ));
        }
        Ok(Schema {
            name: name.to_owned(),
            quoted: format!("\"{name}\""),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The name as SQL writes it: quoted, so no name is ever read as anything else.
    pub fn quoted(&self) -> &str {
        &self.quoted
    }
}

impl std::fmt::Display for Schema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_identifiers_are_schemas() {
        for good in ["linkrunner", "linkrunner_app2", "a1", &"a".repeat(63)] {
            assert_eq!(Schema::parse(good).unwrap().name(), good);
        }
        for bad in [
            "",
            "_",
            "_x",
            "App",
            "1app",
            "a-b",
            "a.b",
            "a\"b",
            "a b",
            "x; DROP TABLE t",
            "ünï",
            &"a".repeat(64),
        ] {
            let e = Schema::parse(bad).unwrap_err();
            assert!(e.contains("plain identifier"), "{bad}: {e}");
        }
        for kept in ["public", "pg_temp", "pg_catalog", "information_schema"] {
            assert!(Schema::parse(kept).unwrap_err().contains("of its own"));
        }
    }
}

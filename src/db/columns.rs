//! The one table of `attributed_users`' columns as loads write them: the `COPY` encoder, the
//! upsert's SQL and binds, and the readers in the tests all follow it, so a documented field is
//! one entry in [`TEXT_FIELDS`] or [`TIME_FIELDS`] of the model (plus the migration that adds
//! its column).

use std::borrow::Cow;

use chrono::{DateTime, Utc};

use crate::model::user::{UserRow, TEXT_FIELDS, TIME_FIELDS};

/// How a column is stored, which decides how each writer sends it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnType {
    Text,
    Timestamptz,
    Jsonb,
}

/// Where a column's value sits in a [`UserRow`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    Campaign,
    AttributedAt,
    RowKey,
    UserId,
    Text(usize),
    Time(usize),
    UserData,
    Extra,
}

/// A column of `attributed_users` that loads write.
#[derive(Clone, Copy, Debug)]
pub struct Column {
    pub name: &'static str,
    pub ty: ColumnType,
    pub slot: Slot,
    /// Part of the natural key: never updated.
    pub key: bool,
}

/// Columns besides the documented text and time fields: the key, `user_id`, `user_data`, `extra`.
const OTHER_COLUMNS: usize = 6;

/// Every column a load writes, in the order each writer sends them.
pub const COLUMNS: [Column; N_COLUMNS] = columns();

const N_COLUMNS: usize = OTHER_COLUMNS + TEXT_FIELDS.len() + TIME_FIELDS.len();

const fn column(name: &'static str, ty: ColumnType, slot: Slot, key: bool) -> Column {
    Column {
        name,
        ty,
        slot,
        key,
    }
}

const fn columns() -> [Column; N_COLUMNS] {
    use ColumnType::*;
    let mut out = [column("", Text, Slot::Campaign, false); N_COLUMNS];
    out[0] = column("campaign_display_id", Text, Slot::Campaign, true);
    out[1] = column("attributed_at", Timestamptz, Slot::AttributedAt, true);
    out[2] = column("row_key", Text, Slot::RowKey, true);
    out[3] = column("user_id", Text, Slot::UserId, false);
    let mut at = 4;
    let mut i = 0;
    while i < TEXT_FIELDS.len() {
        out[at] = column(TEXT_FIELDS[i], Text, Slot::Text(i), false);
        (at, i) = (at + 1, i + 1);
    }
    i = 0;
    while i < TIME_FIELDS.len() {
        out[at] = column(TIME_FIELDS[i], Timestamptz, Slot::Time(i), false);
        (at, i) = (at + 1, i + 1);
    }
    out[at] = column("user_data", Jsonb, Slot::UserData, false);
    out[at + 1] = column("extra", Jsonb, Slot::Extra, false);
    out
}

/// A column's value in a row.
#[derive(Debug, PartialEq)]
pub enum ColumnValue<'a> {
    Text(Option<&'a str>),
    Time(Option<DateTime<Utc>>),
    /// JSON text.
    Json(Option<Cow<'a, str>>),
}

impl UserRow {
    /// The value of the column at `slot`.
    pub fn value(&self, slot: Slot) -> ColumnValue<'_> {
        match slot {
            Slot::Campaign => ColumnValue::Text(Some(&self.campaign_display_id)),
            Slot::AttributedAt => ColumnValue::Time(Some(self.attributed_at)),
            Slot::RowKey => ColumnValue::Text(Some(&self.row_key)),
            Slot::UserId => ColumnValue::Text(self.user_id.as_deref()),
            Slot::Text(i) => ColumnValue::Text(self.texts[i].as_deref()),
            Slot::Time(i) => ColumnValue::Time(self.times[i]),
            Slot::UserData => ColumnValue::Json(self.user_data.as_deref().map(Cow::Borrowed)),
            Slot::Extra => {
                ColumnValue::Json(self.extra.as_ref().map(|v| Cow::Owned(v.to_string())))
            }
        }
    }

    /// Sets the column at `slot` from what a reader got back; a value of the wrong kind, or
    /// JSON that does not parse, leaves the field empty.
    pub fn set(&mut self, slot: Slot, value: ColumnValue<'_>) {
        use ColumnValue as V;
        let text = |v: V| match v {
            V::Text(t) => t.map(str::to_owned),
            _ => None,
        };
        match (slot, value) {
            (Slot::Campaign, v) => self.campaign_display_id = text(v).unwrap_or_default(),
            (Slot::AttributedAt, V::Time(Some(t))) => self.attributed_at = t,
            (Slot::RowKey, v) => self.row_key = text(v).unwrap_or_default(),
            (Slot::UserId, v) => self.user_id = text(v),
            (Slot::Text(i), v) => self.texts[i] = text(v),
            (Slot::Time(i), V::Time(t)) => self.times[i] = t,
            (Slot::UserData, V::Json(j)) => self.user_data = j.map(Cow::into_owned),
            (Slot::Extra, V::Json(j)) => {
                self.extra = j.and_then(|j| serde_json::from_str(&j).ok());
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_has_one_column_in_order() {
        let names: Vec<&str> = COLUMNS.iter().map(|c| c.name).collect();
        assert_eq!(names.len(), 18);
        assert_eq!(
            &names[..4],
            ["campaign_display_id", "attributed_at", "row_key", "user_id"]
        );
        assert_eq!(&names[4..14], TEXT_FIELDS);
        assert_eq!(&names[14..16], TIME_FIELDS);
        assert_eq!(&names[16..], ["user_data", "extra"]);
        let keys: Vec<&str> = COLUMNS.iter().filter(|c| c.key).map(|c| c.name).collect();
        assert_eq!(keys, ["campaign_display_id", "attributed_at", "row_key"]);
    }

    #[test]
    fn a_row_read_back_column_by_column_is_the_row() {
        let row = UserRow {
            campaign_display_id: "c1".into(),
            attributed_at: DateTime::from_timestamp(1_780_000_000, 123_000_000).unwrap(),
            row_key: "u:1".into(),
            user_id: Some("1".into()),
            texts: std::array::from_fn(|i| (i % 3 != 0).then(|| format!("t{i}"))),
            times: [DateTime::from_timestamp(1_779_000_000, 0), None],
            user_data: Some(r#"{"id":"1"}"#.into()),
            extra: Some(serde_json::json!({"k": [1, "x"]})),
        };
        let mut back = UserRow::default();
        for c in COLUMNS {
            back.set(c.slot, row.value(c.slot));
        }
        assert_eq!(back, row);
    }
}

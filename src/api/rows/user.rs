//! An attributed-user row as received, split into what we store: typed columns, `user_data` as
//! received, and `extra` for everything the columns cannot hold exactly. `to_wire` rebuilds the
//! received JSON from the stored parts, which is how the tests prove nothing is lost.

use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::api::rows::key::{self, Identity};
use crate::api::rows::members::{Field, Members};
use crate::api::rows::time::{parse_time, wire_time};
use crate::api::rows::typed::{self, columns_and_extra, Typed};
use crate::model::storable;
use crate::model::user::{Rejected, UserRow, TEXT_FIELDS, TIME_FIELDS};

impl UserRow {
    /// Splits a received row of `campaign`'s listing.
    pub fn from_wire(campaign: &str, raw: &RawValue) -> Result<UserRow, Rejected> {
        UserRow::from_item(campaign, raw, false)
    }

    /// As [`UserRow::from_wire`], for an item of a page whose body was not UTF-8 when
    /// `recoded` (`Page::recoded`). A row whose text Postgres cannot store is set aside whole.
    /// The hash of an item's content, as the key of a row with no user or device id holds it
    /// after `h:`.
    pub fn content_digest(raw: &RawValue) -> String {
        key::content_digest(raw)
    }

    pub fn from_item(campaign: &str, raw: &RawValue, recoded: bool) -> Result<UserRow, Rejected> {
        split(campaign, raw, recoded).map_err(|reason| Rejected::new(reason, raw.get().to_owned()))
    }

    /// The row as the API sent it.
    pub fn to_wire(&self) -> Value {
        let mut obj = Map::new();
        obj.insert("attributed_at".into(), wire_time(self.attributed_at).into());
        obj.insert(
            "campaign_display_id".into(),
            self.campaign_display_id.clone().into(),
        );
        for (key, value) in TEXT_FIELDS.iter().zip(&self.texts) {
            obj.insert(
                (*key).into(),
                value.clone().map_or(Value::Null, Value::String),
            );
        }
        for (key, value) in TIME_FIELDS.iter().zip(&self.times) {
            obj.insert(
                (*key).into(),
                value.map_or(Value::Null, |t| wire_time(t).into()),
            );
        }
        let user_data = self
            .user_data
            .as_deref()
            .and_then(|t| serde_json::from_str(t).ok());
        obj.insert("user_data".into(), user_data.unwrap_or(Value::Null));
        if let Some(Value::Object(extra)) = &self.extra {
            typed::restore(&mut obj, extra);
        }
        Value::Object(obj)
    }
}

/// The row's stored parts, or why it cannot be stored.
fn split(campaign: &str, raw: &RawValue, recoded: bool) -> Result<UserRow, String> {
    let problems = storable::problems(raw.get(), recoded);
    if problems.any() {
        return Err(problems.to_string());
    }
    let members: Members =
        serde_json::from_str(raw.get()).map_err(|_| "row is not a JSON object".to_owned())?;
    let original_at = members.attributed_at();
    let attributed_at = original_at
        .as_ref()
        .and_then(Field::as_str)
        .and_then(parse_time)
        .ok_or_else(|| "attributed_at is missing or not an ISO 8601 timestamp".to_owned())?;
    let user_data = members.user_data();
    let Identity { user_id, row_key } = key::identify(user_data, raw)?;
    let Typed {
        texts,
        times,
        extra,
    } = columns_and_extra(campaign, members, original_at, attributed_at);
    Ok(UserRow {
        campaign_display_id: campaign.to_owned(),
        attributed_at,
        row_key,
        user_id,
        texts,
        times,
        user_data: user_data.map(str::to_owned),
        extra,
    })
}

#[cfg(test)]
mod tests;

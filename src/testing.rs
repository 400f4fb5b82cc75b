//! Strategies for property tests.

use proptest::prelude::*;
use serde_json::{Map, Value};

/// Any JSON value, a few levels deep.
pub fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
        timestamp().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(".{0,8}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Timestamps in the forms the API and its drift produce.
pub fn timestamp() -> impl Strategy<Value = String> {
    (
        2020i32..2030,
        1u32..13,
        1u32..29,
        0u32..24,
        0u32..60,
        0u32..1000,
        0usize..4,
    )
        .prop_map(|(y, mo, d, h, mi, ms, form)| match form {
            0 => format!("{y}-{mo:02}-{d:02}T{h:02}:{mi:02}:07.{ms:03}Z"),
            1 => format!("{y}-{mo:02}-{d:02}T{h:02}:{mi:02}:07Z"),
            2 => format!("{y}-{mo:02}-{d:02}T{h:02}:{mi:02}:07.{ms:03}+05:30"),
            _ => format!("{y}-{mo:02}-{d:02}"),
        })
}

/// An object holding `keys`, each with any value or left out, plus unknown keys.
pub fn object_with(keys: &'static [&'static str]) -> impl Strategy<Value = Value> {
    let fields = keys
        .iter()
        .map(|k| (Just(*k), prop::option::of(any_json())))
        .collect::<Vec<_>>();
    (
        fields,
        prop::collection::btree_map("[a-z_]{1,8}", any_json(), 0..3),
    )
        .prop_map(|(fields, extra)| {
            let mut obj: Map<String, Value> = extra.into_iter().collect();
            for (key, value) in fields {
                if let Some(value) = value {
                    obj.insert(key.to_string(), value);
                }
            }
            Value::Object(obj)
        })
}

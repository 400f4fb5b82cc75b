use super::*;

#[test]
fn reads_pagination_not_page_counts() {
    let body = br#"{"msg":"ok","status":200,"data":{"total_users":1,"users":[{"a":1}],
        "pagination":{"total":1874,"pages":2,"page":1,"limit":1000}}}"#;
    let page = Page::parse(body, "users", 1000).unwrap();
    assert_eq!((page.items.len(), page.total, page.pages), (1, 1874, 2));
    assert_eq!(page.items[0].get(), r#"{"a":1}"#);
}

#[test]
fn html_error_page_is_a_decode_error() {
    let err = Page::parse(b"<html><body>502 Bad Gateway</body></html>", "users", 1000).unwrap_err();
    assert!(matches!(err, ApiError::Decode(_)));
    assert!(err.to_string().contains("502 Bad Gateway"));
}

#[test]
fn a_page_longer_than_asked_for_is_refused() {
    let body = br#"{"data":{"users":[1,2,3],"pagination":{"total":3,"pages":1}}}"#;
    assert_eq!(Page::parse(body, "users", 3).unwrap().items.len(), 3);
    let err = Page::parse(body, "users", 2).unwrap_err();
    assert!(matches!(err, ApiError::Protocol(_)), "{err}");
}

#[test]
fn numbers_as_strings_are_read() {
    let body = br#"{"data":{"campaigns":[],"pagination":{"total":"0","pages":"0"}}}"#;
    let page = Page::parse(body, "campaigns", 1000).unwrap();
    assert_eq!((page.total, page.pages), (0, 0));
}

/// The reading `Page::parse` replaced: envelope, `data` and list each parsed on their own.
fn three_passes(body: &[u8], list_key: &str) -> Result<Page, ApiError> {
    use std::collections::BTreeMap;
    let envelope: BTreeMap<String, &RawValue> = serde_json::from_slice(body)
        .map_err(|e| ApiError::Decode(format!("not a JSON object ({e}): {}", preview(body))))?;
    let data: BTreeMap<String, &RawValue> = envelope
        .get("data")
        .and_then(|d| serde_json::from_str(d.get()).ok())
        .ok_or_else(|| ApiError::Decode(format!("no 'data' object in {}", preview(body))))?;
    let items = match data.get(list_key).map(|raw| raw.get()) {
        None | Some("null") => Vec::new(),
        Some(raw) => serde_json::from_str::<Vec<Box<RawValue>>>(raw)
            .map_err(|_| ApiError::Decode(format!("'{list_key}' is not an array")))?,
    };
    let pagination: Value = data
        .get("pagination")
        .and_then(|p| serde_json::from_str(p.get()).ok())
        .unwrap_or(Value::Null);
    let number = |key: &str| pagination.get(key).and_then(as_u64);
    let total = number("total").unwrap_or(items.len() as u64);
    let pages = number("pages").unwrap_or(if total == 0 { 0 } else { 1 });
    Ok(Page {
        items,
        total,
        pages,
        hold: Hold::default(),
        recoded: false,
    })
}

#[test]
fn bad_bytes_become_escapes_and_only_their_items_hold_them() {
    let body = b"{\"msg\":\"\xff\",\"data\":{\"users\":[{\"n\":\"Zo\xe9\"},{\"n\":\"ok\"}]}}";
    let page = Page::parse(body, "users", 1000).unwrap();
    assert!(page.recoded);
    assert_eq!(page.items[0].get(), r#"{"n":"Zo\udce9"}"#);
    assert_eq!(page.items[1].get(), r#"{"n":"ok"}"#);
    // A cut multi-byte character: each of its bytes.
    assert_eq!(
        escape_bad_bytes("\"\u{e9}\u{1F600}\"".as_bytes()[..6].as_ref()).unwrap(),
        "\"\u{e9}\\udcf0\\udc9f\\udc98"
    );
    // Valid bodies take the usual path.
    let page = Page::parse(br#"{"data":{"users":[{"n":"\ud83d"}]}}"#, "users", 1000).unwrap();
    assert!(!page.recoded);
}

#[test]
fn bad_bytes_never_make_json_of_what_is_not() {
    // An escape cut by a bad byte, and bad bytes outside strings.
    for body in [
        &b"{\"data\":{\"users\":[\"a\\\xff\"]}}"[..],
        b"{\"data\":\xff}",
    ] {
        assert!(matches!(
            Page::parse(body, "users", 1000),
            Err(ApiError::Decode(_))
        ));
    }
    assert_eq!(
        escape_bad_bytes(b"\\\\\xff").as_deref(),
        Some("\\\\\\udcff")
    );
    assert_eq!(escape_bad_bytes(b"\\\xff"), None);
}

mod properties {
    use super::*;
    use crate::testing::any_json;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_bytes_give_whole_items_or_an_error(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(page) = Page::parse(&bytes, "users", 3) {
                prop_assert!(page.items.len() <= 3);
                for item in &page.items {
                    prop_assert!(serde_json::from_str::<Value>(item.get()).is_ok());
                }
            }
        }

        #[test]
        fn reads_as_three_passes_would(value in any_json(), key in prop_oneof![Just("users"), Just("campaigns")]) {
            let bodies = [
                value.to_string(),
                serde_json::json!({"data": {key: [value.clone()], "pagination": value}}).to_string(),
                serde_json::json!({"data": {key: value.clone(), "pagination": {"total": 3}}}).to_string(),
                serde_json::json!({"data": value.clone()}).to_string(),
                format!(r#"{{"data":{{"{key}":[1]}},"data":{{"{key}":[2,3]}}}}"#),
            ];
            for body in bodies {
                let new = Page::parse(body.as_bytes(), key, usize::MAX);
                let old = three_passes(body.as_bytes(), key);
                match (new, old) {
                    (Ok(a), Ok(b)) => {
                        let text = |p: &Page| p.items.iter().map(|i| i.get().to_owned()).collect::<Vec<_>>();
                        prop_assert_eq!((text(&a), a.total, a.pages), (text(&b), b.total, b.pages));
                    }
                    (Err(a), Err(b)) => {
                        // The same failure; serde's own wording may differ.
                        let kind = |e: ApiError| e.to_string().split(' ').next().unwrap_or_default().to_owned();
                        prop_assert_eq!(kind(a), kind(b));
                    }
                    (a, b) => prop_assert!(false, "{:?} vs {:?} for {}", a.map(|p| p.total), b.map(|p| p.total), body),
                }
            }
        }

        #[test]
        fn any_item_comes_back_as_sent(value in any_json(), key in prop_oneof![Just("users"), Just("campaigns")]) {
            let body = serde_json::json!({"data": {key: [value.clone()], "pagination": value}});
            let page = Page::parse(body.to_string().as_bytes(), key, 1000).unwrap();
            prop_assert_eq!(page.items.len(), 1);
            prop_assert_eq!(serde_json::from_str::<Value>(page.items[0].get()).unwrap(), value);
        }
    }
}

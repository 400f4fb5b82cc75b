//! The synthetic data set: campaigns and rows drawn from a seeded ChaCha8 generator, shaped to
//! hit the awkward cases of the real API (skewed sizes, midnights and DST edges, null ids, "").

use super::clock::resolve_local;
use super::clock::ts;
use super::counter::Counter;
use super::data::Campaign;
use super::row::Row;
use super::{mix, SimConfig, PROJECT_DOMAINS};
use chrono::{DateTime, Datelike, Months, NaiveTime, Offset, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Map, Value};
use std::collections::HashSet;

/// Zones whose midnights and DST changes give the tricky instants.
const ZONES: [Tz; 5] = [
    Tz::UTC,
    Tz::America__New_York,
    Tz::Asia__Kolkata,
    Tz::Australia__Lord_Howe,
    Tz::America__Santiago,
];
const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const FIRST: [&str; 8] = [
    "Priya", "Ines", "Mateo", "Aiko", "Liam", "Zara", "Noah", "Chloé",
];
const LAST: [&str; 8] = [
    "Raman", "Falk", "Rojas", "Sato", "Walsh", "Khan", "Novak", "Dubois",
];

/// Builds the whole data set; the same config always gives the same campaigns and rows.
pub(crate) fn generate(cfg: &SimConfig) -> Vec<Campaign> {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut ids = HashSet::new();
    let mut campaigns: Vec<Campaign> = (0..cfg.campaigns)
        .map(|i| {
            let id = loop {
                let id = display_id(&mut rng);
                if ids.insert(id.clone()) {
                    break id;
                }
            };
            campaign(&mut rng, cfg, i, id)
        })
        .collect();
    if !campaigns.is_empty() {
        let i = rng.random_range(0..campaigns.len());
        campaigns[i].default_link = true;
    }
    let tricky = tricky_instants(cfg.start, cfg.end);
    let mut people = People::default();
    let mut rows: Vec<Vec<Row>> = campaigns.iter().map(|_| Vec::new()).collect();
    let targets = if cfg.even {
        (0..cfg.users).map(|n| n % campaigns.len().max(1)).collect()
    } else {
        row_targets(&mut rng, campaigns.len(), cfg.users)
    };
    for (n, ci) in targets.into_iter().enumerate() {
        let uid = (cfg.campaigns + n) as u64 + 1;
        let spot = (ci, rows[ci].len());
        let c = &campaigns[ci];
        let (at, fields) = row(&mut rng, cfg, c, &tricky, &mut people, &rows, spot);
        let row = Row::new(uid, at, None, fields);
        // Rendered now, while the fields are in cache: a sync reads most rows once, so a text
        // made on first read would cost the request as much as having none.
        cfg.served_row(c, &row);
        rows[ci].push(row);
    }
    for (c, rows) in campaigns.iter_mut().zip(rows) {
        c.counter = Counter::seeded(cfg.seed, c.uid, rows.len(), cfg.counter_lie_rate);
        c.set_rows(rows);
    }
    campaigns
}

/// Random alphanumerics, as create-campaign generates display ids.
pub(crate) fn random_id(rng: &mut ChaCha8Rng, len: usize) -> String {
    (0..len)
        .map(|_| *ALNUM.choose(rng).unwrap() as char)
        .collect()
}

/// 6 to 10 mixed-case alphanumerics, a quarter of them with a '-' inside.
fn display_id(rng: &mut ChaCha8Rng) -> String {
    let len = rng.random_range(6..=10);
    let mut id = random_id(rng, len);
    if rng.random_bool(0.25) {
        let at = rng.random_range(2..len - 2);
        id.replace_range(at..at + 1, "-");
    }
    id
}

/// A uniformly random millisecond in `[lo, hi]` (`lo` when the range is empty).
fn between(rng: &mut ChaCha8Rng, lo: DateTime<Utc>, hi: DateTime<Utc>) -> DateTime<Utc> {
    let span = (hi - lo).num_milliseconds().max(0);
    lo + TimeDelta::milliseconds(rng.random_range(0..=span))
}

fn uuid(rng: &mut ChaCha8Rng) -> String {
    uuid::Builder::from_random_bytes(rng.random())
        .into_uuid()
        .to_string()
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn campaign(rng: &mut ChaCha8Rng, cfg: &SimConfig, i: usize, id: String) -> Campaign {
    const ADJ: [&str; 6] = [
        "Spring", "Summer", "Festive", "Weekend", "Launch", "Retarget",
    ];
    const NOUN: [&str; 6] = [
        "referral push",
        "install drive",
        "promo",
        "creator collab",
        "bio link",
        "QR poster",
    ];
    let name = format!(
        "{} {} {}",
        ADJ.choose(rng).unwrap(),
        NOUN.choose(rng).unwrap(),
        i + 1
    );
    let created = between(rng, cfg.start, cfg.start + (cfg.end - cfg.start) / 2);
    let mut c = Campaign::new(i as u64 + 1, id, name, created);
    c.salt = rng.random();
    if rng.random_bool(0.6) {
        c.update_at = between(rng, created, (created + TimeDelta::days(30)).min(cfg.end));
    }
    match rng.random_range(0..10) {
        0..=3 => {
            c.meta = true;
            c.meta_campaign_id = Some(format!("1202{:014}", rng.random_range(0..10u64.pow(14))));
            c.meta_web_to_app = rng.random_bool(0.2);
        }
        4..=6 => c.google = true,
        _ => {}
    }
    if !c.meta && rng.random_bool(0.25) {
        c.meta_campaign_id = Some(String::new());
    }
    c.active = rng.random_bool(0.85);
    c.domain = [Some(PROJECT_DOMAINS[0]), Some(PROJECT_DOMAINS[1]), None]
        .choose(rng)
        .unwrap()
        .map(String::from);
    let ios = *[None, Some(0), Some(3)].choose(rng).unwrap();
    let android = *[None, Some(1), Some(2)].choose(rng).unwrap();
    c.store_listings = ios.into_iter().chain(android).collect();
    if rng.random_bool(0.5) {
        c.deeplink = Some(format!("https://{}/offers/{}", c.link_domain(), i + 1));
    }
    if rng.random_bool(0.3) {
        let site = rng
            .random_bool(0.7)
            .then(|| format!("https://www.example.org/c{}", i + 1));
        c.extra.insert("website".into(), json!(site));
    }
    if c.meta && rng.random_bool(0.5) {
        let capi = rng.random_bool(0.5);
        let account =
            json!({ "id": 1000 + i, "name": "Ads", "status": "ACTIVE", "capi_configured": capi });
        c.extra.insert("network_account".into(), account);
    }
    c
}

/// Campaign index of every row: one campaign takes ~30%, two (of four or more) none, the rest
/// a random weight each.
fn row_targets(rng: &mut ChaCha8Rng, n: usize, users: usize) -> Vec<usize> {
    if n == 0 {
        return Vec::new();
    }
    let big = rng.random_range(0..n);
    let mut weights: Vec<u32> = (0..n).map(|_| rng.random_range(1..=20)).collect();
    weights[big] = 0;
    if n >= 4 {
        weights[(big + 1) % n] = 0;
        weights[(big + 2) % n] = 0;
    }
    let total: u32 = weights.iter().sum();
    let big_rows = if total == 0 { users } else { users * 3 / 10 };
    let mut out = vec![big; big_rows];
    for _ in big_rows..users {
        let mut x = rng.random_range(0..total);
        let pick = weights.iter().position(|&w| {
            if x < w {
                return true;
            }
            x -= w;
            false
        });
        out.push(pick.unwrap_or(big));
    }
    out
}

/// Local midnights (1st of each month and days around DST changes) and DST changes of the
/// [`ZONES`] in `[start, end]`, each with its neighbours ±1 ms.
pub(crate) fn tricky_instants(start: DateTime<Utc>, end: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let mut out = Vec::new();
    for tz in ZONES {
        let offset = |t: DateTime<Utc>| tz.offset_from_utc_datetime(&t.naive_utc()).fix();
        let mut days = Vec::new();
        // DST changes fall on :00 or :30 UTC, so a 15-minute scan from a quarter hour hits them.
        let mut t =
            DateTime::from_timestamp(start.timestamp() - start.timestamp().rem_euclid(900), 0)
                .unwrap();
        while t < end {
            let next = t + TimeDelta::minutes(15);
            if offset(next) != offset(t) {
                out.push(next);
                let day = next.with_timezone(&tz).date_naive();
                days.extend([day.pred_opt().unwrap(), day, day.succ_opt().unwrap()]);
            }
            t = next;
        }
        let mut day = start.date_naive().with_day(1).unwrap();
        while day <= end.date_naive() {
            days.push(day);
            day = day + Months::new(1);
        }
        out.extend(
            days.into_iter()
                .filter_map(|d| resolve_local(tz, d.and_time(NaiveTime::MIN))),
        );
    }
    let ms = TimeDelta::milliseconds(1);
    let mut all: Vec<_> = out
        .into_iter()
        .flat_map(|t| [t - ms, t, t + ms])
        .filter(|t| (start..=end).contains(t))
        .collect();
    all.sort();
    all.dedup();
    all
}

/// Users with an id seen so far, so some can be attributed again later.
#[derive(Default)]
struct People {
    known: Vec<Known>,
    next: u64,
}

/// A user with an id: where their first row is (campaign and row index in generation order),
/// whose `user_data` a later attribution copies, and when they were last attributed.
struct Known {
    first: (usize, usize),
    last: DateTime<Utc>,
}

/// `attributed_at` and fields of the next row of `c`, to be stored at `spot` of `rows`.
fn row(
    rng: &mut ChaCha8Rng,
    cfg: &SimConfig,
    c: &Campaign,
    tricky: &[DateTime<Utc>],
    people: &mut People,
    rows: &[Vec<Row>],
    spot: (usize, usize),
) -> (DateTime<Utc>, Map<String, Value>) {
    let lo = c.created_at;
    // ~5% are an earlier user attributed again, strictly later, so (campaign, id, at) stays unique.
    let again = if rng.random_bool(0.05) && !people.known.is_empty() {
        Some(rng.random_range(0..people.known.len()))
            .filter(|&i| people.known[i].last.max(lo) < cfg.end)
    } else {
        None
    };
    let (user_data, at) = match again {
        Some(i) => {
            let known = &mut people.known[i];
            let at = between(
                rng,
                known.last.max(lo) + TimeDelta::milliseconds(1),
                cfg.end,
            );
            known.last = at;
            let (ci, ri) = known.first;
            (rows[ci][ri].user_data().cloned().unwrap_or_default(), at)
        }
        None => {
            let from = tricky.partition_point(|t| *t < lo);
            let at = if rng.random_bool(0.1) && from < tricky.len() {
                tricky[rng.random_range(from..tricky.len())]
            } else {
                between(rng, lo, cfg.end)
            };
            let user = new_user(rng, &mut people.next, at);
            if user.get("id").is_some_and(Value::is_string) {
                people.known.push(Known {
                    first: spot,
                    last: at,
                });
            }
            (user, at)
        }
    };
    let mut fields = ad_fields(rng, c);
    let installed = rng
        .random_bool(0.9)
        .then(|| at - TimeDelta::milliseconds(rng.random_range(60_000..=2_592_000_000)));
    let click = installed
        .filter(|_| rng.random_bool(0.85))
        .map(|i| i - TimeDelta::milliseconds(rng.random_range(5_000..=7_200_000)));
    fields.insert("link".into(), json!(rng.random_bool(0.4).then(|| c.link())));
    fields.insert("installed_at".into(), json!(installed.map(ts)));
    fields.insert("store_click_at".into(), json!(click.map(ts)));
    fields.insert("user_data".into(), Value::Object(user_data));
    if rng.random_bool(0.01) {
        fields.insert("is_instagram".into(), json!(false));
    }
    (at, fields)
}

/// A signup that lands while a scan runs: a fresh user of `c` attributed in `[lo, hi]`.
pub(crate) fn fresh_row(
    rng: &mut ChaCha8Rng,
    c: &Campaign,
    lo: DateTime<Utc>,
    hi: DateTime<Utc>,
    uid: u64,
) -> Row {
    let at = between(rng, lo, hi);
    // Generated users step the counter by at most 9 each, so uid * 10 is past all of them.
    let mut next = uid * 10;
    let mut fields = ad_fields(rng, c);
    fields.insert("link".into(), json!(c.link()));
    fields.insert("installed_at".into(), json!(ts(at - TimeDelta::minutes(5))));
    fields.insert("store_click_at".into(), Value::Null);
    let user = new_user(rng, &mut next, at);
    fields.insert("user_data".into(), Value::Object(user));
    Row::new(uid, at, None, fields)
}

/// Ad fields: filled for META and GOOGLE campaigns from a few ad sets and creatives per campaign,
/// null otherwise, and now and then "" where null is meant (as in the docs' own examples).
fn ad_fields(rng: &mut ChaCha8Rng, c: &Campaign) -> Map<String, Value> {
    let (set, creative) = (rng.random_range(0..3), rng.random_range(0..4));
    let id = |k: u64| format!("1202{:014}", mix(c.salt ^ k) % 10u64.pow(14));
    let publisher = *["facebook", "instagram", "audience_network"]
        .choose(rng)
        .unwrap();
    let position = *["feed", "story", "reels"].choose(rng).unwrap();
    let creative_name = ["Carousel_A", "Carousel_B", "Video_15s", "Static_Blue"][creative as usize];
    let set_name = ["Lookalike 2%", "Broad IN", "Retarget 30d"][set as usize];
    let mut m = object(json!({
        "ad_channel": if c.meta { "META" } else { "GOOGLE" },
        "meta_ad_id": c.meta.then(|| id(100 + set * 10 + creative)),
        "ad_creative_id": id(10 + creative),
        "ad_creative_name": creative_name,
        "ad_set_id": id(set),
        "ad_set_name": set_name,
        "publisher_platform": c.meta.then_some(publisher),
        "platform_position": c.meta.then_some(position),
    }));
    for v in m.values_mut() {
        if !c.meta && !c.google {
            *v = Value::Null;
        }
        if v.is_null() && rng.random_bool(0.05) {
            *v = json!("");
        }
    }
    m
}

/// A new user: ~3% with a null id but a device id, ~1% with neither (told apart by name and email).
/// `next` counts the users made so far and numbers their ids.
fn new_user(rng: &mut ChaCha8Rng, next: &mut u64, at: DateTime<Utc>) -> Map<String, Value> {
    *next += rng.random_range(1..=9);
    let n = 10_000 + *next;
    let kind = rng.random_range(0..100);
    let mut device = if rng.random_bool(0.6) {
        android_device(rng)
    } else {
        ios_device(rng)
    };
    let (first, last) = (*FIRST.choose(rng).unwrap(), *LAST.choose(rng).unwrap());
    let email = format!("{}.{}{}@example.net", first, last, n % 100).to_lowercase();
    let phone = format!("+1555{:07}", rng.random_range(0..10_000_000));
    let mut user = object(json!({
        "id": (kind >= 4).then(|| format!("u_{n}")),
        "name": rng.random_bool(0.9).then(|| format!("{first} {last}")),
        "email": rng.random_bool(0.85).then_some(email),
        "phone": rng.random_bool(0.7).then_some(phone),
    }));
    let strip: &[&str] = match kind {
        0 => &[
            "install_instance_id",
            "device_id",
            "android_id",
            "idfv",
            "idfa",
            "gaid",
        ],
        1 => &["install_instance_id"],
        2 => &["device_id", "android_id", "idfv"],
        _ => &[],
    };
    for k in strip {
        device.remove(*k);
    }
    if kind == 0 {
        user.insert("name".into(), json!(format!("Anon {n}")));
        user.insert("email".into(), json!(format!("anon{n}@example.net")));
    }
    user.insert("device_data".into(), Value::Object(device));
    if rng.random_bool(0.15) {
        user.insert(
            "referral_code".into(),
            json!(format!("REF{}", random_id(rng, 5).to_uppercase())),
        );
    }
    if rng.random_bool(0.15) {
        user.insert("mixpanel_distinct_id".into(), json!(uuid(rng)));
    }
    if rng.random_bool(0.25) {
        user.insert(
            "user_created_at".into(),
            json!(ts(at - TimeDelta::days(rng.random_range(0..400)))),
        );
        user.insert("is_first_time_user".into(), json!(rng.random_bool(0.7)));
    }
    user
}

fn android_device(rng: &mut ChaCha8Rng) -> Map<String, Value> {
    const MODELS: [(&str, &str, &str); 3] = [
        ("google", "Google", "Pixel 8"),
        ("samsung", "samsung", "Galaxy S23"),
        ("xiaomi", "Xiaomi", "Redmi Note 12"),
    ];
    let (brand, manufacturer, device_name) = *MODELS.choose(rng).unwrap();
    let device_id = format!("{:016x}", rng.random::<u64>());
    let mut m = object(json!({
        "brand": brand, "base_os": "", "version": "4.12.0", "build_id": "AP2A.240905.003",
        "api_level": rng.random_range(30..=35), "bundle_id": "org.example.shop",
        "device_id": device_id, "android_id": device_id, "device_name": device_name,
        "device_type": "user", "build_number": "412",
        "connectivity": *["wifi", "cellular"].choose(rng).unwrap(),
        "manufacturer": manufacturer, "application_name": "Example Shop",
        "install_instance_id": uuid(rng),
    }));
    if rng.random_bool(0.7) {
        m.insert("gaid".into(), json!(uuid(rng)));
    }
    m
}

fn ios_device(rng: &mut ChaCha8Rng) -> Map<String, Value> {
    const PLACES: [(&str, &str, &str, i32); 3] = [
        ("en_US", "US", "America/New_York", -240),
        ("en_IN", "IN", "Asia/Kolkata", 330),
        ("es_CL", "CL", "America/Santiago", -180),
    ];
    let (locale, country, timezone, offset) = *PLACES.choose(rng).unwrap();
    object(json!({
        "idfv": uuid(rng).to_uppercase(),
        "idfa": rng.random_bool(0.4).then(|| uuid(rng).to_uppercase()),
        "locale": locale, "country": country, "timezone": timezone, "timezone_offset": offset,
        "device_display": { "scale": 3, "width": 1179, "height": 2556 },
        "install_instance_id": uuid(rng),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn instant(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn tricky_instants_hold_dst_changes_and_midnights() {
        let cfg = SimConfig::small(1);
        let tricky = tricky_instants(cfg.start, cfg.end);
        for t in [
            "2026-03-08T07:00:00Z",
            "2026-11-01T06:00:00Z",
            "2026-03-08T06:59:59.999Z",
            "2026-04-30T18:30:00Z",
            "2026-06-01T00:00:00.001Z",
        ] {
            assert!(tricky.contains(&instant(t)), "{t} missing");
        }
        // Lord Howe moves by 30 minutes (2026-04-04T15:00Z), Santiago at local midnight.
        assert!(tricky.contains(&instant("2026-04-04T15:00:00Z")));
        assert!(tricky.contains(&instant("2026-04-05T03:00:00Z")));
    }

    #[test]
    fn data_set_has_the_promised_shape() {
        let cfg = SimConfig::small(7);
        let campaigns = generate(&cfg);
        assert_eq!(campaigns.len(), 8);
        assert_eq!(campaigns.iter().map(|c| c.rows().len()).sum::<usize>(), 600);
        assert_eq!(campaigns.iter().filter(|c| c.default_link).count(), 1);
        assert!(campaigns.iter().filter(|c| c.rows().len() == 0).count() >= 2);
        assert!(campaigns.iter().any(|c| c.rows().len() >= 180));
        let tricky: HashSet<_> = tricky_instants(cfg.start, cfg.end).into_iter().collect();
        let mut keys = HashSet::new();
        let (mut on_tricky, mut null_ids) = (0, 0);
        for c in &campaigns {
            assert!(c.update_at >= c.created_at);
            for r in c.rows().iter() {
                let at = r.attributed_at();
                assert!(at >= c.created_at && at <= cfg.end);
                on_tricky += usize::from(tricky.contains(&at));
                match r.user_id() {
                    Some(id) => assert!(keys.insert((c.uid, id.to_string(), at))),
                    None => null_ids += 1,
                }
            }
        }
        assert!(
            (30..=120).contains(&on_tricky),
            "{on_tricky} rows on tricky instants"
        );
        assert!(
            (8..=60).contains(&null_ids),
            "{null_ids} rows without user id"
        );
    }

    #[test]
    fn users_are_reattributed_later() {
        let campaigns = generate(&SimConfig::default());
        let mut seen: HashSet<&str> = HashSet::new();
        let rows = campaigns.iter().flat_map(|c| c.rows().iter());
        let repeats = rows
            .filter_map(Row::user_id)
            .filter(|id| !seen.insert(id))
            .count();
        assert!((100..=400).contains(&repeats), "{repeats} reattributions");
    }
}

//! The API's timestamp form, written and recognised exactly, so a time received in it needs no
//! copy in `extra`.

use chrono::{DateTime, Datelike, Timelike, Utc};

/// The API's own timestamp form: UTC, milliseconds, `Z`.
pub fn wire_time(t: DateTime<Utc>) -> String {
    match WireTime::of(t) {
        Some(text) => text.as_str().to_owned(),
        None => chrono_wire_time(t),
    }
}

/// The definition of the wire form; chrono signs years outside 0..=9999.
fn chrono_wire_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// Whether `text` is exactly `t` in the wire form.
pub(super) fn is_wire_time(text: &str, t: DateTime<Utc>) -> bool {
    match WireTime::of(t) {
        Some(wire) => text == wire.as_str(),
        None => text == chrono_wire_time(t),
    }
}

/// [`wire_time`]'s text on the stack, for the years chrono prints as four plain digits.
struct WireTime([u8; 24]);

impl WireTime {
    fn of(t: DateTime<Utc>) -> Option<WireTime> {
        let t = t.naive_utc();
        let year = u32::try_from(t.year()).ok().filter(|&y| y <= 9999)?;
        let nano = t.nanosecond();
        let mut text = *b"0000-00-00T00:00:00.000Z";
        put_digits(&mut text[0..4], year);
        put_digits(&mut text[5..7], t.month());
        put_digits(&mut text[8..10], t.day());
        put_digits(&mut text[11..13], t.hour());
        put_digits(&mut text[14..16], t.minute());
        // As chrono's `%S` and `%.3f` print them: a leap second is second 60.
        put_digits(&mut text[17..19], t.second() + nano / 1_000_000_000);
        put_digits(&mut text[20..23], nano / 1_000_000 % 1000);
        Some(WireTime(text))
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("ASCII digits and separators")
    }
}

/// Writes the last `out.len()` decimal digits of `n`, zero-padded.
fn put_digits(out: &mut [u8], mut n: u32) {
    for digit in out.iter_mut().rev() {
        *digit = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// Parses an offset-carrying timestamp to the microseconds Postgres keeps, so the key a row
/// is matched on in memory is the key stored; a finer original is kept in `extra`.
pub(super) fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    use chrono::SubsecRound;
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc).trunc_subsecs(6))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn wire_time_edges() {
        let at = |text: &str| parse_time(text).unwrap();
        assert_eq!(
            wire_time(at("2026-06-30T23:59:60.5Z")),
            "2026-06-30T23:59:60.500Z"
        );
        assert_eq!(
            wire_time(at("0012-01-02T03:04:05.006Z")),
            "0012-01-02T03:04:05.006Z"
        );
        let far = DateTime::<Utc>::MAX_UTC;
        assert_eq!(
            wire_time(far),
            far.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
        );
        assert!(wire_time(DateTime::<Utc>::MIN_UTC).starts_with('-'));
    }

    /// Seconds since the epoch anywhere chrono can go, and often near years 0 and 10000.
    fn epoch_seconds() -> impl Strategy<Value = i64> {
        const YEAR_0: i64 = -62_167_219_200;
        const YEAR_10000: i64 = 253_402_300_800;
        const SPAN: i64 = 400 * 86_400;
        prop_oneof![
            DateTime::<Utc>::MIN_UTC.timestamp()..=DateTime::<Utc>::MAX_UTC.timestamp(),
            YEAR_0 - SPAN..YEAR_0 + SPAN,
            YEAR_10000 - SPAN..YEAR_10000 + SPAN,
            0i64..4_000_000_000,
        ]
    }

    proptest! {
        /// The wire form is chrono's `%Y-%m-%dT%H:%M:%S%.3fZ`, leap seconds included.
        #[test]
        fn wire_time_is_chronos_format(secs in epoch_seconds(), nanos in 0u32..1_000_000_000, leap in any::<bool>()) {
            // chrono keeps a leap second as second 59 with more than 10^9 nanoseconds.
            let (secs, nanos) = if leap { (secs - secs.rem_euclid(60) + 59, nanos + 1_000_000_000) } else { (secs, nanos) };
            if let Some(t) = DateTime::from_timestamp(secs, nanos) {
                let expected = t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
                prop_assert_eq!(wire_time(t), expected.as_str());
                prop_assert!(is_wire_time(&expected, t));
            }
        }

    }
}

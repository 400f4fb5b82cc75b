//! The Reporting API's numbers as the dashboard prints them: `"3,201"`, `"$12,540.50"`,
//! `"95.38%"`, `"0.98"`. Worked out in integers, so a value never depends on float rounding; a
//! ratio over zero prints as zero.

/// A count with thousands separators.
pub(super) fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(d);
    }
    out
}

/// Cents as dollars.
pub(super) fn money(cents: u64) -> String {
    format!("${}", hundredths(cents))
}

/// `part / whole` as a percentage with two decimals.
pub(super) fn percent(part: u64, whole: u64) -> String {
    format!("{}%", hundredths(divide(part, 10_000, whole)))
}

/// `num / den` with two decimals.
pub(super) fn ratio(num: u64, den: u64) -> String {
    hundredths(divide(num, 100, den))
}

/// `cents / n` in dollars: a cost per install, per sign-up.
pub(super) fn cost_per(cents: u64, n: u64) -> String {
    money(divide(cents, 1, n))
}

/// `x * scale / d`, rounded half up; 0 when `d` is 0.
pub(super) fn divide(x: u64, scale: u64, d: u64) -> u64 {
    if d == 0 {
        return 0;
    }
    let (x, scale, d) = (u128::from(x), u128::from(scale), u128::from(d));
    ((2 * x * scale + d) / (2 * d)) as u64
}

/// Hundredths as a decimal with two places, its whole part grouped.
fn hundredths(n: u64) -> String {
    format!("{}.{:02}", count(n / 100), n % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_grouped_by_thousands() {
        let cases = [
            (0, "0"),
            (999, "999"),
            (1_000, "1,000"),
            (3_201, "3,201"),
            (1_234_567, "1,234,567"),
        ];
        for (n, text) in cases {
            assert_eq!(count(n), text);
        }
    }

    #[test]
    fn money_percentages_and_ratios_have_two_decimals() {
        assert_eq!(money(1_254_050), "$12,540.50");
        assert_eq!(money(7), "$0.07");
        assert_eq!(money(0), "$0.00");
        assert_eq!(percent(3201, 3356), "95.38%");
        assert_eq!(percent(1, 3), "33.33%");
        assert_eq!(percent(2, 3), "66.67%");
        assert_eq!(percent(0, 0), "0.00%");
        assert_eq!(ratio(98, 100), "0.98");
        assert_eq!(ratio(123_456, 100), "1,234.56");
        assert_eq!(ratio(5, 0), "0.00");
        assert_eq!(cost_per(1_000, 3), "$3.33");
        assert_eq!(cost_per(1_000, 0), "$0.00");
    }
}

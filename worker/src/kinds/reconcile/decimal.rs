//! Comparing CSV values: as decimal numbers when both sides are numbers
//! (`10.0` equals `10`, `1e2` equals `100`), else as trimmed strings.
//!
//! Numbers are normalised exactly (sign, significant digits, power of ten)
//! rather than parsed into a float or a fixed-precision decimal, so any
//! length of number compares exactly.

/// A number in canonical form: `digits × 10^exp`, no leading or trailing zeros.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Canonical {
    negative: bool,
    digits: String,
    exp: i64,
}

/// Parses `[+-]digits[.digits][e[+-]digits]`; with `decimal_comma`, `,` is
/// accepted as the decimal point (for `;`-separated files) when there is no `.`.
pub(crate) fn canonical(s: &str, decimal_comma: bool) -> Option<Canonical> {
    let s = s.trim();
    let (negative, s) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let (mantissa, exp) = match s.find(['e', 'E']) {
        Some(i) => {
            let e = &s[i + 1..];
            let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
            if digits.is_empty() || digits.len() > 9 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return None;
            }
            (&s[..i], e.parse::<i64>().ok()?)
        }
        None => (s, 0),
    };
    let point = if mantissa.contains('.') {
        Some('.')
    } else if decimal_comma && mantissa.contains(',') {
        Some(',')
    } else {
        None
    };
    let (int, frac) = match point {
        Some(p) => mantissa.split_once(p)?,
        None => (mantissa, ""),
    };
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut digits: String = int.chars().chain(frac.chars()).collect();
    let mut exp = exp - frac.len() as i64;
    let trailing = digits.len() - digits.trim_end_matches('0').len();
    digits.truncate(digits.len() - trailing);
    exp += trailing as i64;
    let digits = digits.trim_start_matches('0').to_string();
    if digits.is_empty() {
        return Some(Canonical {
            negative: false,
            digits,
            exp: 0,
        });
    }
    Some(Canonical {
        negative,
        digits,
        exp,
    })
}

/// Whether two CSV values are equal under the contract's rule.
pub(crate) fn values_equal(a: &str, b: &str, a_decimal_comma: bool, b_decimal_comma: bool) -> bool {
    let (a, b) = (a.trim(), b.trim());
    if a == b {
        return true;
    }
    match (canonical(a, a_decimal_comma), canonical(b, b_decimal_comma)) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_compare_by_value() {
        let eq = |a, b| values_equal(a, b, false, false);
        assert!(eq("10.0", "10"));
        assert!(eq("010", "10.000"));
        assert!(eq("-0", "0.00"));
        assert!(eq("+1.5", "1.50"));
        assert!(eq("1e2", "100"));
        assert!(eq("1.25E-1", "0.125"));
        assert!(eq(".5", "0.5"));
        assert!(eq("5.", "5"));
        assert!(eq(" 10 ", "10.0"));
        assert!(eq(
            "123456789012345678901234567890.1",
            "123456789012345678901234567890.10"
        ));
        assert!(!eq("10.01", "10"));
        assert!(!eq("-1", "1"));
        assert!(!eq("1e2", "10"));
    }

    #[test]
    fn non_numbers_compare_as_trimmed_strings() {
        let eq = |a, b| values_equal(a, b, false, false);
        assert!(eq(" abc", "abc "));
        assert!(!eq("abc", "ABC"));
        assert!(!eq("10", "ten"));
        assert!(!eq("1,5", "1.5"));
        for junk in [
            "", ".", "-", "1.2.3", "1e", "e5", "1 000", "0x10", "NaN", "inf",
        ] {
            assert_eq!(canonical(junk, false), None, "{junk}");
        }
    }

    #[test]
    fn decimal_commas_in_semicolon_files() {
        assert!(values_equal("1,50", "1.5", true, false));
        assert!(!values_equal("1,50", "1.5", false, false));
    }
}

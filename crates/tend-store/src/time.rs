//! Timestamps as the store writes them: UTC, RFC 3339 with milliseconds
//! (`2025-01-02T03:04:05.006Z`), so that text order is time order in both backends.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in the store's format.
pub fn now() -> String {
    format(now_millis())
}

pub fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Days since 1970-01-01 → (year, month, day) (Howard Hinnant's civil_from_days).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month, day) → days since 1970-01-01.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Milliseconds since the epoch → the store's format.
pub fn format(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    let (y, m, d) = civil(days);
    let (h, rem) = (rem / 3_600_000, rem % 3_600_000);
    let (min, rem) = (rem / 60_000, rem % 60_000);
    let (s, milli) = (rem / 1000, rem % 1000);
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}.{milli:03}Z")
}

/// A timestamp written by [`format`] (or a prefix of it: date, date and minutes …) →
/// milliseconds since the epoch.
pub fn parse(s: &str) -> Option<i64> {
    let s = s.trim().trim_end_matches('Z');
    let (date, clock) = match s.split_once(['T', ' ']) {
        Some((d, c)) => (d, c),
        None => (s, ""),
    };
    let mut dp = date.split('-');
    let y: i64 = dp.next()?.parse().ok()?;
    let m: u32 = dp.next()?.parse().ok()?;
    let d: u32 = dp.next()?.parse().ok()?;
    if dp.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let mut ms = days_from_civil(y, m, d) * 86_400_000;
    if !clock.is_empty() {
        let mut cp = clock.split(':');
        let h: i64 = cp.next()?.parse().ok()?;
        let min: i64 = cp.next().map_or(Some(0), |v| v.parse().ok())?;
        let sec: f64 = cp.next().map_or(Some(0.0), |v| v.parse().ok())?;
        if h > 23 || min > 59 || !(0.0..61.0).contains(&sec) {
            return None;
        }
        ms += h * 3_600_000 + min * 60_000 + (sec * 1000.0).round() as i64;
    }
    Some(ms)
}

/// The UTC day of a stored timestamp: `2025-01-02`.
pub fn day(ts: &str) -> &str {
    ts.get(..10).unwrap_or(ts)
}

/// A `--since`/`--until` value → a stored-format bound: a date (`2025-01-02`), a date and time
/// (`2025-01-02T10:00`, UTC), or an age before now (`30m`, `12h`, `7d`).
pub fn bound(s: &str) -> Option<String> {
    let s = s.trim();
    if let Some(unit) = s
        .chars()
        .last()
        .filter(|c| matches!(c, 'm' | 'h' | 'd' | 'w'))
    {
        if let Ok(n) = s[..s.len() - 1].parse::<i64>() {
            let per = match unit {
                'm' => 60_000,
                'h' => 3_600_000,
                'd' => 86_400_000,
                _ => 7 * 86_400_000,
            };
            return Some(format(now_millis() - n * per));
        }
    }
    parse(s).map(format)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_and_parse_round_trip() {
        for ms in [
            0,
            951_782_400_000,
            1_735_787_045_006,
            4_102_444_799_999,
            -86_400_000,
        ] {
            assert_eq!(parse(&format(ms)), Some(ms), "{}", format(ms));
        }
        assert_eq!(format(1_735_787_045_006), "2025-01-02T03:04:05.006Z");
        assert_eq!(format(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn bounds_accept_dates_times_and_ages() {
        assert_eq!(
            bound("2025-01-02").as_deref(),
            Some("2025-01-02T00:00:00.000Z")
        );
        assert_eq!(
            bound("2025-01-02T10:30").as_deref(),
            Some("2025-01-02T10:30:00.000Z")
        );
        let week = parse(&bound("1w").unwrap()).unwrap();
        assert!((now_millis() - week - 7 * 86_400_000).abs() < 5_000);
        assert_eq!(bound("yesterday"), None);
        assert_eq!(bound("2025-13-01"), None);
    }

    #[test]
    fn text_order_is_time_order() {
        let a = format(1_000);
        let b = format(999_999_999_999);
        assert!(a < b);
        assert_eq!(day(&b), "2001-09-09");
    }
}

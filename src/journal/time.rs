//! UTC timestamps: RFC 3339 with nanoseconds from `SystemTime`, and the time bounds auditors type.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Nanoseconds since the Unix epoch (negative before 1970).
pub type UnixNanos = i128;

const NANOS_PER_SEC: i128 = 1_000_000_000;

/// Nanoseconds since the epoch for a `SystemTime`.
pub fn unix_nanos(t: SystemTime) -> UnixNanos {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

/// Formats as `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`: fixed width, so that for years
/// 0000-9999 string order is time order (the query prefilter relies on it).
pub fn format_rfc3339_nanos(t: SystemTime) -> String {
    format_unix_nanos(unix_nanos(t))
}

/// Same as [`format_rfc3339_nanos`] for a raw nanosecond count.
pub fn format_unix_nanos(n: UnixNanos) -> String {
    let secs = n.div_euclid(NANOS_PER_SEC);
    let nanos = n.rem_euclid(NANOS_PER_SEC);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    // Years outside 0..=9999 cannot be written in four digits; clamp so the
    // fixed-width promise holds (no journal will ever hold such a time).
    let (y, m, d, sod, nanos) = if y < 0 {
        (0, 1, 1, 0, 0)
    } else if y > 9999 {
        (9999, 12, 31, 86_399, NANOS_PER_SEC - 1)
    } else {
        (y, m, d, sod, nanos)
    };
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z", sod / 3600, (sod / 60) % 60, sod % 60)
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (H. Hinnant's `civil_from_days`).
fn civil_from_days(z: i128) -> (i128, u32, u32) {
    let z = z + 719_468;
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

/// (year, month, day) to days since 1970-01-01 (H. Hinnant's `days_from_civil`).
fn days_from_civil(y: i128, m: u32, d: u32) -> i128 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = m as i128;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i128 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(y: i128, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// Parses the forms `--since`/`--until` accept: `YYYY-MM-DD` (midnight UTC),
/// `YYYY-MM-DDTHH:MM:SSZ`, and full RFC 3339 (`T` or space, optional fraction
/// up to nanoseconds, `Z` or `±HH:MM`). Returns `None` for anything else.
pub fn parse_time(s: &str) -> Option<UnixNanos> {
    let b = s.trim().as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = b.get(r)?;
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    let year = num(0..4)? as i128;
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    let month = num(5..7)?;
    let day = num(8..10)?;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    if b.len() == 10 {
        return Some(days * 86_400 * NANOS_PER_SEC);
    }
    if !matches!(b.get(10), Some(b'T' | b't' | b' ')) || b.get(13) != Some(&b':') || b.get(16) != Some(&b':') {
        return None;
    }
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    // 60 allows a leap second as written; it is counted as the next second.
    if hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let mut i = 19;
    let mut nanos: i128 = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        let digits = i - start;
        if digits == 0 || digits > 9 {
            return None;
        }
        nanos = num(start..i)? as i128 * 10i128.pow((9 - digits) as u32);
    }
    let offset_secs: i128 = match b.get(i) {
        Some(b'Z' | b'z') if b.len() == i + 1 => 0,
        Some(sign @ (b'+' | b'-')) if b.len() == i + 6 && b[i + 3] == b':' => {
            let oh = num(i + 1..i + 3)? as i128;
            let om = num(i + 4..i + 6)? as i128;
            if oh > 23 || om > 59 {
                return None;
            }
            let o = oh * 3600 + om * 60;
            if *sign == b'+' { o } else { -o }
        }
        _ => return None,
    };
    let secs = days * 86_400 + (hh * 3600 + mm * 60 + ss) as i128 - offset_secs;
    Some(secs * NANOS_PER_SEC + nanos)
}

/// `SystemTime` for a nanosecond count (used by tests and by `follow`).
pub fn system_time(n: UnixNanos) -> SystemTime {
    if n >= 0 {
        UNIX_EPOCH + Duration::from_nanos(n.min(u64::MAX as i128) as u64)
    } else {
        UNIX_EPOCH - Duration::from_nanos((-n).min(u64::MAX as i128) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_fixed_width_with_nanoseconds() {
        assert_eq!(format_unix_nanos(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(format_unix_nanos(1_700_000_000_123_456_789), "2023-11-14T22:13:20.123456789Z");
        assert_eq!(format_unix_nanos(951_782_400 * NANOS_PER_SEC), "2000-02-29T00:00:00.000000000Z");
        assert_eq!(format_unix_nanos(-1), "1969-12-31T23:59:59.999999999Z");
    }

    #[test]
    fn parse_round_trips_format_over_many_days() {
        // Sweep ~ 200 years in steps of 7 days and 12345 s so every month and
        // leap rule is crossed.
        let mut n: i128 = -5 * 365 * 86_400 * NANOS_PER_SEC;
        while n < 200 * 365 * 86_400 * NANOS_PER_SEC {
            let s = format_unix_nanos(n);
            assert_eq!(parse_time(&s), Some(n), "{s}");
            n += (7 * 86_400 + 12_345) * NANOS_PER_SEC + 987_654_321;
        }
    }

    #[test]
    fn parses_the_accepted_forms() {
        let day = parse_time("2026-05-01").unwrap();
        assert_eq!(format_unix_nanos(day), "2026-05-01T00:00:00.000000000Z");
        assert_eq!(parse_time("2026-05-01T00:00:00Z"), Some(day));
        assert_eq!(parse_time("2026-05-01 02:00:00+02:00"), Some(day));
        assert_eq!(parse_time("2026-04-30T23:00:00.5-01:00"), Some(day + NANOS_PER_SEC / 2));
        assert_eq!(parse_time("2026-05-01T00:00:00.000000001Z"), Some(day + 1));
    }

    #[test]
    fn rejects_malformed_times_without_panicking() {
        for bad in [
            "",
            "2026",
            "2026-13-01",
            "2026-02-30",
            "2026-05-01T",
            "2026-05-01T25:00:00Z",
            "2026-05-01T00:00:00",
            "2026-05-01T00:00:00.Z",
            "2026-05-01T00:00:00.1234567890Z",
            "2026-05-01T00:00:00+2",
            "yesterday",
            "२०२६-05-01",
            "2026-05-01T00:00:00Zjunk",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }
}

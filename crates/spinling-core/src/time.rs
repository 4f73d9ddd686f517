//! Qinling's timestamp format: `YYYY-MM-DDTHH:MM:SSZ`, UTC, whole seconds.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, now.
pub fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Formats seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format_timestamp(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        (secs % 3600) / 60,
        secs % 60
    )
}

/// The current time in Qinling's format.
pub fn now_timestamp() -> String {
    format_timestamp(now_unix())
}

/// Seconds since the epoch of an ISO 8601 UTC time as Keystone writes it
/// (`2026-11-27T18:25:21.000000Z`; fractions are dropped, `Z` or `+00:00` accepted).
pub fn parse_timestamp(text: &str) -> Option<i64> {
    let text = text
        .strip_suffix('Z')
        .or_else(|| text.strip_suffix("+00:00"))?;
    let (date, time) = text.split_once('T')?;
    let time = time.split('.').next()?;
    let number = |s: &str| s.parse::<i64>().ok();
    let mut date = date.splitn(3, '-').map(number);
    let (year, month, day) = (date.next()??, date.next()??, date.next()??);
    let mut time = time.splitn(3, ':').map(number);
    let (hour, minute, second) = (time.next()??, time.next()??, time.next()??);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || !(0..24).contains(&hour)
        || !(0..60).contains(&minute)
        || !(0..=60).contains(&second)
    {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Howard Hinnant's civil-to-days algorithm, the inverse of `civil_from_days`.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian calendar).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_the_epoch() {
        assert_eq!(format_timestamp(0), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn formats_a_leap_day_and_time_of_day() {
        // 2024-02-29T13:45:07Z
        assert_eq!(format_timestamp(1_709_214_307), "2024-02-29T13:45:07Z");
    }

    #[test]
    fn parses_what_it_formats_and_keystone_times() {
        for unix in [0, 1_709_214_307, 1_767_225_599, 4_102_444_800] {
            assert_eq!(parse_timestamp(&format_timestamp(unix)), Some(unix));
        }
        assert_eq!(
            parse_timestamp("2024-02-29T13:45:07.123456Z"),
            Some(1_709_214_307)
        );
        assert_eq!(
            parse_timestamp("2024-02-29T13:45:07+00:00"),
            Some(1_709_214_307)
        );
        assert_eq!(parse_timestamp("2024-02-29 13:45:07"), None);
        assert_eq!(parse_timestamp("2024-13-01T00:00:00Z"), None);
    }

    #[test]
    fn formats_the_end_of_a_year() {
        assert_eq!(format_timestamp(1_767_225_599), "2025-12-31T23:59:59Z");
    }
}

//! When jobs fire: cron patterns (Vixie cron's rules, in UTC) and the timestamps a client
//! gives for a first execution.

use crate::error::{ApiError, ApiResult};
use crate::time::{format_timestamp, parse_timestamp};

/// A five-field cron pattern (minute, hour, day of month, month, day of week), read in UTC
/// with Vixie cron's rules (as Python's croniter, which Qinling uses).
pub struct Pattern(croner::Cron);

impl Pattern {
    pub fn parse(text: &str) -> ApiResult<Pattern> {
        let invalid =
            || ApiError::bad_request(format!("The specified pattern is not valid: {text}"));
        if text.split_whitespace().count() != 5 {
            return Err(invalid());
        }
        croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Disallowed)
            .year(croner::parser::Year::Disallowed)
            .build()
            .parse(text)
            .map(Pattern)
            .map_err(|_| invalid())
    }

    /// The first tick strictly after `unix` (seconds), if any within croner's years.
    pub fn next_after(&self, unix: i64) -> Option<i64> {
        let start = chrono::DateTime::<chrono::Utc>::from_timestamp(unix, 0)?;
        self.0
            .find_next_occurrence(&start, false)
            .ok()
            .map(|t| t.timestamp())
    }
}

/// Reads a job time as Python's `dateutil.parser.parse(..., ignoretz=True)` reads the usual
/// forms: `YYYY-MM-DD`, then optionally `T` or a space and `HH:MM[:SS[.fraction]]`, then an
/// optional `Z` or `±HH[:]MM`, which is ignored (the time is taken as UTC). Anything else
/// gets dateutil's message.
pub fn parse_time(text: &str) -> ApiResult<i64> {
    parse_time_parts(text.trim())
        .ok_or_else(|| ApiError::bad_request(format!("Unknown string format: {text}")))
}

fn parse_time_parts(text: &str) -> Option<i64> {
    let (date, time) = match text.find(['T', 't', ' ']) {
        Some(i) => (&text[..i], text[i + 1..].trim()),
        None => (text, ""),
    };
    let digits = |s: &str, n: usize| {
        (s.len() == n && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse::<i64>().ok())?
    };
    let mut parts = date.split('-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let (year, month, day) = (digits(y, 4)?, digits(m, 2)?, digits(d, 2)?);
    let clock = time
        .trim_end_matches(['Z', 'z'])
        .split(['+', '-'])
        .next()
        .unwrap_or_default()
        .split('.')
        .next()
        .unwrap_or_default();
    let (hour, minute, second) = match clock {
        "" => (0, 0, 0),
        clock => {
            let mut hms = clock.split(':');
            let hour = digits(hms.next()?, 2)?;
            let minute = digits(hms.next()?, 2)?;
            let second = match hms.next() {
                Some(s) => digits(s, 2)?,
                None => 0,
            };
            if hms.next().is_some() {
                return None;
            }
            (hour, minute, second)
        }
    };
    let stamp = format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z");
    let unix = parse_timestamp(&stamp)?;
    // parse_timestamp allows the 31st of any month: a date that did not round-trip is none.
    (format_timestamp(unix) == stamp).then_some(unix)
}

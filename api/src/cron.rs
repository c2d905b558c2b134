//! CronJob schedules, read as Kubernetes reads them (robfig/cron's
//! `ParseStandard`): five fields (minute, hour, day of month, month, day of
//! week) with `*`, `?`, lists, ranges, steps and month/day names; the macros
//! `@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight`,
//! `@hourly` and `@every DURATION`; a `TZ=`/`CRON_TZ=` prefix. Errors are
//! robfig's words, which Kubernetes returns. The times a schedule names are
//! computed in an IANA time zone (the system's zone database, through jiff).
//!
//! Kubernetes' parser is used rather than a general cron crate because the
//! grammar must be exactly Kubernetes': crates such as croner also accept
//! seconds, `L`, `W` and `#`, which Kubernetes refuses.

use jiff::ToSpan as _;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// The zone named by a `TZ=`/`CRON_TZ=` prefix, if any.
    pub zone: Option<String>,
    what: What,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum What {
    Fields(Fields),
    /// `@every`: a fixed interval in seconds (at least 1).
    Every(i64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Fields {
    minute: u64,
    hour: u64,
    dom: u64,
    month: u64,
    dow: u64,
    /// Day of month or day of week was `*`/`?`: both must match (else either).
    day_star: bool,
}

const MONTHS: &[&str] = &[
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

struct Bounds {
    min: u32,
    max: u32,
    names: &'static [&'static str],
    /// The value of the first name.
    first_name: u32,
}

const MINUTE: Bounds = Bounds {
    min: 0,
    max: 59,
    names: &[],
    first_name: 0,
};
const HOUR: Bounds = Bounds {
    min: 0,
    max: 23,
    names: &[],
    first_name: 0,
};
const DOM: Bounds = Bounds {
    min: 1,
    max: 31,
    names: &[],
    first_name: 0,
};
const MONTH: Bounds = Bounds {
    min: 1,
    max: 12,
    names: MONTHS,
    first_name: 1,
};
const DOW: Bounds = Bounds {
    min: 0,
    max: 6,
    names: DAYS,
    first_name: 0,
};

/// Parses a schedule; the error is the message Kubernetes gives.
pub fn parse(spec: &str) -> Result<Schedule, String> {
    if spec.is_empty() {
        return Err("empty spec string".to_owned());
    }
    let mut rest = spec.trim_start();
    let mut zone = None;
    if rest.starts_with("TZ=") || rest.starts_with("CRON_TZ=") {
        let Some(end) = rest.find(' ') else {
            return Err(format!(
                "provided bad location {rest}: no schedule after it"
            ));
        };
        let (_, name) = rest[..end].split_once('=').unwrap_or(("", ""));
        zone_of(name).map_err(|e| format!("provided bad location {name}: {e}"))?;
        zone = Some(name.to_owned());
        rest = rest[end..].trim();
    }
    if rest.starts_with('@') {
        return Ok(Schedule {
            zone,
            what: descriptor(rest)?,
        });
    }
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "expected exactly 5 fields, found {}: [{}]",
            fields.len(),
            fields.join(" ")
        ));
    }
    let (dom, dom_star) = field(fields[2], &DOM)?;
    let (dow, dow_star) = field(fields[4], &DOW)?;
    Ok(Schedule {
        zone,
        what: What::Fields(Fields {
            minute: field(fields[0], &MINUTE)?.0,
            hour: field(fields[1], &HOUR)?.0,
            dom,
            month: field(fields[3], &MONTH)?.0,
            dow,
            day_star: dom_star || dow_star,
        }),
    })
}

fn descriptor(d: &str) -> Result<What, String> {
    let std = |s: &str| parse(s).map(|s| s.what);
    match d {
        "@yearly" | "@annually" => std("0 0 1 1 *"),
        "@monthly" => std("0 0 1 * *"),
        "@weekly" => std("0 0 * * 0"),
        "@daily" | "@midnight" => std("0 0 * * *"),
        "@hourly" => std("0 * * * *"),
        _ => match d.strip_prefix("@every ") {
            Some(text) => {
                let secs = go_duration(text.trim())
                    .map_err(|e| format!("failed to parse duration {d}: {e}"))?;
                Ok(What::Every(secs.max(1)))
            }
            None => Err(format!("unrecognized descriptor: {d}")),
        },
    }
}

/// A Go duration (`1h30m`, `90s`, `2m`), whole seconds.
fn go_duration(text: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration \"{text}\"");
    if text.is_empty() {
        return Err(invalid());
    }
    let (mut total, mut number) = (0f64, String::new());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let mut unit = c.to_string();
        while let Some(&n) = chars.peek() {
            if n.is_ascii_digit() || n == '.' {
                break;
            }
            unit.push(n);
            chars.next();
        }
        let n: f64 = number.parse().map_err(|_| invalid())?;
        number.clear();
        total += n * match unit.as_str() {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            "us" | "µs" => 0.000_001,
            "ns" => 0.000_000_001,
            _ => {
                return Err(format!(
                    "time: unknown unit \"{unit}\" in duration \"{text}\""
                ));
            }
        };
    }
    if !number.is_empty() {
        return Err(format!("time: missing unit in duration \"{text}\""));
    }
    // Whole seconds, as robfig rounds the interval down.
    #[allow(clippy::cast_possible_truncation)]
    Ok(total.floor() as i64)
}

/// One field: its bits and whether it was `*`/`?`.
fn field(text: &str, b: &Bounds) -> Result<(u64, bool), String> {
    let mut bits = 0u64;
    let mut star = false;
    for part in text.split(',') {
        let (b2, s) = range(part, b)?;
        bits |= b2;
        star |= s;
    }
    Ok((bits, star))
}

fn range(expr: &str, b: &Bounds) -> Result<(u64, bool), String> {
    let (range_part, step) = match expr.split('/').collect::<Vec<_>>()[..] {
        [r] => (r, None),
        [r, s] => (r, Some(s)),
        _ => return Err(format!("too many slashes: {expr}")),
    };
    let low_high: Vec<&str> = range_part.split('-').collect();
    let single = low_high.len() == 1;
    let (start, mut end, star) = if range_part == "*" || range_part == "?" {
        (b.min, b.max, true)
    } else {
        let start = value(low_high[0], b)?;
        let end = match low_high[..] {
            [_] => start,
            [_, e] => value(e, b)?,
            _ => return Err(format!("too many hyphens: {expr}")),
        };
        (start, end, false)
    };
    let step = match step {
        None => 1,
        Some(s) => {
            let n = number(s)?;
            if single && !star {
                end = b.max;
            }
            if n > 1 {
                // A step over `*` is not the whole range any more.
                return finish(start, end, n, false, expr, b);
            }
            n
        }
    };
    finish(start, end, step, star, expr, b)
}

fn finish(
    start: u32,
    end: u32,
    step: u32,
    star: bool,
    expr: &str,
    b: &Bounds,
) -> Result<(u64, bool), String> {
    if start < b.min {
        return Err(format!(
            "beginning of range ({start}) below minimum ({}): {expr}",
            b.min
        ));
    }
    if end > b.max {
        return Err(format!(
            "end of range ({end}) above maximum ({}): {expr}",
            b.max
        ));
    }
    if start > end {
        return Err(format!(
            "beginning of range ({start}) beyond end of range ({end}): {expr}"
        ));
    }
    if step == 0 {
        return Err(format!("step of range should be a positive number: {expr}"));
    }
    let mut bits = 0u64;
    let mut v = start;
    while v <= end {
        bits |= 1 << v;
        v += step;
    }
    Ok((bits, star))
}

fn value(text: &str, b: &Bounds) -> Result<u32, String> {
    let lower = text.to_ascii_lowercase();
    if let Some(i) = b.names.iter().position(|n| *n == lower) {
        return Ok(u32::try_from(i).unwrap_or(0) + b.first_name);
    }
    number(text)
}

fn number(text: &str) -> Result<u32, String> {
    let n: i64 = text.parse().map_err(|_| {
        format!("failed to parse int from {text}: strconv.Atoi: parsing \"{text}\": invalid syntax")
    })?;
    if n < 0 {
        return Err(format!("negative number ({n}) not allowed: {text}"));
    }
    u32::try_from(n).map_err(|_| format!("end of range ({n}) above maximum: {text}"))
}

/// The zone of an IANA name, with Kubernetes' refusals (`Local`, `..`).
pub fn zone_of(name: &str) -> Result<TimeZone, String> {
    if name.is_empty() || name.eq_ignore_ascii_case("local") {
        return Err(format!("unknown time zone {name}"));
    }
    let bad_part = name.split('/').any(|p| {
        p == "."
            || p == ".."
            || p.starts_with('-')
            || !p
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-+".contains(c))
    });
    if bad_part {
        return Err(format!("unknown time zone {name}"));
    }
    TimeZone::get(name).map_err(|_| format!("unknown time zone {name}"))
}

impl Schedule {
    /// Whether the schedule is `@every` (a fixed interval).
    pub fn interval(&self) -> Option<i64> {
        match self.what {
            What::Every(s) => Some(s),
            What::Fields(_) => None,
        }
    }

    /// The first time the schedule names strictly after `after` (seconds
    /// since the epoch), read in `zone` (the prefix's zone wins); `None` if
    /// none within five years (`30 0 31 2 *`).
    pub fn next_after(&self, after: i64, zone: &TimeZone) -> Option<i64> {
        let f = match &self.what {
            What::Every(s) => return after.checked_add(*s),
            What::Fields(f) => f,
        };
        let own;
        let tz = match &self.zone {
            Some(name) => {
                own = zone_of(name).ok()?;
                &own
            }
            None => zone,
        };
        let first = after.checked_add(60 - after.rem_euclid(60))?;
        let start = jiff::Timestamp::from_second(first)
            .ok()?
            .to_zoned(tz.clone());
        let mut dt: DateTime = start.datetime();
        let limit = dt.year() + 5;
        while dt.year() <= limit {
            if f.month & (1 << dt.month()) == 0 {
                dt = dt
                    .first_of_month()
                    .date()
                    .at(0, 0, 0, 0)
                    .checked_add(1.month())
                    .ok()?;
                continue;
            }
            if !day_matches(f, &dt) {
                dt = dt.date().tomorrow().ok()?.at(0, 0, 0, 0);
                continue;
            }
            if f.hour & (1 << dt.hour()) == 0 {
                dt = dt
                    .date()
                    .at(dt.hour(), 0, 0, 0)
                    .checked_add(1.hour())
                    .ok()?;
                continue;
            }
            if f.minute & (1 << dt.minute()) == 0 {
                dt = dt.checked_add(1.minute()).ok()?;
                continue;
            }
            let at = tz
                .to_ambiguous_zoned(dt)
                .compatible()
                .ok()?
                .timestamp()
                .as_second();
            if at > after {
                return Some(at);
            }
            dt = dt.checked_add(1.minute()).ok()?;
        }
        None
    }
}

fn day_matches(f: &Fields, dt: &DateTime) -> bool {
    let dom = f.dom & (1 << dt.day()) != 0;
    let dow = f.dow & (1 << dt.weekday().to_sunday_zero_offset()) != 0;
    if f.day_star { dom && dow } else { dom || dow }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(y: i16, mo: i8, d: i8, h: i8, mi: i8) -> i64 {
        jiff::civil::date(y, mo, d)
            .at(h, mi, 0, 0)
            .to_zoned(TimeZone::UTC)
            .expect("a UTC time")
            .timestamp()
            .as_second()
    }

    fn next(spec: &str, after: i64) -> Option<i64> {
        parse(spec).expect(spec).next_after(after, &TimeZone::UTC)
    }

    #[test]
    fn fields_steps_names_and_macros() {
        let t = utc(2026, 12, 7, 17, 42);
        assert_eq!(next("*/1 * * * *", t), Some(utc(2026, 12, 7, 17, 43)));
        assert_eq!(next("*/15 * * * *", t), Some(utc(2026, 12, 7, 17, 45)));
        assert_eq!(next("5 4 * * sun", t), Some(utc(2026, 12, 13, 4, 5)));
        assert_eq!(next("0 0 1 JAN,jul *", t), Some(utc(2027, 1, 1, 0, 0)));
        assert_eq!(next("@hourly", t), Some(utc(2026, 12, 7, 18, 0)));
        assert_eq!(next("@daily", t), Some(utc(2026, 12, 8, 0, 0)));
        assert_eq!(next("@weekly", t), Some(utc(2026, 12, 13, 0, 0)));
        assert_eq!(next("@monthly", t), Some(utc(2027, 1, 1, 0, 0)));
        assert_eq!(next("@yearly", t), Some(utc(2027, 1, 1, 0, 0)));
        assert_eq!(next("@every 10s", t), Some(t + 10));
        assert_eq!(next("@every 1m30s", t), Some(t + 90));
        assert_eq!(next("10-20/5 * * * *", t), Some(utc(2026, 12, 7, 18, 10)));
        assert_eq!(next("30 0 30 2 *", t), None, "February has no 30th");
        // Day of month and day of week, both restricted: either matches.
        assert_eq!(next("0 0 25 * fri", t), Some(utc(2026, 12, 11, 0, 0)));
        // One of them `*`: both must.
        assert_eq!(next("0 0 * 12 mon", t), Some(utc(2026, 12, 14, 0, 0)));
    }

    #[test]
    fn zones() {
        let t = utc(2026, 12, 7, 17, 42);
        let berlin = zone_of("Europe/Berlin").expect("the zone database has Berlin");
        // 03:00 in Berlin (UTC+1 in December) is 02:00 UTC.
        assert_eq!(
            parse("0 3 * * *").expect("valid").next_after(t, &berlin),
            Some(utc(2026, 12, 8, 2, 0))
        );
        let prefixed = parse("CRON_TZ=Europe/Berlin 0 3 * * *").expect("valid");
        assert_eq!(prefixed.zone.as_deref(), Some("Europe/Berlin"));
        assert_eq!(
            prefixed.next_after(t, &TimeZone::UTC),
            Some(utc(2026, 12, 8, 2, 0))
        );
        assert!(zone_of("Local").is_err());
        assert!(zone_of("Mars/Olympus").is_err());
        assert!(zone_of("../etc/passwd").is_err());
    }

    #[test]
    fn robfig_errors() {
        let err = |s: &str| parse(s).expect_err(s);
        assert_eq!(err("x"), "expected exactly 5 fields, found 1: [x]");
        assert_eq!(err(""), "empty spec string");
        assert_eq!(
            err("60 * * * *"),
            "end of range (60) above maximum (59): 60"
        );
        assert_eq!(
            err("* * 0 * *"),
            "beginning of range (0) below minimum (1): 0"
        );
        assert_eq!(
            err("5-1 * * * *"),
            "beginning of range (5) beyond end of range (1): 5-1"
        );
        assert_eq!(
            err("*/0 * * * *"),
            "step of range should be a positive number: */0"
        );
        assert_eq!(err("1-2-3 * * * *"), "too many hyphens: 1-2-3");
        assert_eq!(err("*/1/2 * * * *"), "too many slashes: */1/2");
        assert_eq!(
            err("a * * * *"),
            "failed to parse int from a: strconv.Atoi: parsing \"a\": invalid syntax"
        );
        assert_eq!(err("@fortnightly"), "unrecognized descriptor: @fortnightly");
        assert_eq!(err("* * * * 7"), "end of range (7) above maximum (6): 7");
        assert!(err("@every 1x").contains("unknown unit"));
        assert!(err("TZ=Nowhere/Land * * * * *").starts_with("provided bad location"));
    }
}

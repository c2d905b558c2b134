//! Times as kubectl shows them: ages (`5s`, `3m2s`, `2d4h`, the rules of
//! Kubernetes' `duration.HumanDuration`) and describe's timestamps
//! (`Thu, 01 May 2024 12:00:00 +0000`).

use jotasu_api::Time;
use jotasu_api::meta::civil_from_days;

/// The age of an object created at `created`: `<unknown>` without a
/// (readable) timestamp.
pub fn age(created: Option<&Time>, now: i64) -> String {
    match created.and_then(Time::unix_seconds) {
        Some(t) => human_duration(now.saturating_sub(t)),
        None => "<unknown>".to_owned(),
    }
}

/// A duration the way kubectl prints ages: precise while short, coarser
/// as it grows (`119s`, `2m`, `9m59s`, `10m`, `7h59m`, `8h`, `2d`, `7d23h`,
/// `8d`, `2y`, `7y364d`, `8y`). A slightly negative duration (clock skew)
/// is `0s`; a very negative one `<invalid>`.
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".to_owned();
    }
    if secs < 0 {
        return "0s".to_owned();
    }
    if secs < 120 {
        return format!("{secs}s");
    }
    let minutes = secs / 60;
    if minutes < 10 {
        return with_rest(minutes, "m", secs % 60, "s");
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = secs / 3600;
    if hours < 8 {
        return with_rest(hours, "h", minutes % 60, "m");
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    let days = hours / 24;
    if hours < 24 * 8 {
        return with_rest(days, "d", hours % 24, "h");
    }
    if hours < 24 * 365 * 2 {
        return format!("{days}d");
    }
    let years = days / 365;
    if hours < 24 * 365 * 8 {
        return with_rest(years, "y", days % 365, "d");
    }
    format!("{years}y")
}

fn with_rest(big: i64, big_unit: &str, rest: i64, rest_unit: &str) -> String {
    if rest == 0 {
        format!("{big}{big_unit}")
    } else {
        format!("{big}{big_unit}{rest}{rest_unit}")
    }
}

/// RFC 1123 with a numeric zone, in UTC, as describe prints times:
/// `Thu, 01 May 2024 12:00:00 +0000`. Unreadable text is shown as is.
pub fn timestamp(time: &Time) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let Some(secs) = time.unix_seconds() else {
        return time.0.clone();
    };
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let weekday = DAYS[usize::try_from(days.rem_euclid(7)).unwrap_or(0)];
    let month = MONTHS[usize::try_from(m - 1).unwrap_or(0).min(11)];
    format!(
        "{weekday}, {d:02} {month} {y:04} {:02}:{:02}:{:02} +0000",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_like_kubectl() {
        let cases = [
            (-5, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (5, "5s"),
            (119, "119s"),
            (120, "2m"),
            (182, "3m2s"),
            (599, "9m59s"),
            (600, "10m"),
            (179 * 60 + 59, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 61, "3h1m"),
            (8 * 3600, "8h"),
            (47 * 3600 + 3599, "47h"),
            (2 * 86_400 + 4 * 3600, "2d4h"),
            (7 * 86_400, "7d"),
            (8 * 86_400, "8d"),
            (729 * 86_400, "729d"),
            (730 * 86_400, "2y"),
            (731 * 86_400, "2y1d"),
            (8 * 365 * 86_400, "8y"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(secs), want, "{secs}");
        }
    }

    #[test]
    fn ages_from_timestamps() {
        let created = Time("2024-05-01T12:00:00Z".into());
        let t = created.unix_seconds().unwrap();
        assert_eq!(age(Some(&created), t + 5), "5s");
        assert_eq!(age(Some(&created), t + 182), "3m2s");
        assert_eq!(age(None, t), "<unknown>");
        assert_eq!(age(Some(&Time("yesterday".into())), t), "<unknown>");
    }

    #[test]
    fn rfc1123() {
        assert_eq!(
            timestamp(&Time("2024-05-01T12:00:00Z".into())),
            "Wed, 01 May 2024 12:00:00 +0000"
        );
        assert_eq!(
            timestamp(&Time("1970-01-01T00:00:00Z".into())),
            "Thu, 01 Jan 1970 00:00:00 +0000"
        );
        assert_eq!(
            timestamp(&Time("2024-02-29T14:00:00+02:00".into())),
            "Thu, 29 Feb 2024 12:00:00 +0000"
        );
        assert_eq!(timestamp(&Time("soon".into())), "soon");
    }
}

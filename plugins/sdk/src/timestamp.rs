//! Timestamps as providers write them, read as seconds since the epoch.

use std::time::UNIX_EPOCH;

/// An RFC 3339 / ISO 8601 timestamp as S3, Supabase and PostgreSQL write
/// them: `2024-05-01T12:00:00.000Z`, `2024-05-01T12:00:00.123456+00:00`,
/// `2024-05-01 12:00:00+00`. Fractions of a second are dropped.
pub fn rfc3339(text: &str) -> Option<u64> {
    let (date, time) = text.trim().split_once(['T', 't', ' '])?;
    let mut date_parts = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (year, month, day) = (date_parts.next()??, date_parts.next()??, date_parts.next()??);
    let zone_at = time.find(['Z', 'z', '+', '-']).unwrap_or(time.len());
    let (clock, zone) = time.split_at(zone_at);
    let mut clock_parts = clock.split(':');
    let hour: i64 = clock_parts.next()?.parse().ok()?;
    let minute: i64 = clock_parts.next()?.parse().ok()?;
    let second = clock_parts.next().map_or(Some(0.0), |s| s.parse::<f64>().ok())? as i64;
    let offset_secs = match zone {
        "" | "Z" | "z" => 0,
        _ => {
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            let digits: String = zone[1..].chars().filter(char::is_ascii_digit).collect();
            let (h, m) = digits.split_at(digits.len().min(2));
            sign * (h.parse::<i64>().ok()? * 3600 + m.parse::<i64>().unwrap_or(0) * 60)
        }
    };
    let in_range = (1..=12).contains(&month)
        && (1..=31).contains(&day)
        && (0..=23).contains(&hour)
        && (0..=59).contains(&minute)
        && (0..=60).contains(&second);
    if !in_range {
        return None;
    }
    let secs = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
    u64::try_from(secs).ok()
}

/// An HTTP date (`Wed, 01 May 2024 12:34:56 GMT`, or the obsolete forms
/// RFC 9110 still asks readers to take), as in `Last-Modified`.
pub fn http_date(text: &str) -> Option<u64> {
    let time = httpdate::parse_http_date(text.trim()).ok()?;
    Some(time.duration_since(UNIX_EPOCH).ok()?.as_secs())
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_in_the_forms_providers_write() {
        assert_eq!(rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(rfc3339("2013-05-24T00:00:00.000Z"), Some(1_369_353_600));
        assert_eq!(rfc3339("2000-02-29T12:34:56Z"), Some(951_827_696));
        assert_eq!(rfc3339("2024-05-01T12:00:00.000Z"), Some(1_714_564_800));
        assert_eq!(rfc3339("2024-05-01T14:00:00.123456+02:00"), Some(1_714_564_800));
        assert_eq!(rfc3339("2024-05-01T10:30:00-01:30"), Some(1_714_564_800));
        assert_eq!(rfc3339("2024-05-01 12:00:00+00"), Some(1_714_564_800));
        for bad in ["yesterday", "2024-13-01T00:00:00Z", "2024-05-01T24:00:00Z", "1969-12-31T23:59:59Z"] {
            assert_eq!(rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn http_dates() {
        assert_eq!(http_date("Fri, 24 May 2013 00:00:00 GMT"), Some(1_369_353_600));
        assert_eq!(http_date("Fri, 24 Mai 2013 00:00:00 GMT"), None);
    }
}

//! The civil (proleptic Gregorian, UTC) date of a Unix time, without a date
//! crate: log timestamps (RFC 3339) and the guest's CMOS clock.

/// A UTC calendar date and time of day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CivilTime {
    pub year: i64,
    /// 1..=12
    pub month: u8,
    /// 1..=31
    pub day: u8,
    /// 0 = Sunday
    pub weekday: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
}

/// The civil time of `unix_secs` seconds since 1970-01-01T00:00:00Z (any
/// sign), by Howard Hinnant's `civil_from_days`.
pub fn civil_time(unix_secs: i64) -> CivilTime {
    let days = unix_secs.div_euclid(86_400);
    let rem = unix_secs.rem_euclid(86_400);
    // 1970-01-01 was a Thursday.
    let weekday = (days + 4).rem_euclid(7) as u8;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = yoe + era * 400 + i64::from(month <= 2);
    CivilTime {
        year,
        month,
        day,
        weekday,
        hour: (rem / 3600) as u8,
        minute: (rem % 3600 / 60) as u8,
        second: (rem % 60) as u8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ymdw(t: i64) -> (i64, u8, u8, u8, u8, u8, u8) {
        let c = civil_time(t);
        (
            c.year, c.month, c.day, c.weekday, c.hour, c.minute, c.second,
        )
    }

    #[test]
    fn known_dates() {
        assert_eq!(ymdw(0), (1970, 1, 1, 4, 0, 0, 0));
        // 2000-02-29 12:34:56 UTC, a Tuesday.
        assert_eq!(ymdw(951_827_696), (2000, 2, 29, 2, 12, 34, 56));
        // 2024-12-31 23:59:59 UTC, a Tuesday.
        assert_eq!(ymdw(1_735_689_599), (2024, 12, 31, 2, 23, 59, 59));
        // 1969-12-31 23:59:59 UTC, a Wednesday.
        assert_eq!(ymdw(-1), (1969, 12, 31, 3, 23, 59, 59));
    }
}

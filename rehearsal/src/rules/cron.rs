//! Five-field cron expressions, as scheduled actions' `recurrence` takes them.
//!
//! Source: Amazon EC2 Auto Scaling User Guide, "Scheduled scaling" (recurrence "in the Unix
//! cron syntax format": minute, hour, day of month, month, day of week) and the cron(8)
//! convention it follows: `*`, lists, ranges and `/` steps; month and day names; day of week
//! 0 or 7 is Sunday; when both day of month and day of week are restricted, a day matching
//! either one fires. `?` is read as `*`. The Quartz-style `L`, `W` and `#` that the
//! variable's validation lets through are refused here with a clear message rather than
//! guessed.

use jiff::civil::DateTime;

/// A parsed cron expression: one bit per allowed value of each field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: u64,
    hours: u32,
    days_of_month: u32,
    months: u16,
    days_of_week: u8,
    day_of_month_restricted: bool,
    day_of_week_restricted: bool,
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

impl Cron {
    pub fn parse(expression: &str) -> Result<Cron, String> {
        let fields: Vec<&str> = expression.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(format!(
                "'{expression}' is not a five-field cron expression (minute hour day-of-month month day-of-week)"
            ));
        }
        let minutes = field(fields[0], 0, 59, &[], "minute")?;
        let hours = field(fields[1], 0, 23, &[], "hour")?;
        let days_of_month = field(fields[2], 1, 31, &[], "day of month")?;
        let months = field(fields[3], 1, 12, &MONTHS, "month")?;
        let mut days_of_week = field(fields[4], 0, 7, &DAYS, "day of week")?;
        if days_of_week & (1 << 7) != 0 {
            days_of_week |= 1; // 7 is Sunday too
        }
        Ok(Cron {
            minutes,
            hours: hours as u32,
            days_of_month: days_of_month as u32,
            months: months as u16,
            days_of_week: (days_of_week & 0x7f) as u8,
            day_of_month_restricted: !is_any(fields[2]),
            day_of_week_restricted: !is_any(fields[4]),
        })
    }

    /// Whether the expression fires at this local minute.
    pub fn matches(&self, at: DateTime) -> bool {
        let bit = |set: u64, value: i64| set & (1u64 << value) != 0;
        if !bit(self.minutes, at.minute().into())
            || !bit(self.hours.into(), at.hour().into())
            || !bit(self.months.into(), at.month().into())
        {
            return false;
        }
        let day_of_month = bit(self.days_of_month.into(), at.day().into());
        let day_of_week = bit(
            self.days_of_week.into(),
            at.weekday().to_sunday_zero_offset().into(),
        );
        match (self.day_of_month_restricted, self.day_of_week_restricted) {
            (true, true) => day_of_month || day_of_week,
            _ => day_of_month && day_of_week,
        }
    }
}

fn is_any(text: &str) -> bool {
    text == "*" || text == "?"
}

/// The bit set of one field.
fn field(text: &str, low: u32, high: u32, names: &[&str], what: &str) -> Result<u64, String> {
    if let Some(c) = text.chars().find(|c| matches!(c, 'L' | 'W' | '#')) {
        return Err(format!(
            "cron {what} field '{text}': '{c}' (a Quartz extension) is not supported by the rehearsal"
        ));
    }
    let mut set = 0u64;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => {
                let step: u32 = step
                    .parse()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("cron {what} field '{text}': bad step '{step}'"))?;
                (range, step)
            }
            None => (part, 1),
        };
        let (first, last) = if is_any(range) {
            (low, high)
        } else if let Some((a, b)) = range.split_once('-') {
            (
                value(a, low, high, names, what)?,
                value(b, low, high, names, what)?,
            )
        } else {
            let v = value(range, low, high, names, what)?;
            // "5/15" means from 5 to the end in steps of 15.
            (v, if part.contains('/') { high } else { v })
        };
        if first > last {
            return Err(format!(
                "cron {what} field '{text}': range {first}-{last} runs backwards"
            ));
        }
        for v in (first..=last).step_by(step as usize) {
            set |= 1u64 << v;
        }
    }
    Ok(set)
}

fn value(text: &str, low: u32, high: u32, names: &[&str], what: &str) -> Result<u32, String> {
    let upper = text.to_ascii_uppercase();
    let parsed = names
        .iter()
        .position(|n| *n == upper)
        .map(|i| i as u32 + if low == 1 { 1 } else { 0 })
        .or_else(|| text.parse().ok());
    match parsed {
        Some(v) if (low..=high).contains(&v) => Ok(v),
        _ => Err(format!("cron {what} '{text}' is not in {low}-{high}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn at(y: i16, mo: i8, d: i8, h: i8, mi: i8) -> DateTime {
        date(y, mo, d).at(h, mi, 0, 0)
    }

    #[test]
    fn fields_ranges_lists_steps_and_names() {
        // 2026-12-07 is a Monday.
        let cases = [
            ("0 7 * * 1-5", at(2026, 12, 7, 7, 0), true),
            ("0 7 * * 1-5", at(2026, 12, 6, 7, 0), false), // Sunday
            ("0 7 * * 1-5", at(2026, 12, 7, 7, 1), false),
            ("50 6,12 * * 1,3-5", at(2026, 12, 7, 12, 50), true),
            ("50 6,12 * * 1,3-5", at(2026, 12, 8, 6, 50), false), // Tuesday
            ("*/15 * * * *", at(2026, 12, 8, 3, 45), true),
            ("*/15 * * * *", at(2026, 12, 8, 3, 40), false),
            ("5/20 * * * *", at(2026, 12, 8, 3, 45), true),
            ("0 0 * * 0,2", at(2026, 12, 6, 0, 0), true), // Sunday
            ("0 0 * * 7", at(2026, 12, 6, 0, 0), true),   // 7 is Sunday too
            ("0 9 * dec mon", at(2026, 12, 7, 9, 0), true), // names, any case
            ("0 9 * JAN MON", at(2026, 12, 7, 9, 0), false),
            ("0 0 1 * ?", at(2026, 12, 1, 0, 0), true),
            // Day of month and day of week both restricted: either one fires.
            ("0 0 1 * 1", at(2026, 12, 7, 0, 0), true),
            ("0 0 1 * 1", at(2026, 12, 1, 0, 0), true),
            ("0 0 1 * 1", at(2026, 12, 2, 0, 0), false),
        ];
        for (expr, when, want) in cases {
            let cron = Cron::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
            assert_eq!(cron.matches(when), want, "{expr} at {when}");
        }
    }

    #[test]
    fn bad_expressions_are_refused_with_the_reason() {
        for (expr, reason) in [
            ("0 7 * *", "five-field"),
            ("60 7 * * *", "not in 0-59"),
            ("0 7 L * *", "Quartz"),
            ("0 7 * * 1#2", "Quartz"),
            ("0 7 * * 5-1", "backwards"),
            ("*/0 7 * * *", "bad step"),
        ] {
            let err = Cron::parse(expr).expect_err(expr);
            assert!(err.contains(reason), "{expr}: {err}");
        }
    }
}

//! Dates for `to_datetime` and `strftime`: Python's `strptime`/`strftime` directives in the C
//! locale, on a proleptic Gregorian calendar, in UTC.

use std::fmt;
use std::sync::Arc;

use minijinja::value::{Object, ObjectRepr};
use minijinja::{Error, State, Value};

use super::fail;

const DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// A naive date and time, like Python's `datetime.datetime` without a time zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct DateTime {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub micro: u32,
}

/// Days since 1970-01-01 of a civil date.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

impl DateTime {
    pub fn from_epoch(secs: f64) -> DateTime {
        let whole = secs.floor();
        let micro = ((secs - whole) * 1e6).round().min(999_999.0) as u32;
        let whole = whole as i64;
        let days = whole.div_euclid(86_400);
        let rem = whole.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        DateTime {
            year,
            month,
            day,
            hour: (rem / 3600) as u32,
            minute: (rem % 3600 / 60) as u32,
            second: (rem % 60) as u32,
            micro,
        }
    }

    fn days(&self) -> i64 {
        days_from_civil(self.year, self.month, self.day)
    }

    pub fn timestamp(&self) -> f64 {
        let secs = self.days() * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second);
        secs as f64 + f64::from(self.micro) / 1e6
    }

    /// Monday = 0 … Sunday = 6.
    fn weekday(&self) -> usize {
        (self.days() + 3).rem_euclid(7) as usize
    }

    fn yday(&self) -> i64 {
        self.days() - days_from_civil(self.year, 1, 1) + 1
    }

    /// ISO 8601 year and week number.
    fn iso_week(&self) -> (i64, i64) {
        let wd = self.weekday() as i64 + 1;
        let week = (self.yday() - wd + 10) / 7;
        if week < 1 {
            let prev = DateTime {
                year: self.year - 1,
                month: 12,
                day: 31,
                ..*self
            };
            return prev.iso_week();
        }
        let weeks_in_year = {
            let p = |y: i64| {
                (y + y.div_euclid(4) - y.div_euclid(100) + y.div_euclid(400)).rem_euclid(7)
            };
            if p(self.year) == 4 || p(self.year - 1) == 3 {
                53
            } else {
                52
            }
        };
        if week > weeks_in_year {
            return (self.year + 1, 1);
        }
        (self.year, week)
    }

    /// Python's `time.strftime` / `datetime.strftime` in the C locale.
    pub fn strftime(&self, fmt: &str, zone: &str) -> String {
        let mut out = String::new();
        let mut chars = fmt.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                out.push(c);
                continue;
            }
            let Some(d) = chars.next() else {
                out.push('%');
                break;
            };
            let wd = self.weekday();
            let h12 = if self.hour.is_multiple_of(12) {
                12
            } else {
                self.hour % 12
            };
            let s = match d {
                'a' => DAYS[wd][..3].to_string(),
                'A' => DAYS[wd].to_string(),
                'b' | 'h' => MONTHS[self.month as usize - 1][..3].to_string(),
                'B' => MONTHS[self.month as usize - 1].to_string(),
                'c' => self.strftime("%a %b %e %H:%M:%S %Y", zone),
                'C' => format!("{:02}", self.year.div_euclid(100)),
                'd' => format!("{:02}", self.day),
                'D' | 'x' => self.strftime("%m/%d/%y", zone),
                'e' => format!("{:2}", self.day),
                'f' => format!("{:06}", self.micro),
                'F' => self.strftime("%Y-%m-%d", zone),
                'G' => self.iso_week().0.to_string(),
                'g' => format!("{:02}", self.iso_week().0.rem_euclid(100)),
                'H' => format!("{:02}", self.hour),
                'I' => format!("{h12:02}"),
                'j' => format!("{:03}", self.yday()),
                'k' => format!("{:2}", self.hour),
                'l' => format!("{h12:2}"),
                'm' => format!("{:02}", self.month),
                'M' => format!("{:02}", self.minute),
                'n' => "\n".into(),
                'p' => if self.hour < 12 { "AM" } else { "PM" }.into(),
                'P' => if self.hour < 12 { "am" } else { "pm" }.into(),
                'r' => self.strftime("%I:%M:%S %p", zone),
                'R' => self.strftime("%H:%M", zone),
                's' => format!("{}", self.timestamp().floor() as i64),
                'S' => format!("{:02}", self.second),
                't' => "\t".into(),
                'T' | 'X' => self.strftime("%H:%M:%S", zone),
                'u' => (wd + 1).to_string(),
                'w' => ((wd + 1) % 7).to_string(),
                'U' => format!("{:02}", (self.yday() + 6 - ((wd as i64 + 1) % 7)) / 7),
                'W' => format!("{:02}", (self.yday() + 6 - wd as i64) / 7),
                'V' => format!("{:02}", self.iso_week().1),
                'y' => format!("{:02}", self.year.rem_euclid(100)),
                'Y' => self.year.to_string(),
                'z' => {
                    if zone.is_empty() {
                        String::new()
                    } else {
                        "+0000".into()
                    }
                }
                'Z' => zone.to_string(),
                '%' => "%".into(),
                other => format!("%{other}"),
            };
            out.push_str(&s);
        }
        out
    }

    /// Python's `datetime.strptime` for the common directives.
    pub fn strptime(text: &str, fmt: &str) -> Result<DateTime, String> {
        let bad = || format!("time data '{text}' does not match format '{fmt}'");
        let mut dt = DateTime {
            year: 1900,
            month: 1,
            day: 1,
            hour: 0,
            minute: 0,
            second: 0,
            micro: 0,
        };
        let mut pm: Option<bool> = None;
        let mut yday: Option<i64> = None;
        let t: Vec<char> = text.chars().collect();
        let mut pos = 0usize;
        let mut f = fmt.chars().peekable();
        let num = |pos: &mut usize, max: usize| -> Option<i64> {
            let start = *pos;
            while *pos < t.len() && *pos - start < max && t[*pos].is_ascii_digit() {
                *pos += 1;
            }
            if *pos == start {
                return None;
            }
            t[start..*pos].iter().collect::<String>().parse().ok()
        };
        let word = |pos: &mut usize, names: &[&str], abbrev: bool| -> Option<usize> {
            let rest: String = t[*pos..].iter().collect::<String>().to_lowercase();
            for (i, n) in names.iter().enumerate() {
                let n = if abbrev { &n[..3] } else { n };
                if rest.starts_with(&n.to_lowercase()) {
                    *pos += n.chars().count();
                    return Some(i);
                }
            }
            None
        };
        while let Some(c) = f.next() {
            if c.is_whitespace() {
                while pos < t.len() && t[pos].is_whitespace() {
                    pos += 1;
                }
                continue;
            }
            if c != '%' {
                if pos < t.len() && t[pos] == c {
                    pos += 1;
                    continue;
                }
                return Err(bad());
            }
            let d = f.next().ok_or_else(bad)?;
            let v = match d {
                'Y' => num(&mut pos, 4).map(|y| dt.year = y),
                'y' => num(&mut pos, 2).map(|y| dt.year = if y < 69 { 2000 + y } else { 1900 + y }),
                'm' => num(&mut pos, 2).map(|m| dt.month = m as u32),
                'd' => num(&mut pos, 2).map(|x| dt.day = x as u32),
                'H' => num(&mut pos, 2).map(|x| dt.hour = x as u32),
                'I' => num(&mut pos, 2).map(|x| dt.hour = x as u32),
                'M' => num(&mut pos, 2).map(|x| dt.minute = x as u32),
                'S' => num(&mut pos, 2).map(|x| dt.second = x as u32),
                'j' => num(&mut pos, 3).map(|x| yday = Some(x)),
                'f' => {
                    let start = pos;
                    num(&mut pos, 6).map(|x| {
                        let digits = (pos - start) as u32;
                        dt.micro = (x * 10i64.pow(6 - digits)) as u32;
                    })
                }
                'b' | 'h' => word(&mut pos, &MONTHS, true).map(|m| dt.month = m as u32 + 1),
                'B' => word(&mut pos, &MONTHS, false).map(|m| dt.month = m as u32 + 1),
                'a' => word(&mut pos, &DAYS, true).map(|_| ()),
                'A' => word(&mut pos, &DAYS, false).map(|_| ()),
                'p' => {
                    let rest: String = t[pos..].iter().take(2).collect::<String>().to_uppercase();
                    match rest.as_str() {
                        "AM" => {
                            pm = Some(false);
                            Some(())
                        }
                        "PM" => {
                            pm = Some(true);
                            Some(())
                        }
                        _ => None,
                    }
                    .map(|_| pos += 2)
                }
                '%' => {
                    if pos < t.len() && t[pos] == '%' {
                        pos += 1;
                        Some(())
                    } else {
                        None
                    }
                }
                other => return Err(format!("'{other}' is a bad directive in format '{fmt}'")),
            };
            v.ok_or_else(bad)?;
        }
        if pos != t.len() {
            let rest: String = t[pos..].iter().collect();
            return Err(format!("unconverted data remains: {rest}"));
        }
        if let Some(pm) = pm {
            dt.hour = match (pm, dt.hour) {
                (false, 12) => 0,
                (true, h) if h < 12 => h + 12,
                (_, h) => h,
            };
        }
        if let Some(yd) = yday {
            let (y, m, d) = civil_from_days(days_from_civil(dt.year, 1, 1) + yd - 1);
            dt.year = y;
            dt.month = m;
            dt.day = d;
        }
        if !(1..=12).contains(&dt.month)
            || dt.day < 1
            || dt.day > days_in_month(dt.year, dt.month)
            || dt.hour > 23
            || dt.minute > 59
            || dt.second > 61
        {
            return Err(bad());
        }
        Ok(dt)
    }
}

impl fmt::Display for DateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )?;
        if self.micro != 0 {
            write!(f, ".{:06}", self.micro)?;
        }
        Ok(())
    }
}

impl Object for DateTime {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        Some(match key.as_str()? {
            "year" => Value::from(self.year),
            "month" => Value::from(self.month),
            "day" => Value::from(self.day),
            "hour" => Value::from(self.hour),
            "minute" => Value::from(self.minute),
            "second" => Value::from(self.second),
            "microsecond" => Value::from(self.micro),
            _ => return None,
        })
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &mut State,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        match method {
            "strftime" => {
                let fmt = args
                    .first()
                    .and_then(Value::as_str)
                    .ok_or_else(|| fail("strftime() needs a format string"))?;
                Ok(Value::from(self.strftime(fmt, "")))
            }
            "timestamp" => Ok(Value::from(self.timestamp())),
            "isoformat" => {
                let s = self.to_string().replacen(' ', "T", 1);
                Ok(Value::from(s))
            }
            "weekday" => Ok(Value::from(self.weekday())),
            "isoweekday" => Ok(Value::from(self.weekday() + 1)),
            _ => Err(fail(format!("datetime has no method '{method}'"))),
        }
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn epoch_and_strftime() {
        let d = DateTime::from_epoch(1_441_357_287.0);
        assert_eq!(
            d.strftime("%Y-%m-%d %H:%M:%S %a %b %j %p %I %y %A %B %%", "GMT"),
            "2015-09-04 09:01:27 Fri Sep 247 AM 09 15 Friday September %"
        );
        assert_eq!(DateTime::from_epoch(0.0).to_string(), "1970-01-01 00:00:00");
        assert_eq!(d.timestamp(), 1_441_357_287.0);
    }

    #[test]
    fn strptime_parses_and_rejects() {
        let d = DateTime::strptime("2016-08-14 20:00:12", "%Y-%m-%d %H:%M:%S").unwrap();
        assert_eq!(
            (d.year, d.month, d.day, d.hour, d.second),
            (2016, 8, 14, 20, 12)
        );
        assert!(DateTime::strptime("2016-08-14", "%Y-%m-%d %H:%M:%S").is_err());
        assert!(DateTime::strptime("2016-02-30", "%Y-%m-%d").is_err());
    }
}

//! Newsletter schedules: cron expressions, evaluated in a publication's time zone, to UTC fire times.
//!
//! # Syntax
//! Parsing is croner's (4.x), configured for crontab semantics:
//! - 5 fields (`minute hour day-of-month month day-of-week`) or 6 with seconds first; a 7th
//!   (year) field is refused.
//! - Day of week `0` and `7` are both Sunday, `1-5` is Monday to Friday; day and month names
//!   (`Mon-Fri`, `JAN`) are accepted in any case.
//! - When both day of month and day of week are restricted, a day matching either fires (OR).
//! - Strict ranges: `0/10` and `/10` are refused; write `*/10` or `0-59/10`.
//! - croner's extensions are accepted as croner defines them: `L` (last day of month, or `5L`
//!   last Friday), `W` (`15W`, weekday nearest the 15th), `#` (`5#2`, second Friday), `?` (same
//!   as `*` in the day fields) and a leading `+` on day of week (day of month AND day of week).
//! - Specials: `@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`, `@hourly` (croner's
//!   list); `@reboot` and anything else are refused.
//!
//! # Daylight saving time
//! The expression is matched against the zone's wall clock, then each matching wall time is
//! placed on the UTC time line by herald's rule, not croner's:
//! - a wall time the clocks jump over fires at the first instant after the jump (02:30 on a
//!   spring-forward day in New York fires at 03:00 EDT); several skipped times share that one
//!   run, and it is not repeated if 03:00 is itself scheduled;
//! - a wall time the clocks repeat fires once, at its first occurrence.
//!
//! croner's own zone-aware search does this only for "fixed-time" expressions (one second, one
//! minute, one hour): it fires an interval expression like `*/15 * * * *` twice in a repeated
//! hour, and drops `30 2,3 * * *`'s skipped 02:30. So croner is asked only about the wall clock
//! (`NaiveDateTime`), where there is no DST, and this module does the placing.

use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, SubsecRound, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::errors::CronError;
use croner::parser::{CronParser, Seconds, Year};
use serde::{Deserialize, Deserializer};

/// The specials croner expands; checked here so a typo gets a message that lists them.
const SPECIALS: [&str; 6] = [
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@hourly",
];

/// The six fields, seconds first, with what each takes (for error messages).
const FIELDS: [(&str, &str); 6] = [
    ("second", "0-59"),
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day of month", "1-31, L or nW"),
    ("month", "1-12 or JAN-DEC"),
    (
        "day of week",
        "0-7 (0 and 7 are Sunday), SUN-SAT, nL or n#k",
    ),
];

/// A parsed cron expression and the time zone it is read in.
#[derive(Debug, Clone)]
pub struct Schedule {
    expr: String,
    cron: Cron,
    zone: Tz,
}

/// Read from `herald.toml` in UTC; the configuration then places it in its zone
/// ([`Schedule::in_zone`]).
impl<'de> Deserialize<'de> for Schedule {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Schedule::parse(&s, Tz::UTC).map_err(serde::de::Error::custom)
    }
}

impl Schedule {
    /// Parses a 5- or 6-field expression; the error is a clear one-line message naming the problem
    /// (e.g. "\"0 0 7 * * Mon-Fri 2026\": 7 fields; herald takes 5 (minute hour day month weekday) or 6 (with seconds first)").
    pub fn parse(expr: &str, zone: Tz) -> Result<Schedule, String> {
        let text = expr.trim();
        let fields: Vec<&str> = text.split_whitespace().collect();
        check_shape(text, &fields)?;
        let cron = parser()
            .parse(text)
            .map_err(|err| explain(text, &fields, err))?;
        Ok(Schedule {
            expr: text.to_string(),
            cron,
            zone,
        })
    }

    /// The same expression read on another zone's wall clock.
    pub fn in_zone(mut self, zone: Tz) -> Schedule {
        self.zone = zone;
        self
    }

    /// The expression as parsed (surrounding whitespace trimmed).
    pub fn expr(&self) -> &str {
        &self.expr
    }

    /// The IANA zone whose wall clock the expression is read on.
    pub fn zone(&self) -> Tz {
        self.zone
    }

    /// The first fire time strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // Every matching wall time up to `after`'s own fires at or before `after` (placing
        // keeps wall order), so the search starts there.
        let mut wall = self.wall_clock(after);
        loop {
            wall = self.cron.find_next_occurrence(&wall, false).ok()?;
            let fire = self.place(wall)?;
            if fire > after {
                return Some(fire);
            }
            // A later wall time can still fire at or before `after`: when `after` is in the
            // second pass of a repeated hour, or on the shared run at the end of a gap.
        }
    }

    /// The next `n` fire times strictly after `after`.
    pub fn upcoming(&self, after: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        let mut fires = Vec::with_capacity(n);
        let mut from = after;
        while fires.len() < n {
            let Some(fire) = self.next_after(from) else {
                break;
            };
            fires.push(fire);
            from = fire;
        }
        fires
    }

    /// The latest fire time at or before `at`, looking back no further than `horizon`
    /// (used for catch-up after downtime); None when there is none in that window.
    pub fn latest_at_or_before(
        &self,
        at: DateTime<Utc>,
        horizon: Duration,
    ) -> Option<DateTime<Utc>> {
        // A horizon too long to subtract reaches past any schedule: no lower bound.
        let earliest = TimeDelta::from_std(horizon)
            .ok()
            .and_then(|h| at.checked_sub_signed(h));
        // croner searches backwards on the wall clock, so this costs one search, not a walk
        // across the horizon. Wall times up to `at`'s own fire at or before `at`.
        let mut wall = self
            .cron
            .find_previous_occurrence(&self.wall_clock(at), true)
            .ok()?;
        let mut latest = self.place(wall)?;
        // In the second pass of a repeated hour, later wall times fired on the first pass,
        // before `at`; this loop only goes round for those.
        while let Ok(next) = self.cron.find_next_occurrence(&wall, false) {
            match self.place(next) {
                Some(fire) if fire <= at => (wall, latest) = (next, fire),
                _ => break,
            }
        }
        earliest.is_none_or(|e| latest >= e).then_some(latest)
    }

    /// Human description (croner's, plus the zone), for `herald check`.
    pub fn describe(&self) -> String {
        format!("{} ({} time)", self.cron.describe(), self.zone)
    }

    /// The zone's wall clock at `t`, in whole seconds as croner counts them. Rounding down
    /// keeps every wall time at or before the result firing at or before `t`.
    fn wall_clock(&self, t: DateTime<Utc>) -> NaiveDateTime {
        t.with_timezone(&self.zone).naive_local().trunc_subsecs(0)
    }

    /// When wall time `wall` fires: its only instant, the first of two when the clocks repeat
    /// it, or the first instant after the jump when the clocks skip it.
    fn place(&self, wall: NaiveDateTime) -> Option<DateTime<Utc>> {
        match self.zone.from_local_datetime(&wall).earliest() {
            Some(t) => Some(t.to_utc()),
            None => self.end_of_gap(wall),
        }
    }

    /// The instant the clocks land on after jumping over `skipped`: the instant of the first
    /// wall time after it that exists.
    fn end_of_gap(&self, skipped: NaiveDateTime) -> Option<DateTime<Utc>> {
        let exists = |wall: NaiveDateTime| self.zone.from_local_datetime(&wall).earliest();
        // Minute steps find the far side quickly (a gap is an hour, rarely a whole day as in
        // Samoa in 2011); give up past two days, which no zone has ever skipped.
        let (mut inside, mut outside) = (skipped, skipped + TimeDelta::minutes(1));
        while exists(outside).is_none() {
            if outside - skipped > TimeDelta::days(2) {
                return None;
            }
            (inside, outside) = (outside, outside + TimeDelta::minutes(1));
        }
        // Then halve down to the second: old zone offsets were not always whole minutes.
        while outside - inside > TimeDelta::seconds(1) {
            let middle = inside + (outside - inside) / 2;
            if exists(middle).is_some() {
                outside = middle;
            } else {
                inside = middle;
            }
        }
        exists(outside).map(|t| t.to_utc())
    }
}

/// What herald takes, for error messages.
const TAKES: &str = "herald takes 5 (minute hour day month weekday) or 6 (with seconds first)";

/// Refuses, with herald's own message, what croner would refuse with a vaguer one: the wrong
/// number of fields, or a special it does not know.
fn check_shape(text: &str, fields: &[&str]) -> Result<(), String> {
    if text.starts_with('@') {
        if fields.len() == 1 && SPECIALS.iter().any(|s| s.eq_ignore_ascii_case(text)) {
            return Ok(());
        }
        return Err(format!(
            "{text:?}: unknown special; herald takes {}",
            SPECIALS.join(", ")
        ));
    }
    match fields.len() {
        0 => Err(format!("empty cron expression; {TAKES}")),
        5 | 6 => Ok(()),
        1 => Err(format!("{text:?}: 1 field; {TAKES}")),
        n => Err(format!("{text:?}: {n} fields; {TAKES}")),
    }
}

/// croner configured for crontab semantics (see the module docs).
fn parser() -> CronParser {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .dom_and_dow(false)
        .alternative_weekdays(false)
        .sloppy_ranges(false)
        .build()
}

/// Turns croner's error into one line that names the failing field.
fn explain(text: &str, fields: &[&str], err: CronError) -> String {
    // croner's messages ("Number out of bounds.") do not say which field failed, so each
    // field is parsed again on its own, with every other field a wildcard.
    // 5 fields start at the minute, 6 at the second.
    if let Some(first @ 0..=1) = FIELDS.len().checked_sub(fields.len()) {
        for (i, field) in fields.iter().enumerate() {
            let mut probe = ["0", "*", "*", "*", "*", "*"];
            probe[first + i] = *field;
            if let Err(field_err) = parser().parse(&probe.join(" ")) {
                // "0 7 * * Mon-Fri 2026" is five fields and a year, not six fields: say so
                // rather than blame a weekday of 2026.
                let year_like = field.len() == 4 && field.bytes().all(|b| b.is_ascii_digit());
                if first + i == FIELDS.len() - 1 && year_like {
                    return format!("{text:?}: {field:?} looks like a year field; {TAKES}");
                }
                let (name, takes) = FIELDS[first + i];
                return format!(
                    "{text:?}: bad {name} {field:?} ({}); {name} takes {takes}",
                    reason(&field_err)
                );
            }
        }
    }
    format!("{text:?}: {}", reason(&err))
}

/// croner's message without its variant prefix or final full stop.
fn reason(err: &CronError) -> String {
    let message = match err {
        CronError::InvalidPattern(m)
        | CronError::IllegalCharacters(m)
        | CronError::ComponentError(m) => m.clone(),
        other => other.to_string(),
    };
    message.trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, NaiveDate, Weekday};

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s)
            .single()
            .expect("a valid UTC time")
    }

    fn schedule(expr: &str, zone: Tz) -> Schedule {
        Schedule::parse(expr, zone).unwrap_or_else(|e| panic!("{expr} should parse: {e}"))
    }

    /// Every run on the local calendar day `date` in the schedule's zone.
    fn runs_on(s: &Schedule, date: NaiveDate) -> Vec<DateTime<Utc>> {
        let start = |d: NaiveDate| {
            s.place(d.and_hms_opt(0, 0, 0).expect("midnight"))
                .expect("a day start")
        };
        let (from, to) = (start(date), start(date.succ_opt().expect("a next day")));
        let mut runs = Vec::new();
        let mut fire = s.next_after(from - TimeDelta::nanoseconds(1));
        while let Some(t) = fire.filter(|t| *t < to) {
            runs.push(t);
            fire = s.next_after(t);
        }
        runs
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("a valid date")
    }

    const NY: Tz = chrono_tz::America::New_York;
    const BERLIN: Tz = chrono_tz::Europe::Berlin;

    #[test]
    fn weekday_names_and_numbers_give_the_same_fire_times_and_skip_weekends() {
        let from = utc(2026, 3, 4, 12, 0, 0);
        let names = schedule("0 7 * * Mon-Fri", Tz::UTC).upcoming(from, 10);
        let numbers = schedule("0 7 * * 1-5", Tz::UTC).upcoming(from, 10);
        assert_eq!(names, numbers);
        assert_eq!(names.len(), 10);
        assert_eq!(names[0], utc(2026, 3, 5, 7, 0, 0));
        assert!(
            names
                .iter()
                .all(|t| !matches!(t.weekday(), Weekday::Sat | Weekday::Sun))
        );
        // Thursday 5th + 10 weekdays runs to Wednesday the 18th.
        assert_eq!(names[9], utc(2026, 3, 18, 7, 0, 0));
    }

    #[test]
    fn sunday_is_both_0_and_7() {
        let from = utc(2026, 3, 4, 12, 0, 0);
        let zero = schedule("0 7 * * 0", Tz::UTC).upcoming(from, 5);
        let seven = schedule("0 7 * * 7", Tz::UTC).upcoming(from, 5);
        assert_eq!(zero, seven);
        assert!(zero.iter().all(|t| t.weekday() == Weekday::Sun));
        assert_eq!(zero[0], utc(2026, 3, 8, 7, 0, 0));
    }

    #[test]
    fn a_sixth_field_comes_first_and_is_the_second() {
        let s = schedule("30 0 7 * * *", Tz::UTC);
        assert_eq!(
            s.next_after(utc(2026, 3, 4, 12, 0, 0)),
            Some(utc(2026, 3, 5, 7, 0, 30))
        );
    }

    #[test]
    fn day_of_month_and_day_of_week_combine_with_or() {
        // 2026-03-06 is a Friday, the 13th is one too; the 10th is a Tuesday.
        let s = schedule("0 7 10 * Fri", Tz::UTC);
        let runs = s.upcoming(utc(2026, 3, 5, 0, 0, 0), 4);
        let days: Vec<u32> = runs.iter().map(|t| t.day()).collect();
        assert_eq!(days, [6, 10, 13, 20]);
    }

    #[test]
    fn seven_fields_are_refused_with_the_field_count() {
        let err = Schedule::parse("0 0 7 * * Mon-Fri 2026", NY).expect_err("7 fields");
        assert_eq!(
            err,
            "\"0 0 7 * * Mon-Fri 2026\": 7 fields; herald takes 5 (minute hour day month weekday) or 6 (with seconds first)"
        );
    }

    #[test]
    fn a_year_after_five_fields_is_called_a_year() {
        // Six fields, so croner would read 2026 as the day of week.
        let err = Schedule::parse("0 7 * * Mon-Fri 2026", NY).expect_err("a year");
        assert_eq!(
            err,
            "\"0 7 * * Mon-Fri 2026\": \"2026\" looks like a year field; herald takes 5 (minute hour day month weekday) or 6 (with seconds first)"
        );
    }

    #[test]
    fn garbage_and_too_few_fields_are_refused() {
        for expr in [
            "",
            "   ",
            "garbage",
            "0 7 * *",
            "a b c d e",
            "0 7 * * Funday",
        ] {
            let err = Schedule::parse(expr, NY).expect_err(expr);
            assert!(!err.is_empty() && !err.contains('\n'), "{expr}: {err}");
        }
        let err = Schedule::parse("a b c d e", NY).expect_err("letters");
        assert!(err.starts_with("\"a b c d e\": bad minute \"a\""), "{err}");
    }

    #[test]
    fn an_out_of_range_value_is_refused_naming_its_field() {
        let err = Schedule::parse("61 * * * *", NY).expect_err("minute 61");
        assert!(
            err.starts_with("\"61 * * * *\": bad minute \"61\""),
            "{err}"
        );
        assert!(err.ends_with("minute takes 0-59"), "{err}");
        let err = Schedule::parse("0 0 25 * * *", NY).expect_err("hour 25");
        assert!(err.contains("bad hour \"25\""), "{err}");
        let err = Schedule::parse("0 7 * 13 *", NY).expect_err("month 13");
        assert!(err.contains("bad month \"13\""), "{err}");
    }

    #[test]
    fn sloppy_steps_are_refused() {
        assert!(Schedule::parse("0/10 * * * *", NY).is_err());
        assert!(Schedule::parse("/10 * * * *", NY).is_err());
    }

    #[test]
    fn specials_are_croners_and_unknown_ones_are_refused() {
        let from = utc(2026, 3, 4, 12, 0, 0);
        let daily = schedule("@daily", BERLIN).upcoming(from, 3);
        assert_eq!(daily, schedule("0 0 * * *", BERLIN).upcoming(from, 3));
        let weekly = schedule("@WEEKLY", Tz::UTC).next_after(from);
        assert_eq!(weekly, Some(utc(2026, 3, 8, 0, 0, 0)));
        let err = Schedule::parse("@reboot", NY).expect_err("@reboot");
        assert!(err.contains("unknown special"), "{err}");
    }

    #[test]
    fn croner_extensions_l_w_and_hash_are_accepted() {
        let from = utc(2026, 2, 1, 0, 0, 0);
        let last_day = schedule("0 7 L * *", Tz::UTC).next_after(from);
        assert_eq!(last_day, Some(utc(2026, 2, 28, 7, 0, 0)));
        let second_friday = schedule("0 7 * * 5#2", Tz::UTC).next_after(from);
        assert_eq!(second_friday, Some(utc(2026, 2, 13, 7, 0, 0)));
        // The 1st of March 2026 is a Sunday, so the nearest weekday is Monday the 2nd.
        let nearest_weekday = schedule("0 7 1W * *", Tz::UTC).next_after(utc(2026, 2, 2, 12, 0, 0));
        assert_eq!(nearest_weekday, Some(utc(2026, 3, 2, 7, 0, 0)));
    }

    #[test]
    fn a_time_skipped_by_dst_fires_at_the_first_instant_after_in_new_york() {
        let s = schedule("30 2 * * *", NY);
        // 02:00 EST jumps to 03:00 EDT at 07:00 UTC.
        assert_eq!(runs_on(&s, date(2026, 3, 8)), [utc(2026, 3, 8, 7, 0, 0)]);
        assert_eq!(runs_on(&s, date(2026, 3, 7)), [utc(2026, 3, 7, 7, 30, 0)]);
        assert_eq!(runs_on(&s, date(2026, 3, 9)), [utc(2026, 3, 9, 6, 30, 0)]);
    }

    #[test]
    fn a_time_repeated_by_dst_fires_once_at_its_first_occurrence_in_new_york() {
        let s = schedule("30 1 * * *", NY);
        // 01:30 EDT is 05:30 UTC; 01:30 EST (06:30 UTC) does not fire.
        assert_eq!(runs_on(&s, date(2026, 11, 1)), [utc(2026, 11, 1, 5, 30, 0)]);
        assert_eq!(
            runs_on(&s, date(2026, 10, 31)),
            [utc(2026, 10, 31, 5, 30, 0)]
        );
        assert_eq!(runs_on(&s, date(2026, 11, 2)), [utc(2026, 11, 2, 6, 30, 0)]);
    }

    #[test]
    fn berlin_fires_once_on_both_change_days() {
        let s = schedule("30 2 * * *", BERLIN);
        // 02:00 CET jumps to 03:00 CEST, which is 01:00 UTC.
        assert_eq!(runs_on(&s, date(2026, 3, 29)), [utc(2026, 3, 29, 1, 0, 0)]);
        // 02:30 comes first in CEST (00:30 UTC), then again in CET (01:30 UTC).
        assert_eq!(
            runs_on(&s, date(2026, 10, 25)),
            [utc(2026, 10, 25, 0, 30, 0)]
        );
        assert_eq!(runs_on(&s, date(2026, 3, 28)), [utc(2026, 3, 28, 1, 30, 0)]);
        assert_eq!(
            runs_on(&s, date(2026, 10, 26)),
            [utc(2026, 10, 26, 1, 30, 0)]
        );
    }

    #[test]
    fn an_interval_schedule_has_no_runs_in_the_skipped_hour() {
        let runs = runs_on(&schedule("*/15 * * * *", NY), date(2026, 3, 8));
        assert_eq!(runs.len(), 92);
        assert!(runs.windows(2).all(|w| w[0] < w[1]), "no duplicates");
        // 01:45 EST, then 03:00 EDT, then every 15 minutes again.
        let at = |t| runs.iter().position(|r| *r == t).expect("a run");
        let i = at(utc(2026, 3, 8, 6, 45, 0));
        assert_eq!(runs[i + 1], utc(2026, 3, 8, 7, 0, 0));
        assert_eq!(runs[i + 2], utc(2026, 3, 8, 7, 15, 0));
    }

    #[test]
    fn an_interval_schedule_runs_each_repeated_time_once() {
        let runs = runs_on(&schedule("*/15 * * * *", NY), date(2026, 11, 1));
        assert_eq!(runs.len(), 96);
        // 01:45 EDT (05:45 UTC), then 02:00 EST (07:00 UTC): the repeated hour is not rerun.
        let i = runs
            .iter()
            .position(|r| *r == utc(2026, 11, 1, 5, 45, 0))
            .expect("a run at 01:45 EDT");
        assert_eq!(runs[i + 1], utc(2026, 11, 1, 7, 0, 0));
    }

    #[test]
    fn several_skipped_times_share_one_run_with_the_time_after_the_gap() {
        // 02:30 is skipped and fires at 03:00 EDT; 03:30 still fires.
        let s = schedule("30 2,3 * * *", NY);
        assert_eq!(
            runs_on(&s, date(2026, 3, 8)),
            [utc(2026, 3, 8, 7, 0, 0), utc(2026, 3, 8, 7, 30, 0)]
        );
        let s = schedule("0,30 2,3 * * *", NY);
        assert_eq!(
            runs_on(&s, date(2026, 3, 8)),
            [utc(2026, 3, 8, 7, 0, 0), utc(2026, 3, 8, 7, 30, 0)]
        );
    }

    #[test]
    fn a_day_skipped_entirely_fires_at_the_first_instant_after_it() {
        // Samoa moved across the date line: 2011-12-29 23:59:59 (-10) was followed by
        // 2011-12-31 00:00:00 (+14), which is 2011-12-30 10:00 UTC.
        let s = schedule("0 7 * * *", chrono_tz::Pacific::Apia);
        let runs = s.upcoming(utc(2011, 12, 29, 0, 0, 0), 3);
        assert_eq!(
            runs,
            [
                utc(2011, 12, 29, 17, 0, 0),
                utc(2011, 12, 30, 10, 0, 0),
                utc(2011, 12, 30, 17, 0, 0),
            ]
        );
    }

    #[test]
    fn kolkata_and_utc_schedules_give_the_right_utc_instants() {
        let from = utc(2026, 3, 4, 12, 0, 0);
        let kolkata = schedule("0 7 * * *", chrono_tz::Asia::Kolkata);
        assert_eq!(kolkata.next_after(from), Some(utc(2026, 3, 5, 1, 30, 0)));
        let utc_daily = schedule("0 7 * * *", Tz::UTC);
        assert_eq!(utc_daily.next_after(from), Some(utc(2026, 3, 5, 7, 0, 0)));
    }

    #[test]
    fn next_after_is_strictly_after() {
        let s = schedule("0 7 * * *", Tz::UTC);
        let fire = utc(2026, 3, 5, 7, 0, 0);
        assert_eq!(s.next_after(fire), Some(utc(2026, 3, 6, 7, 0, 0)));
        let just_past = fire + TimeDelta::milliseconds(500);
        assert_eq!(s.next_after(just_past), Some(utc(2026, 3, 6, 7, 0, 0)));
        let just_before = fire - TimeDelta::milliseconds(500);
        assert_eq!(s.next_after(just_before), Some(fire));
    }

    #[test]
    fn latest_at_or_before_returns_a_fire_time_equal_to_at() {
        let s = schedule("0 7 * * *", BERLIN);
        let fire = utc(2026, 3, 5, 6, 0, 0);
        assert_eq!(s.latest_at_or_before(fire, Duration::ZERO), Some(fire));
    }

    #[test]
    fn latest_at_or_before_returns_the_previous_fire_time_otherwise() {
        let s = schedule("0 7 * * *", BERLIN);
        let day = Duration::from_secs(86_400);
        let at = utc(2026, 3, 5, 5, 59, 59);
        assert_eq!(
            s.latest_at_or_before(at, day),
            Some(utc(2026, 3, 4, 6, 0, 0))
        );
        let at = utc(2026, 3, 5, 6, 0, 0) + TimeDelta::milliseconds(1);
        assert_eq!(
            s.latest_at_or_before(at, day),
            Some(utc(2026, 3, 5, 6, 0, 0))
        );
    }

    #[test]
    fn latest_at_or_before_is_none_beyond_the_horizon() {
        let s = schedule("0 7 * * 1", Tz::UTC);
        // Thursday; the last run was Monday 07:00, three days and five hours back.
        let at = utc(2026, 3, 5, 12, 0, 0);
        assert_eq!(
            s.latest_at_or_before(at, Duration::from_secs(3 * 86_400)),
            None
        );
        assert_eq!(
            s.latest_at_or_before(at, Duration::from_secs(4 * 86_400)),
            Some(utc(2026, 3, 2, 7, 0, 0))
        );
        // Exactly at the horizon still counts.
        let horizon = Duration::from_secs(3 * 86_400 + 5 * 3_600);
        assert_eq!(
            s.latest_at_or_before(at, horizon),
            Some(utc(2026, 3, 2, 7, 0, 0))
        );
    }

    #[test]
    fn latest_at_or_before_in_a_repeated_hour_is_never_after_at() {
        let s = schedule("*/15 * * * *", NY);
        let hour = Duration::from_secs(3_600);
        // 06:40 UTC is 01:40 EST, the second pass: 01:45 ran at 05:45 UTC, 01:30 EST did not.
        let at = utc(2026, 11, 1, 6, 40, 0);
        assert_eq!(
            s.latest_at_or_before(at, hour),
            Some(utc(2026, 11, 1, 5, 45, 0))
        );
        // In the first pass it is the ordinary previous quarter.
        let at = utc(2026, 11, 1, 5, 40, 0);
        assert_eq!(
            s.latest_at_or_before(at, hour),
            Some(utc(2026, 11, 1, 5, 30, 0))
        );
    }

    #[test]
    fn latest_at_or_before_finds_the_run_at_the_end_of_a_gap() {
        let s = schedule("30 2 * * *", NY);
        let fire = utc(2026, 3, 8, 7, 0, 0);
        assert_eq!(s.latest_at_or_before(fire, Duration::ZERO), Some(fire));
        let before = fire - TimeDelta::seconds(1);
        assert_eq!(
            s.latest_at_or_before(before, Duration::from_secs(86_400)),
            Some(utc(2026, 3, 7, 7, 30, 0))
        );
    }

    #[test]
    fn describe_is_not_empty_and_names_the_zone() {
        let text = schedule("0 7 * * Mon-Fri", BERLIN).describe();
        assert!(text.contains("Europe/Berlin"), "{text}");
        assert!(text.len() > "(Europe/Berlin time)".len(), "{text}");
    }

    #[test]
    fn expr_and_zone_are_kept() {
        let s = schedule("  0 7 * * 1-5 ", BERLIN);
        assert_eq!(s.expr(), "0 7 * * 1-5");
        assert_eq!(s.zone(), BERLIN);
    }
}

//! `[schedule]`: when the daemon and the Functions timers sync and verify.

use super::defaults::{CRON, TIMEZONE, VERIFY_CRON};
use super::fields::{Fields, Problems};

#[derive(Debug, Clone)]
pub struct ScheduleConfig {
    pub cron: String,
    pub timezone: String,
    pub verify_cron: String,
}

pub(super) fn read(t: Option<&toml::Table>, problems: &Problems) -> ScheduleConfig {
    let empty = toml::Table::new();
    let mut f = Fields::new("schedule", t.unwrap_or(&empty), problems);
    let schedule = ScheduleConfig {
        cron: f.string_or("cron", CRON),
        timezone: f.string_or("timezone", TIMEZONE),
        verify_cron: f.string_or("verify_cron", VERIFY_CRON),
    };
    f.finish();
    schedule
}

pub(super) fn validate(s: &ScheduleConfig, problems: &Problems) {
    for problem in check_schedule(&s.cron, &s.timezone, &s.verify_cron) {
        problems.push(problem);
    }
}

/// Checks `[schedule]` as the daemon and the Functions timers read it: both expressions
/// with the daemon's own cron parser (seconds first), and a timezone the scheduler
/// supports. Every problem is returned; the daemon runs the same check before it starts.
pub fn check_schedule(cron: &str, timezone: &str, verify_cron: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for (key, expr) in [("schedule.cron", cron), ("schedule.verify_cron", verify_cron)] {
        if let Err(why) = parse_cron(expr) {
            problems.push(format!(
                "{key} = {expr:?} is not a cron expression the scheduler accepts ({why}): write six fields, seconds first, like \"0 0 */8 * * *\""
            ));
        }
    }
    if !timezone.eq_ignore_ascii_case("UTC") {
        problems.push(format!(
            "schedule.timezone = {timezone:?} is not supported: the daemon and Azure Functions schedule in UTC only; set timezone = \"UTC\" and write the cron in UTC"
        ));
    }
    problems
}

/// Parses a cron expression exactly as tokio-cron-scheduler does (croner, seconds
/// required, day-of-month and day-of-week both applying), and refuses one that never fires.
/// Why a cron expression is refused; the text goes inside the problem's parentheses.
#[derive(Debug, thiserror::Error)]
pub enum CronError {
    #[error("longer than 256 characters")]
    TooLong,
    #[error("{0}")]
    Invalid(#[source] croner::errors::CronError),
    #[error("it never fires")]
    NeverFires,
}

pub fn parse_cron(expr: &str) -> Result<croner::Cron, CronError> {
    if expr.len() > 256 {
        return Err(CronError::TooLong);
    }
    let cron = croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Required)
        .dom_and_dow(true)
        .build()
        .parse(expr)
        .map_err(CronError::Invalid)?;
    let from = chrono::DateTime::<chrono::Utc>::from_timestamp(1_767_225_600, 0).unwrap_or_default();
    cron.find_next_occurrence(&from, false)
        .map_err(|_| CronError::NeverFires)?;
    Ok(cron)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cron_and_timezone_are_checked_as_the_daemon_schedules() {
        assert!(parse_cron("0 0 */8 * * *").is_ok());
        assert!(parse_cron("0 30 1 * * *").is_ok());
        assert!(parse_cron("0 0 9 * * Mon-Fri").is_ok());
        for bad in [
            "a b c d e f",
            "0 0 * * *",
            "",
            "0 0 0 30 2 *",
            "61 0 0 * * *",
            "* * * * * * * *",
        ] {
            assert!(parse_cron(bad).is_err(), "{bad:?} accepted");
        }
        assert!(check_schedule("0 0 */8 * * *", "UTC", "0 30 1 * * *").is_empty());
        assert!(check_schedule("0 0 */8 * * *", "utc", "0 30 1 * * *").is_empty());
        let p = check_schedule("0 0 */8 * * *", "Mars/Olympus", "0 30 1 * * *");
        assert_eq!(p.len(), 1);
        assert!(p[0].contains("UTC"), "{p:?}");
        // Every expression croner accepts is one tokio-cron-scheduler accepts.
        for expr in ["0 0 */8 * * *", "0 30 1 * * *", "0 0 9 * * Mon-Fri", "*/10 * * * * *"] {
            assert!(tokio_cron_scheduler::Job::new(expr, |_, _| {}).is_ok(), "{expr}");
        }
        assert!(tokio_cron_scheduler::Job::new("a b c d e f", |_, _| {}).is_err());
    }
}

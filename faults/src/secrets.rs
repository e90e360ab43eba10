//! Secrets: after every other scenario, nothing any app printed may carry a password,
//! a password hash, a session JWT, a cookie, a card token or a Stripe key.

use crate::{Logbook, Report, Size, users};

pub fn run(_: Size, logbook: &Logbook) -> Report {
    let lines = logbook.lines();
    let mut report = Report::default();
    report.check(!lines.is_empty(), || {
        "no log lines to check: run it after the other scenarios".to_owned()
    });
    let secrets = [
        ("passwords", users::password()),
        ("password hashes", "$argon2"),
        // Every JWT starts with the base64 of `{"`.
        ("JWTs", "eyJ"),
        ("cookies", "session="),
        ("card tokens", "tok_"),
        ("Stripe keys", "sk_test_"),
    ];
    let mut found = Vec::new();
    for (what, needle) in secrets {
        let lines_with: Vec<&String> = lines.iter().filter(|line| line.contains(needle)).collect();
        report.check(lines_with.is_empty(), || {
            format!(
                "{} lines with {what}, first: {}",
                lines_with.len(),
                lines_with[0].chars().take(200).collect::<String>()
            )
        });
        found.push(format!("{} {what}", lines_with.len()));
    }
    report.figures = format!(
        "{} log lines of every app above: {}",
        lines.len(),
        found.join(", ")
    );
    report
}

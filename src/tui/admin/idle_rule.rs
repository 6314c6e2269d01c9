//! The Idle view's rule prompt (`e`): the rule as one line,
//! `GPU% CPU% AFTER notify|cancel [CANCEL_AFTER]` or `off`, as `idle set`
//! takes it in flags. Whether the caller may change it, and the ranges, are
//! the service's to decide.

use crate::lab::IdleRuleShown;
use crate::model::parse_duration;
use crate::monitor::idle::{DEFAULT_CANCEL_AFTER_SECS, IdleRule};

/// What the prompt says it takes.
pub const FORM: &str = "GPU% CPU% AFTER notify|cancel [CANCEL_AFTER], or off";

/// `rule` as the prompt's line (what the prompt opens with).
pub fn rule_text(rule: Option<&IdleRuleShown>) -> String {
    let Some(r) = rule else {
        return "off".into();
    };
    let duration = |secs: i64| exact_duration(secs.max(0) as u64);
    let then = match r.cancel_after_secs {
        Some(grace) => format!("cancel {}", duration(grace)),
        None => "notify".into(),
    };
    format!(
        "{} {} {} {then}",
        r.gpu_percent,
        r.cpu_percent,
        duration(r.after_secs)
    )
}

/// `secs` as `parse_duration` reads it back exactly: `1h30m`, `90s`, `0s`.
fn exact_duration(secs: u64) -> String {
    let parts = [
        (secs / 86_400, 'd'),
        (secs % 86_400 / 3600, 'h'),
        (secs % 3600 / 60, 'm'),
        (secs % 60, 's'),
    ];
    let text: String = parts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect();
    if text.is_empty() { "0s".into() } else { text }
}

/// The rule a line asks for (`None`: detection off), or why it cannot be read.
pub fn parse_rule(text: &str) -> Result<Option<IdleRule>, String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    if words == ["off"] {
        return Ok(None);
    }
    let (gpu, cpu, after, action, grace) = match words.as_slice() {
        [gpu, cpu, after, action] => (gpu, cpu, after, action, None),
        [gpu, cpu, after, action, grace] => (gpu, cpu, after, action, Some(grace)),
        _ => return Err(format!("expected {FORM}")),
    };
    let gpu_percent = gpu
        .parse::<u32>()
        .ok()
        .filter(|p| *p <= 100)
        .ok_or_else(|| format!("GPU%: a whole number of percent, 0–100, not {gpu:?}"))?;
    let cpu_percent = cpu
        .parse::<f64>()
        .ok()
        .filter(|p| (0.0..=100.0).contains(p))
        .ok_or_else(|| format!("CPU%: a number of percent, 0–100, not {cpu:?}"))?;
    let after_secs = parse_duration(after).map_err(|e| format!("AFTER: {e}"))?;
    let grace_secs = grace
        .map(|g| match *g {
            "0" | "0s" | "0m" | "0h" | "0d" => Ok(0),
            g => parse_duration(g).map_err(|e| format!("CANCEL_AFTER: {e}")),
        })
        .transpose()?;
    let cancel_after_secs = match (*action, grace_secs) {
        ("cancel", grace) => Some(grace.map_or(DEFAULT_CANCEL_AFTER_SECS, |g| g as i64)),
        ("notify", None) => None,
        ("notify", Some(_)) => return Err("CANCEL_AFTER goes with cancel".into()),
        (other, _) => return Err(format!("notify or cancel, not {other:?}")),
    };
    Ok(Some(IdleRule {
        gpu_percent,
        cpu_percent,
        after_secs: after_secs as i64,
        cancel_after_secs,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_shown_reads_back_as_itself() {
        let rules = [
            IdleRuleShown {
                gpu_percent: 5,
                cpu_percent: 2.5,
                after_secs: 3600,
                cancel_after_secs: Some(1800),
            },
            IdleRuleShown {
                gpu_percent: 10,
                cpu_percent: 5.0,
                after_secs: 90,
                cancel_after_secs: None,
            },
            IdleRuleShown {
                gpu_percent: 0,
                cpu_percent: 0.0,
                after_secs: 86_400 + 5400 + 7,
                cancel_after_secs: Some(0),
            },
        ];
        for r in rules {
            let text = rule_text(Some(&r));
            let back = parse_rule(&text).expect(&text).expect("on");
            assert_eq!(
                (
                    back.gpu_percent,
                    back.cpu_percent,
                    back.after_secs,
                    back.cancel_after_secs
                ),
                (
                    r.gpu_percent,
                    r.cpu_percent,
                    r.after_secs,
                    r.cancel_after_secs
                ),
                "{text}"
            );
        }
        assert_eq!(rule_text(None), "off");
        assert_eq!(parse_rule(" off "), Ok(None));
    }

    #[test]
    fn cancel_without_a_grace_waits_half_an_hour() {
        let rule = parse_rule("5 5 1h cancel").expect("reads").expect("on");
        assert_eq!(rule.cancel_after_secs, Some(DEFAULT_CANCEL_AFTER_SECS));
    }

    #[test]
    fn a_line_that_cannot_be_read_says_which_part() {
        for (text, says) in [
            ("", "expected"),
            ("5 5 1h", "expected"),
            ("five 5 1h notify", "GPU%"),
            ("5 lots 1h notify", "CPU%"),
            ("150 5 1h notify", "GPU%"),
            ("5 -5 1h notify", "CPU%"),
            ("5 NaN 1h notify", "CPU%"),
            ("5 inf 1h notify", "CPU%"),
            ("5 5 soon notify", "AFTER"),
            ("5 5 1h notify 10m", "goes with cancel"),
            ("5 5 1h kill", "notify or cancel"),
            ("5 5 1h cancel later", "CANCEL_AFTER"),
        ] {
            let err = parse_rule(text).expect_err(text);
            assert!(err.contains(says), "{text}: {err}");
        }
    }
}

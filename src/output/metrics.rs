//! Metrics an experiment reports without an SDK: lines
//! `@metric name=value [name=value…] [step=N]` in its standard output, and
//! JSON lines it appends to `$LABBENCH_METRICS`, either
//! `{"name":"loss","value":0.3,"step":10}` or `{"loss":0.3,"acc":0.9,"step":10}`.
//! A malformed line is counted, never fatal; lines that are not metrics are
//! ignored.

use std::fmt;

/// Longest metric name, in characters.
pub const MAX_NAME: usize = 128;

/// One reported value.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricPoint {
    /// The metric's name (ASCII letters, digits, `_`, `-`, `.`, `/`).
    pub name: String,
    /// Its value (finite).
    pub value: f64,
    /// The step it was reported at, if the line said.
    pub step: Option<u64>,
}

/// Why a metric line was not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub String);

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The word that starts a metric line in standard output.
const STDOUT_MARK: &str = "@metric";

/// The points of a line of standard output: `None` if it is not a metric
/// line (it does not start with `@metric`), else what it reports.
pub fn parse_output_line(line: &str) -> Option<Result<Vec<MetricPoint>, Malformed>> {
    let rest = line.trim().strip_prefix(STDOUT_MARK)?;
    if !rest.is_empty() && !rest.starts_with(char::is_whitespace) {
        return None;
    }
    let mut pairs = Vec::new();
    let mut step = None;
    for word in rest.split_whitespace() {
        let Some((name, value)) = word.split_once('=') else {
            return Some(Err(Malformed(format!("{word:?}: expected name=value"))));
        };
        if name == "step" {
            match value.parse::<u64>() {
                Ok(n) if n < u64::MAX => step = Some(n),
                _ => {
                    return Some(Err(Malformed(format!("step={value}: not a whole number"))));
                }
            }
            continue;
        }
        match number(name, value.parse().ok()) {
            Ok(value) => pairs.push((name.to_string(), value)),
            Err(why) => return Some(Err(why)),
        }
    }
    Some(points(pairs, step))
}

/// The points of a line of `$LABBENCH_METRICS` (an empty line has none).
pub fn parse_json_line(line: &str) -> Result<Vec<MetricPoint>, Malformed> {
    let line = line.trim();
    if line.is_empty() {
        return Ok(Vec::new());
    }
    let object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(line).map_err(|e| Malformed(format!("not a JSON object: {e}")))?;
    let step = match object.get("step") {
        None | Some(serde_json::Value::Null) => None,
        Some(step) => Some(
            step.as_u64()
                .filter(|n| *n < u64::MAX)
                .ok_or_else(|| Malformed(format!("step {step}: not a whole number")))?,
        ),
    };
    if let Some(name) = object.get("name") {
        let name = name
            .as_str()
            .ok_or_else(|| Malformed(format!("name {name}: not a string")))?;
        let value = number(
            name,
            object.get("value").and_then(serde_json::Value::as_f64),
        )?;
        return points(vec![(name.to_string(), value)], step);
    }
    let mut pairs = Vec::new();
    for (name, value) in &object {
        if name == "step" {
            continue;
        }
        pairs.push((name.clone(), number(name, value.as_f64())?));
    }
    points(pairs, step)
}

/// `value` of metric `name`, if it is a finite number.
fn number(name: &str, value: Option<f64>) -> Result<f64, Malformed> {
    value
        .filter(|v| v.is_finite())
        .ok_or_else(|| Malformed(format!("{name}: not a finite number")))
}

/// The points of `pairs` at `step`, once every name is valid.
fn points(pairs: Vec<(String, f64)>, step: Option<u64>) -> Result<Vec<MetricPoint>, Malformed> {
    if pairs.is_empty() {
        return Err(Malformed("no metric in the line".into()));
    }
    pairs
        .into_iter()
        .map(|(name, value)| {
            valid_name(&name)?;
            Ok(MetricPoint { name, value, step })
        })
        .collect()
}

/// Refuses a name that is empty, too long, or has other characters than
/// ASCII letters and digits, `_`, `-`, `.` and `/` (no letter that a
/// terminal would reorder or stack).
pub fn valid_name(name: &str) -> Result<(), Malformed> {
    let fine = |c: char| c.is_ascii_alphanumeric() || "_-./".contains(c);
    if name.is_empty() || name.chars().count() > MAX_NAME || !name.chars().all(fine) {
        return Err(Malformed(format!(
            "{name:?}: a metric name is 1 to {MAX_NAME} ASCII letters, digits, _ - . or /"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(name: &str, value: f64, step: Option<u64>) -> MetricPoint {
        MetricPoint {
            name: name.into(),
            value,
            step,
        }
    }

    #[test]
    fn output_lines_report_metrics_and_other_lines_are_left_alone() {
        assert_eq!(
            parse_output_line("@metric loss=0.25 acc=0.9 step=3"),
            Some(Ok(vec![
                point("loss", 0.25, Some(3)),
                point("acc", 0.9, Some(3))
            ]))
        );
        assert_eq!(
            parse_output_line("  @metric val/auc=1e-3"),
            Some(Ok(vec![point("val/auc", 0.001, None)]))
        );
        for other in [
            "epoch 3 loss=0.2",
            "@metrics loss=1",
            "",
            "email@metric.org",
        ] {
            assert_eq!(parse_output_line(other), None, "{other}");
        }
        for bad in [
            "@metric",
            "@metric loss",
            "@metric loss=abc",
            "@metric loss=NaN",
            "@metric loss=1 step=-1",
            "@metric loss=1 step=18446744073709551615",
            "@metric é=1",
            "@metric l$ss=1",
        ] {
            assert!(matches!(parse_output_line(bad), Some(Err(_))), "{bad}");
        }
    }

    #[test]
    fn json_lines_come_in_either_form() {
        assert_eq!(
            parse_json_line(r#"{"name":"loss","value":0.3,"step":10}"#),
            Ok(vec![point("loss", 0.3, Some(10))])
        );
        let mut both = parse_json_line(r#"{"loss":0.3,"acc":0.9,"step":10}"#).expect("pairs");
        both.sort_by(|a, b| a.name.cmp(&b.name));
        assert_eq!(
            both,
            vec![point("acc", 0.9, Some(10)), point("loss", 0.3, Some(10))]
        );
        assert_eq!(parse_json_line("  "), Ok(Vec::new()));
        for bad in [
            "not json",
            "[1,2]",
            r#"{"name":"loss"}"#,
            r#"{"name":"loss","value":"x"}"#,
            r#"{"loss":true}"#,
            r#"{"loss":1,"step":1.5}"#,
            r#"{"step":3}"#,
            r#"{"":1}"#,
        ] {
            let got = parse_json_line(bad);
            assert!(got.is_err(), "{bad}: {got:?}");
        }
    }
}

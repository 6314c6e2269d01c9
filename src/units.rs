//! How quantities are shown to people: bytes, cores, durations.

/// Formats one figure for a table cell.
pub type Formatter = fn(f64) -> String;

/// Bytes as a short human figure (binary units).
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Seconds since the epoch as `YYYY-MM-DD HH:MM` (UTC), `-` if out of range.
pub fn minute_time(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|d| d.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|| "-".into())
}

/// Seconds as `3d 04:05` or `04:05:06`.
pub fn human_duration(secs: u64) -> String {
    let days = secs / 86_400;
    let h = (secs % 86_400) / 3600;
    let m = (secs % 3600) / 60;
    let s = secs % 60;
    if days > 0 {
        format!("{days}d {h:02}:{m:02}")
    } else {
        format!("{h:02}:{m:02}:{s:02}")
    }
}

/// Seconds in the largest whole unit: `45s`, `12m`, `3h`, `6d`.
pub fn short_duration(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs / 60),
        3600..86_400 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}

/// Bytes in at most five characters: `512M`, `1.5G`, `12G`, `1.2T`.
pub fn short_bytes(bytes: f64) -> String {
    const UNITS: [&str; 5] = ["B", "K", "M", "G", "T"];
    // Not `max(0.0)`, which may keep -0.0 (shown "-0B") and NaN.
    let mut value = if bytes > 0.0 { bytes } else { 0.0 };
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value:.0}B")
    } else if value < 10.0 {
        format!("{value:.1}{}", UNITS[unit])
    } else {
        format!("{value:.0}{}", UNITS[unit])
    }
}

/// CPU cores with one decimal.
pub fn cores(value: f64) -> String {
    format!("{value:.1}")
}

/// Text safe to print on any terminal: control characters (escape
/// sequences included) and the bidirectional formatting characters (with
/// which a name could show its text reversed, or move what follows it)
/// become `?`.
pub fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() || is_bidi_control(c) {
                '?'
            } else {
                c
            }
        })
        .collect()
}

/// Unicode's explicit directional formatting characters and marks.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200E}' | '\u{200F}' | '\u{061C}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// A number for a chart's label or a table: short, without trailing zeros.
pub fn plain_number(value: f64) -> String {
    if value.abs() >= 1e6 || (value != 0.0 && value.abs() < 1e-3) {
        format!("{value:.2e}")
    } else if value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        let text = format!("{value:.4}");
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(3 * 1024 * 1024 * 1024 / 2), "1.5 GiB");
        assert_eq!(human_duration(3 * 86_400 + 4 * 3600 + 5 * 60), "3d 04:05");
        assert_eq!(human_duration(61), "00:01:01");
    }

    #[test]
    fn printable_neutralises_controls_and_direction_overrides() {
        assert_eq!(printable("a\x1b[31mb\u{9b}c"), "a?[31mb?c");
        assert_eq!(printable("run\u{202E}gpj.exe"), "run?gpj.exe");
        assert_eq!(printable("x\u{2066}y\u{2069}\u{200F}"), "x?y??");
        assert_eq!(printable("données 日本"), "données 日本");
    }

    #[test]
    fn short_bytes_fits_five_characters() {
        assert_eq!(short_bytes(512.0), "512B");
        assert_eq!(short_bytes(1536.0 * 1024.0 * 1024.0), "1.5G");
        assert_eq!(short_bytes(41.0 * GIB), "41G");
        assert_eq!(short_bytes(1200.0 * GIB), "1.2T");
        assert_eq!(short_bytes(-5.0), "0B");
        assert_eq!(short_bytes(-0.0), "0B");
        assert_eq!(short_bytes(f64::NAN), "0B");
        assert_eq!(short_duration(59), "59s");
        assert_eq!(short_duration(3599), "59m");
        assert_eq!(short_duration(7200), "2h");
        assert_eq!(short_duration(7 * 86_400), "7d");
        assert_eq!(cores(3.25), "3.2");
        assert_eq!(printable("ok\x1b[2J\x07"), "ok?[2J?");
    }
}

//! The page around a report: escaping, inline CSS, headings and tables.

/// `text` safe inside HTML text and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// A whole page titled `title` around `body` (already HTML).
pub fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\n<title>{}</title>\n<style>{CSS}</style>\n</head>\n<body>\n{body}<footer>Written by labbench {} on {}.</footer>\n</body>\n</html>\n",
        escape(title),
        env!("CARGO_PKG_VERSION"),
        escape(&chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string()),
    )
}

const CSS: &str = "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}\
h1{font-size:1.6em}h2{font-size:1.25em;border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}\
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}\
th{background:#f4f4f4}code,pre{font-family:ui-monospace,monospace;font-size:.9em}pre{background:#f7f7f7;padding:.6em;overflow:auto;white-space:pre-wrap}\
.positive{color:#1a7f37;font-weight:bold}.negative{color:#a40e26;font-weight:bold}.inconclusive{color:#8a6d00;font-weight:bold}\
.charts svg{margin:.4em .8em .4em 0;border:1px solid #eee}footer{margin-top:3em;color:#777;font-size:.85em}";

/// A table with `header` and `rows` (cells already HTML).
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = String::from("<table>\n<tr>");
    for h in header {
        out.push_str(&format!("<th>{}</th>", escape(h)));
    }
    out.push_str("</tr>\n");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            out.push_str(&format!("<td>{cell}</td>"));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
    out
}

/// Two-column rows: a name and its value (already HTML).
pub fn facts(rows: &[(&str, String)]) -> String {
    let mut out = String::from("<table>\n");
    for (name, value) in rows {
        out.push_str(&format!(
            "<tr><th>{}</th><td>{value}</td></tr>\n",
            escape(name)
        ));
    }
    out.push_str("</table>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_for_html() {
        assert_eq!(
            escape("<img src=x onerror=\"alert('1')\"> & \u{1b}[31m"),
            "&lt;img src=x onerror=&quot;alert(&#39;1&#39;)&quot;&gt; &amp; \u{FFFD}[31m"
        );
    }
}

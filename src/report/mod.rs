//! Reports for people without a terminal: one self-contained HTML page
//! (inline CSS, inline SVG charts, no script, no network fetch; a content
//! security policy forbids both) with an experiment's provenance, metrics,
//! resource use, outcome and comments (`report ID --html`), or a table of
//! many with a chart across them (`report --project P --html`, `report
//! FILTER --html`).
//!
//! Rendering only: the command gathers what the caller may read through
//! the service and hands it here. Every text from users is escaped.

pub mod html;
pub mod svg;

use crate::units::plain_number as plain;
use html::{escape, facts, page, table};
use svg::{Chart, Series, line_chart};

use crate::lab::{Discussion, HistoryRow, MetricsReport, ResourceSeries};
use crate::model::{Experiment, Provenance};
use crate::units::{human_bytes, human_duration, minute_time, short_bytes};

/// Metric charts drawn at most (the table has every metric).
const CHARTS: usize = 8;
/// Points of each line drawn at most.
const POINTS: usize = 1000;
/// Lines of a diff shown at most.
const DIFF_LINES: usize = 400;

/// What one experiment's report shows; each part is what the caller may
/// read, or why not.
#[derive(Debug, Clone)]
pub struct ExperimentReport {
    /// The experiment as the caller sees it.
    pub experiment: Experiment,
    /// Its provenance.
    pub provenance: Result<Provenance, String>,
    /// Its git diff.
    pub diff: Option<String>,
    /// Its metrics with their values.
    pub metrics: Result<MetricsReport, String>,
    /// Its use over its run.
    pub resources: Option<ResourceSeries>,
    /// Its outcome and comments.
    pub discussion: Result<Discussion, String>,
}

fn gib(v: f64) -> String {
    short_bytes(v)
}

fn verdict_html(verdict: &str, note: Option<&str>) -> String {
    let mut out = format!("<span class=\"{0}\">{0}</span>", escape(verdict));
    if let Some(note) = note {
        out.push_str(&format!(" — {}", escape(note)));
    }
    out
}

/// The page of one experiment.
pub fn experiment_html(r: &ExperimentReport) -> String {
    let e = &r.experiment;
    let title = format!(
        "Experiment {}{}",
        e.id,
        e.spec
            .name
            .as_ref()
            .map(|n| format!(" · {n}"))
            .unwrap_or_default()
    );
    let mut body = format!("<h1>{}</h1>\n", escape(&title));
    let outcome = match &r.discussion {
        Ok(d) => d.outcome.as_ref().map_or("none given".to_string(), |c| {
            verdict_html(c.verdict.name(), c.note.as_deref())
        }),
        Err(why) => escape(why),
    };
    let mut rows = vec![
        ("Owner", escape(&e.owner)),
        ("Project", escape(e.spec.project.as_deref().unwrap_or("-"))),
        ("State", escape(e.state.name())),
        ("Outcome", outcome),
        ("Submitted", escape(&minute_time(e.submitted_at))),
        (
            "Command",
            format!("<code>{}</code>", escape(&e.spec.command.display())),
        ),
        ("Asked for", escape(&e.spec.resources.summary())),
    ];
    if !e.spec.tags.is_empty() {
        rows.push(("Tags", escape(&e.spec.tags.join(", "))));
    }
    if !e.spec.params.is_empty() {
        let params: Vec<String> = e
            .spec
            .params
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        rows.push((
            "Params",
            format!("<code>{}</code>", escape(&params.join(" "))),
        ));
    }
    body.push_str(&facts(&rows));

    body.push_str("<h2>Metrics</h2>\n");
    match &r.metrics {
        Err(why) => body.push_str(&format!("<p>{}</p>\n", escape(why))),
        Ok(m) if m.metrics.is_empty() => body.push_str("<p>No metrics reported.</p>\n"),
        Ok(m) => {
            let rows: Vec<Vec<String>> = m
                .metrics
                .iter()
                .map(|s| {
                    vec![
                        escape(&s.name),
                        s.count.to_string(),
                        plain(s.last),
                        plain(s.min),
                        plain(s.max),
                    ]
                })
                .collect();
            body.push_str(&table(&["Metric", "Values", "Last", "Min", "Max"], &rows));
            body.push_str("<div class=\"charts\">\n");
            for s in m.metrics.iter().take(CHARTS) {
                let points = crate::lab::downsample(s.points.clone(), POINTS);
                let xy: Vec<(f64, f64)> = points
                    .iter()
                    .enumerate()
                    .map(|(i, p)| (p.step.map_or(i as f64, |s| s as f64), p.value))
                    .collect();
                let series = [Series {
                    label: s.name.clone(),
                    points: xy,
                }];
                if let Some(chart) = line_chart(&Chart::lines(&s.name, "step", &s.name), &series) {
                    body.push_str(&chart);
                }
            }
            body.push_str("</div>\n");
            if m.malformed > 0 {
                body.push_str(&format!(
                    "<p>{} line(s) could not be read as metrics.</p>\n",
                    m.malformed
                ));
            }
        }
    }

    body.push_str("<h2>Resources</h2>\n");
    let u = &e.usage;
    let mut rows = vec![
        ("CPU time", format!("{:.0} CPU-seconds", u.cpu_seconds)),
        ("Peak memory", escape(&human_bytes(u.peak_memory_bytes))),
        (
            "GPU time",
            format!("{:.2} GPU-hours", u.gpu_seconds / 3600.0),
        ),
    ];
    if let Some(p) = &u.profile {
        rows.push((
            "CPU cores peak / p95 / mean",
            format!(
                "{:.1} / {:.1} / {:.1} of {}",
                p.cpu_cores.peak, p.cpu_cores.p95, p.cpu_cores.mean, e.spec.resources.cpus
            ),
        ));
        rows.push((
            "Memory peak / p95 / mean",
            escape(&format!(
                "{} / {} / {} of {}",
                gib(p.memory_bytes.peak),
                gib(p.memory_bytes.p95),
                gib(p.memory_bytes.mean),
                gib(e.spec.resources.memory_bytes as f64)
            )),
        ));
    }
    if let Some(hint) = crate::describe::sizing_line(e) {
        rows.push(("Sizing", escape(&hint)));
    }
    body.push_str(&facts(&rows));
    if let Some(series) = &r.resources
        && let Some(first) = series.samples.first()
    {
        let at = |t: i64| (t - first.at) as f64;
        let memory = [Series {
            label: "memory".into(),
            points: series
                .samples
                .iter()
                .map(|s| (at(s.at), s.memory_bytes as f64))
                .collect(),
        }];
        let cpu = [Series {
            label: "CPU cores".into(),
            points: series
                .samples
                .iter()
                .map(|s| (at(s.at), f64::from(s.cpu_cores)))
                .collect(),
        }];
        body.push_str("<div class=\"charts\">\n");
        let used = |title, unit, y_format| Chart {
            y_format,
            from_zero: true,
            ..Chart::lines(title, "seconds", unit)
        };
        for chart in [
            line_chart(&used("Memory in use", "bytes", gib), &memory),
            line_chart(&used("CPU cores busy", "cores", plain), &cpu),
        ]
        .into_iter()
        .flatten()
        {
            body.push_str(&chart);
        }
        body.push_str("</div>\n");
    }

    body.push_str("<h2>Provenance</h2>\n");
    match &r.provenance {
        Err(why) => body.push_str(&format!("<p>{}</p>\n", escape(why))),
        Ok(p) if *p == Provenance::default() => {
            body.push_str("<p>No provenance was captured (it has not started, or ran before labbench captured it).</p>\n");
        }
        Ok(p) => body.push_str(&provenance_html(p, r.diff.as_deref())),
    }

    body.push_str("<h2>Comments</h2>\n");
    match &r.discussion {
        Err(why) => body.push_str(&format!("<p>{}</p>\n", escape(why))),
        Ok(d) if d.comments.is_empty() => body.push_str("<p>No comments.</p>\n"),
        Ok(d) => {
            for c in &d.comments {
                body.push_str(&format!(
                    "<p><b>{}</b>, {}{}:</p>\n<pre>{}</pre>\n",
                    escape(&c.author),
                    escape(&minute_time(c.at)),
                    if c.edited_at.is_some() {
                        " (edited)"
                    } else {
                        ""
                    },
                    escape(&c.text)
                ));
            }
        }
    }
    page(&title, &body)
}

fn provenance_html(p: &Provenance, diff: Option<&str>) -> String {
    let mut out = String::new();
    match &p.git {
        None => out.push_str("<p>Not in a git repository.</p>\n"),
        Some(g) => {
            let mut rows = vec![
                ("Repository", escape(&g.repository)),
                (
                    "Branch",
                    escape(g.branch.as_deref().unwrap_or("(detached)")),
                ),
                (
                    "Commit",
                    format!(
                        "<code>{}</code>",
                        escape(g.commit.as_deref().unwrap_or("(none)"))
                    ),
                ),
                (
                    "Working tree",
                    if g.dirty {
                        format!(
                            "changed: diff of {}{}, {} untracked file(s)",
                            escape(&human_bytes(g.diff_bytes)),
                            if g.diff_truncated { " (cut)" } else { "" },
                            g.untracked.len()
                        )
                    } else {
                        "clean".into()
                    },
                ),
            ];
            if let Some(remote) = &g.remote {
                rows.push(("Remote", escape(remote)));
            }
            out.push_str(&facts(&rows));
            if let Some(diff) = diff.filter(|d| !d.is_empty()) {
                let lines: Vec<&str> = diff.lines().take(DIFF_LINES).collect();
                out.push_str(&format!(
                    "<details><summary>Diff against the commit ({} lines{})</summary>\n<pre>{}</pre>\n</details>\n",
                    diff.lines().count(),
                    if diff.lines().count() > DIFF_LINES { ", the first shown" } else { "" },
                    escape(&lines.join("\n"))
                ));
            }
        }
    }
    let digests = |label: &str, list: &[crate::model::FileDigest]| -> Vec<Vec<String>> {
        list.iter()
            .map(|d| {
                vec![
                    escape(label),
                    format!("<code>{}</code>", escape(&d.path.display().to_string())),
                    escape(&human_bytes(d.bytes)),
                    d.blake3.as_deref().map_or_else(
                        || escape(d.error.as_deref().unwrap_or("unreadable")),
                        |h| format!("<code>{}</code>", escape(h)),
                    ),
                ]
            })
            .collect()
    };
    let mut files = digests("input", &p.inputs);
    files.extend(digests("output", &p.outputs));
    if !files.is_empty() {
        out.push_str(&table(&["", "Path", "Size", "blake3"], &files));
    }
    if !p.interpreters.is_empty() {
        let rows: Vec<Vec<String>> = p
            .interpreters
            .iter()
            .map(|i| vec![escape(&i.name), escape(&i.version)])
            .collect();
        out.push_str(&table(&["Interpreter", "Version"], &rows));
    }
    if !p.packages.is_empty() {
        let rows: Vec<Vec<String>> = p
            .packages
            .iter()
            .map(|pkg| {
                vec![
                    escape(&pkg.ecosystem),
                    escape(&pkg.name),
                    escape(
                        pkg.version
                            .as_deref()
                            .or(pkg.constraint.as_deref())
                            .unwrap_or(""),
                    ),
                    escape(&pkg.from),
                ]
            })
            .collect();
        out.push_str(&table(&["Ecosystem", "Package", "Version", "From"], &rows));
    }
    if !p.sources.is_empty() {
        out.push_str(&format!(
            "<p>Data sources: {}</p>\n",
            p.sources
                .iter()
                .map(|s| format!("<code>{}</code>", escape(s)))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    for s in &p.skipped {
        out.push_str(&format!(
            "<p>Not captured: {}: {}</p>\n",
            escape(&s.what),
            escape(&s.why)
        ));
    }
    out
}

/// The page of many experiments: `title`, the filter that chose them,
/// their rows (newest first) and whether more matched than are listed.
pub fn many_html(title: &str, filter: &str, rows: &[HistoryRow], more: bool) -> String {
    let mut body = format!("<h1>{}</h1>\n", escape(title));
    let count = |v: &str| {
        rows.iter()
            .filter(|r| r.outcome.map(|o| o.name()) == Some(v))
            .count()
    };
    body.push_str(&facts(&[
        ("Filter", format!("<code>{}</code>", escape(if filter.is_empty() { "(none)" } else { filter }))),
        (
            "Experiments",
            format!("{}{}", rows.len(), if more { " (the newest; more matched)" } else { "" }),
        ),
        (
            "Succeeded",
            rows.iter().filter(|r| r.state == "succeeded").count().to_string(),
        ),
        (
            "Outcomes",
            format!(
                "<span class=\"positive\">{} positive</span>, <span class=\"negative\">{} negative</span>, {} inconclusive",
                count("positive"),
                count("negative"),
                count("inconclusive")
            ),
        ),
        (
            "GPU-hours",
            format!("{:.2}", rows.iter().map(|r| r.gpu_hours).sum::<f64>()),
        ),
    ]));
    // The metrics most of them reported, each over the experiments.
    let mut names: Vec<(&String, usize)> = Vec::new();
    for r in rows {
        for name in r.metrics.keys() {
            match names.iter_mut().find(|(n, _)| *n == name) {
                Some((_, c)) => *c += 1,
                None => names.push((name, 1)),
            }
        }
    }
    names.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let shown: Vec<&String> = names.iter().take(4).map(|(n, _)| *n).collect();
    if !shown.is_empty() {
        body.push_str("<h2>Metrics across experiments</h2>\n<div class=\"charts\">\n");
        for name in &shown {
            let points: Vec<(f64, f64)> = rows
                .iter()
                .rev()
                .filter_map(|r| r.metrics.get(*name).map(|s| (r.id as f64, s.last)))
                .collect();
            let series = [Series {
                label: (*name).clone(),
                points,
            }];
            let title = format!("{name} (last value)");
            let chart = Chart {
                dots: true,
                ..Chart::lines(&title, "experiment", name)
            };
            if let Some(chart) = line_chart(&chart, &series) {
                body.push_str(&chart);
            }
        }
        body.push_str("</div>\n");
    }
    body.push_str("<h2>Experiments</h2>\n");
    let mut header = vec![
        "ID", "Name", "Owner", "Project", "State", "Outcome", "Ran", "Commit",
    ];
    header.extend(shown.iter().map(|n| n.as_str()));
    let table_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut cells = vec![
                r.id.to_string(),
                escape(r.name.as_deref().unwrap_or("-")),
                escape(&r.owner),
                escape(r.project.as_deref().unwrap_or("-")),
                escape(&r.state),
                r.outcome
                    .map_or("-".into(), |o| verdict_html(o.name(), None)),
                r.duration_secs.map_or("-".into(), human_duration),
                r.commit.as_deref().map_or("-".into(), |c| {
                    format!(
                        "<code>{}{}</code>",
                        escape(&c[..c.len().min(10)]),
                        if r.dirty { "+" } else { "" }
                    )
                }),
            ];
            for name in &shown {
                cells.push(r.metrics.get(*name).map_or("-".into(), |s| plain(s.last)));
            }
            cells
        })
        .collect();
    body.push_str(&table(&header, &table_rows));
    page(title, &body)
}

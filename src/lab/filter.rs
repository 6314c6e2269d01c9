//! The filter language of the experiment history: `history [FILTER]` on
//! the command line and the `/` filter bar of the TUI.
//!
//! # Writing a filter
//!
//! A filter is a list of terms separated by spaces. An experiment is shown
//! when **every** term holds; an empty filter shows every experiment.
//!
//! - `project:P`: its project is exactly `P`.
//! - `user:U`: its owner is exactly `U`.
//! - `state:S`: its state is `S`, one of `queued`, `starting`, `running`,
//!   `succeeded`, `failed`, `cancelled`, `timed_out`, `killed_by_limit`,
//!   `lost`; or `state:active` (queued, starting or running) or
//!   `state:finished` (any of the other six).
//! - `tag:T`: one of its tags is exactly `T`.
//! - `outcome:O`: the outcome recorded for it is `positive`, `negative` or
//!   `inconclusive`; `outcome:none` when none is recorded.
//! - `name:TEXT`: its name contains `TEXT`, ignoring case (an experiment
//!   without a name does not match).
//! - `metric:M>X`: the last value it reported for metric `M` is greater
//!   than the number `X`. The operators are `>`, `>=`, `<`, `<=`, `=` and
//!   `!=`, written with no spaces around them. An experiment that never
//!   reported `M` does not match, whatever the operator.
//! - `param:K<V`, `param:K=V`: its parameter `K` (the last value given
//!   for it) compared with `V`, with the same operators: as numbers when
//!   both are numbers (`param:lr=0.010` matches `lr=0.01`), else as text,
//!   exactly, where only `=` and `!=` apply (`param:optimizer=adam`;
//!   `param:optimizer>adam` is an error, and `param:lr<0.1` does not
//!   match `lr=auto`). An experiment without the parameter does not
//!   match, whatever the operator.
//! - `since:AGE` or `since:DATE`: submitted at or after that time;
//!   `until:AGE` or `until:DATE`: submitted before it. An age is counted
//!   back from now: `90s`, `30m`, `2h`, `7d`, `1h30m` (a bare number is
//!   seconds; at most `365d`). A date is `YYYY-MM-DD`, midnight UTC.
//! - `-TERM`: `TERM` does not hold (`-state:failed`, `-tag:wip`).
//! - Anything else is free text: it holds when the name, project, owner,
//!   command line or one of the tags contains it, ignoring case.
//!
//! Keys and the words of `state:` and `outcome:` may be written in any
//! case; other values are compared as written. A colon makes a term a
//! `key:value` term, so a mistyped key (`stat:running`) is an error rather
//! than text that matches nothing; put free text that holds a colon in
//! quotes.
//!
//! Double quotes hold spaces and other special characters in a value or
//! in free text: `name:"big run"`, `tag:"needs review"`,
//! `"lr: 0.1"`, `param:note="a b"`, `-"dry run"`. Inside quotes, `\"`
//! stands for a quote and `\\` for a backslash; every other character is
//! taken as it is. [`quote`] writes a value this way.
//!
//! A filter is at most [`MAX_INPUT_BYTES`] bytes and [`MAX_TERMS`] terms.
//! A mistake is reported with the column it is at ([`FilterError`]).
//!
//! # Grammar
//!
//! ```text
//! filter     = { space } [ term { space { space } term } ] { space }
//! term       = [ "-" ] ( keyed | text )
//! keyed      = key ":" value            (the first ':' before any '"')
//! key        = "project" | "user" | "state" | "tag" | "outcome" | "name"
//!            | "metric" | "param" | "since" | "until"   (any case)
//! value      = word                     (for most keys)
//!            | name op word             (metric: word is a number;
//!                                        param: a word that does not
//!                                        begin with an unquoted op char)
//! op         = ">=" | "<=" | "!=" | ">" | "<" | "="
//! name       = word without an unquoted op char
//! text, word = piece { piece }
//! piece      = any char but space and '"'
//!            | '"' { any char but '"' and '\' | '\"' | '\\' | '\' } '"'
//! ```
//!
//! Parsing is pure: ages are kept as ages and counted back from the `now`
//! given to [`Filter::matches`], so one parsed filter can be reused.

use std::borrow::Cow;

use unicode_width::UnicodeWidthChar;

/// Longest filter accepted, in bytes.
pub const MAX_INPUT_BYTES: usize = 4096;
/// Most terms in one filter.
pub const MAX_TERMS: usize = 64;

/// Every state word, the active ones first: `active` and `finished` are
/// the two halves of this list.
const STATES: [&str; 9] = [
    "queued",
    "starting",
    "running",
    "succeeded",
    "failed",
    "cancelled",
    "timed_out",
    "killed_by_limit",
    "lost",
];
/// How many of [`STATES`] are active.
const ACTIVE: usize = 3;
/// Outcome words (`none` is the absence of one).
const OUTCOMES: [&str; 3] = ["positive", "negative", "inconclusive"];
/// Known keys, for the unknown-key message.
const KEYS: [&str; 10] = [
    "project", "user", "state", "tag", "outcome", "name", "metric", "param", "since", "until",
];

/// What the filter sees of one experiment.
pub struct Row<'a> {
    /// Experiment id.
    pub id: u64,
    /// Its name, if it has one.
    pub name: Option<&'a str>,
    /// Who submitted it.
    pub owner: &'a str,
    /// Its project, if any.
    pub project: Option<&'a str>,
    /// Its state word (`queued`, `succeeded`, …).
    pub state: &'a str,
    /// `positive`, `negative` or `inconclusive`; `None` when none is set.
    pub outcome: Option<&'a str>,
    /// Its tags.
    pub tags: &'a [String],
    /// Its command line, as shown.
    pub command: &'a str,
    /// When it was submitted, seconds since the epoch.
    pub submitted_at: i64,
    /// Its parameters, in the order given.
    pub params: &'a [(String, String)],
    /// The last value it reported for a metric; called only for the
    /// metrics the filter names ([`Filter::metric_names`]).
    pub metric_last: &'a dyn Fn(&str) -> Option<f64>,
}

/// A parsed filter: terms that must all hold.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Filter {
    terms: Vec<Term>,
}

/// One term, maybe negated.
#[derive(Debug, Clone, PartialEq)]
struct Term {
    negated: bool,
    test: Test,
}

/// What one term tests, before negation.
#[derive(Debug, Clone, PartialEq)]
enum Test {
    Project(String),
    User(String),
    /// Any of these states (a slice of [`STATES`]).
    State(&'static [&'static str]),
    Tag(String),
    /// `None`: no outcome recorded.
    Outcome(Option<&'static str>),
    /// Lowercased, so matching lowercases only the name.
    Name(String),
    Metric {
        name: String,
        op: Op,
        value: f64,
    },
    Param {
        name: String,
        op: Op,
        value: String,
        /// `value` as a number, when it is one.
        number: Option<f64>,
    },
    Since(Time),
    Until(Time),
    /// Lowercased free text.
    Text(String),
}

/// A time as written: an age stays an age until matching, so that parsing
/// needs no clock.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Time {
    /// Seconds before now.
    Ago(i64),
    /// Seconds since the epoch.
    At(i64),
}

impl Time {
    fn resolve(self, now: i64) -> i64 {
        match self {
            Time::Ago(secs) => now.saturating_sub(secs),
            Time::At(at) => at,
        }
    }
}

/// A comparison operator of `metric:` and `param:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
    Ne,
}

impl Op {
    fn text(self) -> &'static str {
        match self {
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Eq => "=",
            Op::Ne => "!=",
        }
    }

    fn numbers(self, a: f64, b: f64) -> bool {
        match self {
            Op::Gt => a > b,
            Op::Ge => a >= b,
            Op::Lt => a < b,
            Op::Le => a <= b,
            Op::Eq => a == b,
            Op::Ne => a != b,
        }
    }
}

/// Why a filter could not be parsed, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at column {}: {}", .position + 1, .message)]
pub struct FilterError {
    /// Offset of the offending character, in characters from the start
    /// of the input (the input's length when the mistake is at its end).
    pub position: usize,
    /// What is wrong, for people.
    pub message: String,
}

impl FilterError {
    fn new(position: usize, message: impl Into<String>) -> FilterError {
        FilterError {
            position,
            message: message.into(),
        }
    }

    /// The input, a caret under the offending character and the message,
    /// on two lines (no trailing newline). Control characters show as `?`
    /// and wide characters count double, so the caret lines up.
    pub fn render(&self, input: &str) -> String {
        let mut line = String::with_capacity(input.len());
        let mut column = 0;
        for (i, c) in input.chars().enumerate() {
            let shown = match c {
                c if c.is_whitespace() => ' ',
                c if c.is_control() => '?',
                c => c,
            };
            if i < self.position {
                column += shown.width().unwrap_or(0);
            }
            line.push(shown);
        }
        format!("{line}\n{}^ {}", " ".repeat(column), self.message)
    }
}

/// `text` written so that a filter reads it back as one value or one free
/// text term: as it is when that is safe, else in double quotes.
pub fn quote(text: &str) -> Cow<'_, str> {
    let plain = !text.is_empty()
        && !text.starts_with('-')
        && !text
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '"' | '\\' | ':' | '<' | '>' | '=' | '!'));
    if plain {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    Cow::Owned(out)
}

/// An error at `position`.
fn fail<T>(position: usize, message: impl Into<String>) -> Result<T, FilterError> {
    Err(FilterError::new(position, message))
}

/// Parses a filter (see the module documentation for the language).
pub fn parse(input: &str) -> Result<Filter, FilterError> {
    if input.len() > MAX_INPUT_BYTES {
        let mut bytes = 0;
        let position = input
            .chars()
            .take_while(|c| {
                bytes += c.len_utf8();
                bytes <= MAX_INPUT_BYTES
            })
            .count();
        return fail(
            position,
            format!("the filter is too long: at most {MAX_INPUT_BYTES} bytes"),
        );
    }
    let chars: Vec<char> = input.chars().collect();
    let mut terms = Vec::new();
    for raw in lex(&chars)? {
        if terms.len() == MAX_TERMS {
            return fail(raw.start, format!("too many terms: at most {MAX_TERMS}"));
        }
        terms.push(term(&raw)?);
    }
    Ok(Filter { terms })
}

impl Filter {
    /// True when the filter has no terms (it matches everything).
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Whether `row` passes every term; ages count back from `now`
    /// (seconds since the epoch).
    pub fn matches(&self, row: &Row<'_>, now: i64) -> bool {
        self.terms
            .iter()
            .all(|t| t.test.holds(row, now) != t.negated)
    }

    /// The owner every match has, when a term requires one.
    pub fn required_owner(&self) -> Option<&str> {
        self.positive().find_map(|t| match t {
            Test::User(user) => Some(user.as_str()),
            _ => None,
        })
    }

    /// Whether every match has been given an outcome (a term requires
    /// positive, negative or inconclusive).
    pub fn requires_outcome(&self) -> bool {
        self.positive().any(|t| matches!(t, Test::Outcome(Some(_))))
    }

    /// The outcome every match was given, when a term requires one.
    pub fn required_outcome(&self) -> Option<&'static str> {
        self.positive().find_map(|t| match t {
            Test::Outcome(outcome) => *outcome,
            _ => None,
        })
    }

    /// The project every match has, when a term requires one.
    pub fn required_project(&self) -> Option<&str> {
        self.positive().find_map(|t| match t {
            Test::Project(project) => Some(project.as_str()),
            _ => None,
        })
    }

    /// The states a match may be in, when `state:` terms narrow them (the
    /// states every such term allows; empty when they conflict).
    pub fn required_states(&self) -> Option<Vec<&'static str>> {
        let mut sets = self.positive().filter_map(|t| match t {
            Test::State(set) => Some(*set),
            _ => None,
        });
        let mut states = sets.next()?.to_vec();
        for set in sets {
            states.retain(|s| set.contains(s));
        }
        Some(states)
    }

    /// The earliest submission time a match may have, when `since:` terms
    /// set one, with ages counted back from `now`.
    pub fn since_secs(&self, now: i64) -> Option<i64> {
        self.positive()
            .filter_map(|t| match t {
                Test::Since(time) => Some(time.resolve(now)),
                _ => None,
            })
            .max()
    }

    /// The time every match was submitted before, when `until:` terms set
    /// one, with ages counted back from `now`.
    pub fn until_secs(&self, now: i64) -> Option<i64> {
        self.positive()
            .filter_map(|t| match t {
                Test::Until(time) => Some(time.resolve(now)),
                _ => None,
            })
            .min()
    }

    /// The metrics the filter reads (negated terms too), each once, in
    /// the order written: a caller loads only these.
    pub fn metric_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for t in &self.terms {
            if let Test::Metric { name, .. } = &t.test
                && !names.contains(&name.as_str())
            {
                names.push(name);
            }
        }
        names
    }

    /// The tests of the terms that are not negated: only those narrow the
    /// rows a match can come from.
    fn positive(&self) -> impl Iterator<Item = &Test> {
        self.terms.iter().filter(|t| !t.negated).map(|t| &t.test)
    }
}

impl Test {
    fn holds(&self, row: &Row<'_>, now: i64) -> bool {
        match self {
            Test::Project(project) => row.project == Some(project.as_str()),
            Test::User(user) => row.owner == user,
            Test::State(states) => states.contains(&row.state),
            Test::Tag(tag) => row.tags.iter().any(|t| t == tag),
            Test::Outcome(outcome) => row.outcome == *outcome,
            Test::Name(text) => row.name.is_some_and(|name| contains(name, text)),
            Test::Metric { name, op, value } => {
                (row.metric_last)(name).is_some_and(|last| op.numbers(last, *value))
            }
            Test::Param {
                name,
                op,
                value,
                number,
            } => {
                // The last value given wins, as when a key is repeated.
                let Some((_, given)) = row.params.iter().rev().find(|(k, _)| k == name) else {
                    return false;
                };
                match (as_number(given), number) {
                    (Some(a), Some(b)) => op.numbers(a, *b),
                    _ => match op {
                        Op::Eq => given == value,
                        Op::Ne => given != value,
                        _ => false,
                    },
                }
            }
            Test::Since(time) => row.submitted_at >= time.resolve(now),
            Test::Until(time) => row.submitted_at < time.resolve(now),
            Test::Text(text) => {
                let fields = [row.name, row.project, Some(row.owner), Some(row.command)];
                fields.into_iter().flatten().any(|f| contains(f, text))
                    || row.tags.iter().any(|t| contains(t, text))
            }
        }
    }
}

/// Whether `haystack` contains `needle`, which is already lowercase,
/// ignoring case.
fn contains(haystack: &str, needle: &str) -> bool {
    if haystack.is_ascii() {
        // The common case, without allocating.
        let (h, n) = (haystack.as_bytes(), needle.as_bytes());
        return n.is_empty() || h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n));
    }
    haystack.to_lowercase().contains(needle)
}

/// `text` as a number, when it is a finite one (`nan` and `inf` stay
/// text, so that they compare as written).
fn as_number(text: &str) -> Option<f64> {
    text.parse::<f64>().ok().filter(|x| x.is_finite())
}

/// One character of a term, its quotes taken off.
#[derive(Debug, Clone, Copy)]
struct Ch {
    c: char,
    /// Its offset in the input, in characters.
    pos: usize,
    /// Whether it stood inside double quotes (never special then).
    quoted: bool,
}

/// One term as written.
struct RawTerm {
    /// Offset of its first character (the `-` of a negated term).
    start: usize,
    /// Offset just past its last character.
    end: usize,
    negated: bool,
    chars: Vec<Ch>,
    /// How many of `chars` come before its first quote (all of them when
    /// it has none): only a colon among those makes a key.
    before_quote: usize,
}

/// Splits the input into terms at unquoted whitespace.
fn lex(input: &[char]) -> Result<Vec<RawTerm>, FilterError> {
    let mut terms = Vec::new();
    let mut i = 0;
    loop {
        while input.get(i).is_some_and(|c| c.is_whitespace()) {
            i += 1;
        }
        if i == input.len() {
            return Ok(terms);
        }
        let start = i;
        let negated = input[i] == '-';
        if negated {
            i += 1;
        }
        let mut chars = Vec::new();
        let mut before_quote = None;
        while let Some(&c) = input.get(i).filter(|c| !c.is_whitespace()) {
            if c != '"' {
                chars.push(Ch {
                    c,
                    pos: i,
                    quoted: false,
                });
                i += 1;
                continue;
            }
            let open = i;
            before_quote.get_or_insert(chars.len());
            i += 1;
            loop {
                let Some(&c) = input.get(i) else {
                    return fail(
                        open,
                        "this quote is not closed: add a '\"' after the quoted text",
                    );
                };
                if c == '"' {
                    i += 1;
                    break;
                }
                let escaped = c == '\\' && matches!(input.get(i + 1), Some('"' | '\\'));
                if escaped {
                    i += 1;
                }
                chars.push(Ch {
                    c: input[i],
                    pos: i,
                    quoted: true,
                });
                i += 1;
            }
        }
        let before_quote = before_quote.unwrap_or(chars.len());
        terms.push(RawTerm {
            start,
            end: i,
            negated,
            chars,
            before_quote,
        });
    }
}

/// The characters as a string.
fn text(chars: &[Ch]) -> String {
    chars.iter().map(|ch| ch.c).collect()
}

/// Whether `ch` is an unquoted comparison character.
fn is_op(ch: &Ch) -> bool {
    !ch.quoted && matches!(ch.c, '<' | '>' | '=' | '!')
}

/// Parses one term.
fn term(raw: &RawTerm) -> Result<Term, FilterError> {
    if raw.chars.is_empty() {
        // Nothing left but the quotes were empty, or there was nothing.
        let message = if raw.end > raw.start + usize::from(raw.negated) {
            "empty quotes: put the text to look for between them"
        } else {
            "expected a term after '-'"
        };
        return fail(raw.start, message);
    }
    let colon = raw.chars[..raw.before_quote]
        .iter()
        .position(|ch| ch.c == ':');
    let test = match colon {
        None => Test::Text(text(&raw.chars).to_lowercase()),
        Some(k) => keyed(raw, k)?,
    };
    Ok(Term {
        negated: raw.negated,
        test,
    })
}

/// The error for a key that is not one.
fn unknown_key(at: usize, key: &str) -> FilterError {
    FilterError::new(
        at,
        format!(
            "unknown key '{key}': the keys are {}; put free text that holds a ':' in quotes",
            KEYS.join(", ")
        ),
    )
}

/// Parses a `key:value` term whose colon is `raw.chars[k]`.
fn keyed(raw: &RawTerm, k: usize) -> Result<Test, FilterError> {
    let key_at = raw.chars[0].pos;
    if k == 0 {
        return fail(
            key_at,
            "expected a key before ':'; put free text that holds a ':' in quotes",
        );
    }
    let key = text(&raw.chars[..k]).to_lowercase();
    if !KEYS.contains(&key.as_str()) {
        return Err(unknown_key(key_at, &key));
    }
    let value = &raw.chars[k + 1..];
    let Some(first) = value.first() else {
        return fail(
            raw.chars[k].pos + 1,
            format!("expected a value after '{key}:'"),
        );
    };
    let at = first.pos;
    let word = text(value);
    let time = |word: &str| time(word).map_err(|m| FilterError::new(at, m));
    Ok(match key.as_str() {
        "project" => Test::Project(word),
        "user" => Test::User(word),
        "tag" => Test::Tag(word),
        "name" => Test::Name(word.to_lowercase()),
        "since" => Test::Since(time(&word)?),
        "until" => Test::Until(time(&word)?),
        "state" => match word.to_lowercase().as_str() {
            "active" => Test::State(&STATES[..ACTIVE]),
            "finished" => Test::State(&STATES[ACTIVE..]),
            lower => match STATES.iter().position(|s| *s == lower) {
                Some(i) => Test::State(&STATES[i..=i]),
                None => {
                    let all = STATES.join(", ");
                    return fail(
                        at,
                        format!("unknown state '{word}': use one of {all}, active, finished"),
                    );
                }
            },
        },
        "outcome" => match word.to_lowercase().as_str() {
            "none" => Test::Outcome(None),
            lower => match OUTCOMES.iter().find(|o| **o == lower) {
                Some(o) => Test::Outcome(Some(o)),
                None => {
                    let all = "positive, negative, inconclusive or none";
                    return fail(at, format!("unknown outcome '{word}': use {all}"));
                }
            },
        },
        "metric" => {
            let (name, op, rest, after) = comparison(value, raw.end, "metric")?;
            let number = as_number(&text(rest)).ok_or_else(|| {
                FilterError::new(
                    rest.first().map_or(after, |ch| ch.pos),
                    format!("expected a number after '{}'", op.text()),
                )
            })?;
            Test::Metric {
                name,
                op,
                value: number,
            }
        }
        "param" => {
            let (name, op, rest, after) = comparison(value, raw.end, "param")?;
            let Some(first) = rest.first() else {
                return fail(after, format!("expected a value after '{}'", op.text()));
            };
            if is_op(first) {
                return fail(
                    first.pos,
                    format!(
                        "expected a value after '{}' (put a value that begins with '{}' in quotes)",
                        op.text(),
                        first.c
                    ),
                );
            }
            let value = text(rest);
            let number = as_number(&value);
            // An order between texts would never match: say so instead.
            if number.is_none() && !matches!(op, Op::Eq | Op::Ne) {
                return fail(
                    first.pos,
                    format!("'{}' compares numbers, and '{value}' is not one", op.text()),
                );
            }
            Test::Param {
                name,
                op,
                value,
                number,
            }
        }
        _ => return Err(unknown_key(key_at, &key)),
    })
}

/// Splits the value of a `metric:` or `param:` term into its name, its
/// operator, what follows the operator and the offset just past it.
/// `end` is the offset just past the term.
fn comparison<'c>(
    value: &'c [Ch],
    end: usize,
    what: &str,
) -> Result<(String, Op, &'c [Ch], usize), FilterError> {
    let Some(j) = value.iter().position(is_op) else {
        return fail(
            end,
            format!(
                "expected an operator (>, >=, <, <=, =, !=) after the {what} name, \
                 with no spaces around it: {what}:NAME>VALUE"
            ),
        );
    };
    let c = value[j].c;
    if j == 0 {
        return fail(value[j].pos, format!("expected a {what} name before '{c}'"));
    }
    let then_eq = value.get(j + 1).is_some_and(|ch| !ch.quoted && ch.c == '=');
    let (op, len) = match (c, then_eq) {
        ('>', true) => (Op::Ge, 2),
        ('>', false) => (Op::Gt, 1),
        ('<', true) => (Op::Le, 2),
        ('<', false) => (Op::Lt, 1),
        ('!', true) => (Op::Ne, 2),
        ('=', _) => (Op::Eq, 1),
        _ => {
            return fail(value[j].pos, "expected '!=' ('!' alone is not an operator)");
        }
    };
    let after = value[j + len - 1].pos + 1;
    Ok((text(&value[..j]), op, &value[j + len..], after))
}

/// Parses the value of `since:` or `until:`: an age or a `YYYY-MM-DD` date.
fn time(word: &str) -> Result<Time, String> {
    if word.contains('-') {
        // Exactly YYYY-MM-DD: chrono alone would take `2025-6-1` too.
        let shaped = word.len() == 10
            && word.bytes().enumerate().all(|(i, b)| match i {
                4 | 7 => b == b'-',
                _ => b.is_ascii_digit(),
            });
        if !shaped {
            return Err(format!("expected a date YYYY-MM-DD, not '{word}'"));
        }
        return chrono::NaiveDate::parse_from_str(word, "%Y-%m-%d")
            .ok()
            .and_then(|day| day.and_hms_opt(0, 0, 0))
            .map(|t| Time::At(t.and_utc().timestamp()))
            .ok_or_else(|| format!("there is no date '{word}'"));
    }
    match crate::model::parse_duration(word) {
        // At most 365 days, so it fits an i64.
        Ok(secs) => Ok(Time::Ago(i64::try_from(secs).unwrap_or(i64::MAX))),
        Err(_) => Err(format!(
            "expected an age like 90s, 30m, 2h, 7d or 1h30m (at most 365d), \
             or a date YYYY-MM-DD, not '{word}'"
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::cmp::Ordering;

    use super::*;
    use proptest::prelude::*;
    use proptest::sample::{select, subsequence};

    /// 2025-06-15T15:06:40Z.
    const NOW: i64 = 1_750_000_000;
    const DAY: i64 = 86_400;

    /// An experiment as the tests build it; lent to the filter as a [`Row`].
    #[derive(Debug, Clone)]
    struct Exp {
        name: Option<String>,
        owner: String,
        project: Option<String>,
        state: &'static str,
        outcome: Option<&'static str>,
        tags: Vec<String>,
        command: String,
        submitted_at: i64,
        params: Vec<(String, String)>,
        metrics: Vec<(String, f64)>,
    }

    impl Exp {
        fn check(&self, filter: &Filter, now: i64) -> bool {
            let metric = |name: &str| {
                self.metrics
                    .iter()
                    .rev()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| *v)
            };
            let row = Row {
                id: 1,
                name: self.name.as_deref(),
                owner: &self.owner,
                project: self.project.as_deref(),
                state: self.state,
                outcome: self.outcome,
                tags: &self.tags,
                command: &self.command,
                submitted_at: self.submitted_at,
                params: &self.params,
                metric_last: &metric,
            };
            filter.matches(&row, now)
        }

        fn sees(&self, input: &str) -> bool {
            self.check(&parse(input).expect(input), NOW)
        }
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn exp() -> Exp {
        Exp {
            name: Some("Big Run 3".into()),
            owner: "ana".into(),
            project: Some("churn".into()),
            state: "succeeded",
            outcome: Some("negative"),
            tags: strings(&["baseline", "needs review"]),
            command: "python train.py --lr 0.01".into(),
            submitted_at: NOW - 2 * DAY,
            params: pairs(&[("lr", "0.01"), ("optimizer", "adam"), ("note", "a b")]),
            metrics: vec![
                ("auc".into(), 0.7),
                ("loss".into(), 0.3),
                ("auc".into(), 0.85),
            ],
        }
    }

    /// A bare experiment: no name, project, tags, params or metrics.
    fn bare() -> Exp {
        Exp {
            name: None,
            owner: "bo".into(),
            project: None,
            state: "queued",
            outcome: None,
            tags: vec![],
            command: "make".into(),
            submitted_at: NOW,
            params: vec![],
            metrics: vec![],
        }
    }

    fn error(input: &str) -> FilterError {
        parse(input).expect_err(input)
    }

    #[test]
    fn an_empty_filter_matches_everything() {
        for input in ["", "   ", "\t \n"] {
            let f = parse(input).expect("empty");
            assert!(f.is_empty());
            assert!(exp().check(&f, NOW) && bare().check(&f, NOW));
        }
        assert!(!parse("tag:x").expect("tag").is_empty());
    }

    #[test]
    fn project_user_and_tag_match_exactly() {
        let e = exp();
        assert!(e.sees("project:churn") && !e.sees("project:chur") && !e.sees("project:Churn"));
        assert!(e.sees("user:ana") && !e.sees("user:an"));
        assert!(e.sees("tag:baseline") && !e.sees("tag:base"));
        assert!(e.sees(r#"tag:"needs review""#));
        assert!(!bare().sees("project:churn") && !bare().sees("tag:baseline"));
    }

    #[test]
    fn states_and_the_active_and_finished_groups() {
        for (i, state) in STATES.iter().enumerate() {
            let e = Exp { state, ..exp() };
            assert!(e.sees(&format!("state:{state}")));
            assert!(e.sees(&format!("State:{}", state.to_uppercase())));
            assert_eq!(e.sees("state:active"), i < 3, "{state}");
            assert_eq!(e.sees("state:finished"), i >= 3, "{state}");
            let other = STATES[(i + 1) % STATES.len()];
            assert!(!e.sees(&format!("state:{other}")));
        }
    }

    #[test]
    fn outcomes_and_none() {
        assert!(exp().sees("outcome:negative") && !exp().sees("outcome:positive"));
        assert!(exp().sees("outcome:NEGATIVE") && !exp().sees("outcome:none"));
        assert!(bare().sees("outcome:none") && !bare().sees("outcome:inconclusive"));
    }

    #[test]
    fn name_is_a_substring_ignoring_case() {
        let e = exp();
        assert!(e.sees("name:big") && e.sees("NAME:RUN") && e.sees(r#"name:"run 3""#));
        assert!(!e.sees("name:small") && !bare().sees("name:a"));
        let unicode = Exp {
            name: Some("Ärger Über".into()),
            ..exp()
        };
        assert!(unicode.sees("name:ärger") && unicode.sees("name:\"r üBER\""));
    }

    #[test]
    fn metrics_compare_the_last_value() {
        let e = exp();
        for yes in [
            "metric:auc>0.8",
            "metric:auc>=0.85",
            "metric:auc<=0.85",
            "metric:auc=0.85",
            "metric:auc!=0.7",
            "metric:auc<1e3",
            "metric:loss<0.5",
            "metric:auc>-1",
        ] {
            assert!(e.sees(yes), "{yes}");
        }
        for no in [
            "metric:auc<0.8",
            "metric:auc!=0.85",
            "metric:auc>0.85",
            "metric:auc=0.7",
        ] {
            assert!(!e.sees(no), "{no}");
        }
        // A metric never reported matches no comparison, and its negation
        // every time.
        assert!(!e.sees("metric:acc!=1") && !e.sees("metric:acc<1"));
        assert!(e.sees("-metric:acc>0"));
    }

    #[test]
    fn params_compare_as_numbers_when_both_are_numbers_else_as_text() {
        let e = exp();
        for yes in [
            "param:lr<0.1",
            "param:lr=0.010",
            "param:lr=1e-2",
            "param:lr>=0.01",
            "param:optimizer=adam",
            "param:optimizer!=sgd",
            r#"param:note="a b""#,
        ] {
            assert!(e.sees(yes), "{yes}");
        }
        for no in [
            "param:lr!=0.01",
            "param:lr>0.01",
            "param:optimizer=Adam",
            "param:optimizer<5",
            "param:seed=1",
            "param:seed!=1",
        ] {
            assert!(!e.sees(no), "{no}");
        }
        // The last value given for a param is its value.
        let twice = Exp {
            params: pairs(&[("lr", "0.1"), ("lr", "0.5")]),
            ..exp()
        };
        assert!(twice.sees("param:lr=0.5") && !twice.sees("param:lr=0.1"));
    }

    #[test]
    fn since_and_until_take_ages_and_dates() {
        // Submitted 2025-06-13T15:06:40Z, two days before NOW.
        let e = exp();
        assert!(e.sees("since:3d") && e.sees("since:2d") && !e.sees("since:1d"));
        assert!(e.sees("since:49h") && !e.sees("since:47h30m") && e.sees("since:172800"));
        assert!(e.sees("until:1d") && !e.sees("until:2d") && !e.sees("until:3d"));
        assert!(e.sees("since:2025-06-13") && !e.sees("since:2025-06-14"));
        assert!(e.sees("until:2025-06-14") && !e.sees("until:2025-06-13"));
        assert!(e.sees("since:2025-06-01 until:2025-07-01"));
        // Ages count back from the `now` given when matching.
        let f = parse("since:1d").expect("since");
        assert!(!e.check(&f, NOW) && e.check(&f, NOW - DAY - 60));
    }

    #[test]
    fn a_minus_negates_a_term() {
        let e = exp();
        assert!(e.sees("-state:failed") && !e.sees("-state:succeeded"));
        assert!(e.sees("-tag:wip") && !e.sees("-tag:baseline"));
        assert!(e.sees("-\"dry run\"") && !e.sees("-TRAIN"));
        assert!(e.sees("-outcome:none") && bare().sees("-name:x"));
    }

    #[test]
    fn free_text_searches_name_project_owner_command_and_tags() {
        let e = exp();
        for yes in [
            "big",
            "CHURN",
            "ana",
            "train.py",
            "review",
            "\"run 3\"",
            "\"--lr 0.01\"",
        ] {
            assert!(e.sees(yes), "{yes}");
        }
        assert!(!e.sees("absent") && !e.sees("\"big  run\""));
        // A colon in quoted free text is text; a backslash is literal
        // unless it escapes a quote or a backslash.
        let odd = Exp {
            name: Some(r#"stage:2 "x" a\b"#.into()),
            ..bare()
        };
        assert!(odd.sees(r#""stage:2""#) && odd.sees(r#""\"x\"""#));
        assert!(odd.sees(r#""a\b""#) && odd.sees(r#""a\\b""#) && odd.sees(r"a\b"));
    }

    #[test]
    fn every_term_must_hold_and_keys_ignore_case() {
        let e = exp();
        assert!(e.sees("project:churn user:ana state:finished tag:baseline metric:auc>0.8"));
        assert!(!e.sees("project:churn user:bo"));
        assert!(e.sees("PROJECT:churn User:ana sTaTe:succeeded METRIC:auc>0"));
    }

    #[test]
    fn errors_point_at_the_mistake() {
        let cases: &[(&str, usize, &str)] = &[
            ("metric:auc>>1", 11, "expected a number after '>'"),
            ("metric:auc", 10, "expected an operator"),
            ("metric:auc >0.8", 10, "no spaces"),
            ("metric:>1", 7, "expected a metric name before '>'"),
            ("metric:auc>=", 12, "expected a number after '>='"),
            ("metric:auc>high", 11, "expected a number after '>'"),
            ("metric:auc!1", 10, "expected '!='"),
            ("state:finishd", 6, "unknown state 'finishd'"),
            ("since:7x", 6, "expected an age like"),
            ("since:400d", 6, "at most 365d"),
            ("since:2025-02-30", 6, "there is no date"),
            ("until:2025-2-3", 6, "expected a date YYYY-MM-DD"),
            ("bogus:1", 0, "unknown key 'bogus'"),
            ("user:ana  Stat:running", 10, "unknown key 'stat'"),
            ("ünï bogus:1", 4, "unknown key 'bogus'"),
            ("name:\"big run", 5, "not closed"),
            ("project:", 8, "expected a value after 'project:'"),
            ("project:\"\"", 8, "expected a value after 'project:'"),
            ("tag:ok -", 7, "expected a term after '-'"),
            ("\"\"", 0, "empty quotes"),
            (":x", 0, "expected a key before ':'"),
            ("outcome:great", 8, "unknown outcome 'great'"),
            ("param:opt>adam", 10, "'>' compares numbers"),
            ("param:x==1", 8, "expected a value after '='"),
            ("param:x<", 8, "expected a value after '<'"),
            ("param:=1", 6, "expected a param name before '='"),
        ];
        for (input, position, message) in cases {
            let e = error(input);
            assert_eq!(e.position, *position, "{input}: {e}");
            assert!(e.message.contains(message), "{input}: {e}");
        }
    }

    #[test]
    fn render_puts_a_caret_under_the_mistake() {
        let e = error("metric:auc>>1");
        assert_eq!(
            e.render("metric:auc>>1"),
            "metric:auc>>1\n           ^ expected a number after '>'"
        );
        assert_eq!(e.to_string(), "at column 12: expected a number after '>'");
        // Wide characters take two columns; tabs show as spaces.
        let input = "名前\tbogus:1";
        let shown = error(input).render(input);
        assert!(
            shown.starts_with("名前 bogus:1\n     ^ unknown key"),
            "{shown}"
        );
        // A mistake at the end points just past the input.
        assert!(
            error("project:")
                .render("project:")
                .starts_with("project:\n        ^ ")
        );
    }

    #[test]
    fn long_inputs_and_many_terms_are_refused() {
        assert!(parse(&"a".repeat(MAX_INPUT_BYTES)).is_ok());
        let e = error(&"a".repeat(MAX_INPUT_BYTES + 1));
        assert_eq!(e.position, MAX_INPUT_BYTES);
        // Counted in bytes, reported in characters.
        let e = error(&"é".repeat(MAX_INPUT_BYTES / 2 + 1));
        assert_eq!(e.position, MAX_INPUT_BYTES / 2);
        assert!(parse(&"a ".repeat(MAX_TERMS)).is_ok());
        let e = error(&"a ".repeat(MAX_TERMS + 1));
        assert_eq!(e.position, 2 * MAX_TERMS);
        assert!(e.message.contains("too many terms"));
    }

    #[test]
    fn narrowing_hints_come_from_terms_that_are_not_negated() {
        let f = parse(
            "user:ana project:churn state:finished -state:failed state:succeeded \
             since:7d since:2025-06-14 until:1d metric:auc>0.8 -metric:loss<1 metric:auc<1",
        )
        .expect("parse");
        assert_eq!(f.required_owner(), Some("ana"));
        assert_eq!(f.required_project(), Some("churn"));
        assert_eq!(f.required_states(), Some(vec!["succeeded"]));
        assert_eq!(f.since_secs(NOW), Some(1_749_859_200));
        assert_eq!(f.until_secs(NOW), Some(NOW - DAY));
        assert_eq!(f.metric_names(), vec!["auc", "loss"]);
        assert!(!f.requires_outcome());
        assert!(parse("outcome:negative").expect("parse").requires_outcome());
        assert_eq!(
            parse("outcome:negative").expect("parse").required_outcome(),
            Some("negative")
        );
        assert!(
            !parse("-outcome:negative")
                .expect("parse")
                .requires_outcome()
        );
        assert!(!parse("outcome:none").expect("parse").requires_outcome());

        let f = parse("-user:ana -project:churn -state:failed -since:1d name:x").expect("parse");
        assert_eq!(f.required_owner(), None);
        assert_eq!(f.required_project(), None);
        assert_eq!(f.required_states(), None);
        assert_eq!(f.since_secs(NOW), None);
        assert!(f.metric_names().is_empty());
        assert_eq!(
            parse("state:active").expect("parse").required_states(),
            Some(vec!["queued", "starting", "running"])
        );

        // Conflicting states leave none, and nothing matches.
        let f = parse("state:queued state:failed").expect("parse");
        assert_eq!(f.required_states(), Some(vec![]));
        for state in STATES {
            assert!(!Exp { state, ..exp() }.check(&f, NOW));
        }
    }

    #[test]
    fn quote_leaves_plain_words_alone() {
        assert!(matches!(quote("churn"), Cow::Borrowed("churn")));
        assert_eq!(quote("big run"), "\"big run\"");
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(quote("-x"), "\"-x\"");
        assert_eq!(quote("a:b"), "\"a:b\"");
        assert_eq!(quote("a>b"), "\"a>b\"");
        assert_eq!(quote(""), "\"\"");
    }

    /// A term as the property tests generate it.
    #[derive(Debug, Clone)]
    enum G {
        Project(String),
        User(String),
        State(&'static str),
        Tag(String),
        Outcome(&'static str),
        Name(String),
        Metric(&'static str, &'static str, f64),
        Param(&'static str, &'static str, String),
        Since(String, When),
        Until(String, When),
        Text(String),
    }

    /// A generated time: seconds ago, or a day number since the epoch.
    #[derive(Debug, Clone, Copy)]
    enum When {
        Ago(i64),
        Day(i64),
    }

    /// A generated term and how to write it.
    #[derive(Debug, Clone)]
    struct GTerm {
        negated: bool,
        upper_key: bool,
        always_quote: bool,
        g: G,
    }

    const OPS: [&str; 6] = [">", ">=", "<", "<=", "=", "!="];

    fn word() -> impl Strategy<Value = String> {
        prop_oneof![
            select(vec![
                "churn",
                "ana",
                "bo",
                "big run",
                "baseline",
                "a b",
                "base\"line",
                "train",
                "Run",
                "-x",
                "a:b",
                "0.01",
                "adam",
                "ü",
            ])
            .prop_map(String::from),
            "[a-zA-Z0-9 :\"\\\\<>=!.ü-]{1,6}",
        ]
    }

    fn number() -> impl Strategy<Value = f64> {
        prop_oneof![Just(0.5), Just(0.8), Just(0.85), Just(-0.0), -2.0f64..2.0]
    }

    fn when() -> impl Strategy<Value = (String, When)> {
        prop_oneof![
            (1i64..=365).prop_map(|d| (format!("{d}d"), When::Ago(d * DAY))),
            (1i64..=100_000).prop_map(|s| (format!("{s}s"), When::Ago(s))),
            (1i64..=600).prop_map(|m| (format!("{m}m"), When::Ago(m * 60))),
            (1i64..=48, 1i64..60)
                .prop_map(|(h, m)| (format!("{h}h{m}m"), When::Ago(h * 3600 + m * 60))),
            (19_800i64..20_300).prop_map(|day| {
                let at = chrono::DateTime::from_timestamp(day * DAY, 0).expect("day");
                (at.format("%Y-%m-%d").to_string(), When::Day(day))
            }),
        ]
    }

    fn g() -> impl Strategy<Value = G> {
        let numeric = prop_oneof![
            select(vec!["0.01", "1e-3", "0.010", "10", "-1", "0.5"]).prop_map(String::from),
            (-100.0f64..100.0).prop_map(|x| x.to_string()),
        ];
        let param_test = prop_oneof![
            (select(OPS.to_vec()), numeric),
            (select(vec!["=", "!="]), word()),
        ];
        let mut states = STATES.to_vec();
        states.extend(["active", "finished"]);
        prop_oneof![
            word().prop_map(G::Project),
            select(vec!["ana", "bo", "Ana", "a b"]).prop_map(|u| G::User(u.into())),
            select(states).prop_map(G::State),
            word().prop_map(G::Tag),
            select(vec!["positive", "negative", "inconclusive", "none"]).prop_map(G::Outcome),
            word().prop_map(G::Name),
            (
                select(vec!["auc", "loss", "acc"]),
                select(OPS.to_vec()),
                number()
            )
                .prop_map(|(n, o, v)| G::Metric(n, o, v)),
            (select(vec!["lr", "opt", "seed"]), param_test)
                .prop_map(|(n, (o, v))| G::Param(n, o, v)),
            when().prop_map(|(t, w)| G::Since(t, w)),
            when().prop_map(|(t, w)| G::Until(t, w)),
            word().prop_map(G::Text),
        ]
    }

    fn gterm() -> impl Strategy<Value = GTerm> {
        (any::<bool>(), any::<bool>(), any::<bool>(), g()).prop_map(
            |(negated, upper_key, always_quote, g)| GTerm {
                negated,
                upper_key,
                always_quote,
                g,
            },
        )
    }

    /// Writes `s` as one value, in quotes when it needs them (or always).
    fn q(s: &str, always: bool) -> String {
        let special = |c: char| c.is_whitespace() || "\"\\:<>=!".contains(c);
        if !always && !s.is_empty() && !s.starts_with('-') && !s.contains(special) {
            return s.to_string();
        }
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    }

    fn render(t: &GTerm) -> String {
        let key = |k: &str| {
            if t.upper_key {
                k.to_uppercase()
            } else {
                k.to_string()
            }
        };
        let a = t.always_quote;
        let body = match &t.g {
            G::Project(s) => format!("{}:{}", key("project"), q(s, a)),
            G::User(s) => format!("{}:{}", key("user"), q(s, a)),
            G::State(s) => format!("{}:{}", key("state"), q(s, a)),
            G::Tag(s) => format!("{}:{}", key("tag"), q(s, a)),
            G::Outcome(s) => format!("{}:{}", key("outcome"), q(s, a)),
            G::Name(s) => format!("{}:{}", key("name"), q(s, a)),
            G::Metric(n, op, v) => format!("{}:{}{op}{v}", key("metric"), q(n, a)),
            G::Param(n, op, v) => format!("{}:{n}{op}{}", key("param"), q(v, a)),
            G::Since(s, _) => format!("{}:{s}", key("since")),
            G::Until(s, _) => format!("{}:{s}", key("until")),
            G::Text(s) => q(s, a),
        };
        if t.negated { format!("-{body}") } else { body }
    }

    fn order(op: &str, ord: Option<Ordering>) -> bool {
        match op {
            ">" => ord == Some(Ordering::Greater),
            ">=" => matches!(ord, Some(Ordering::Greater | Ordering::Equal)),
            "<" => ord == Some(Ordering::Less),
            "<=" => matches!(ord, Some(Ordering::Less | Ordering::Equal)),
            "=" => ord == Some(Ordering::Equal),
            _ => ord != Some(Ordering::Equal),
        }
    }

    /// What the language says `g` means for `e`, written apart from the
    /// parser's own evaluation.
    fn reference(g: &G, e: &Exp, now: i64) -> bool {
        let has = |hay: &str, needle: &str| hay.to_lowercase().contains(&needle.to_lowercase());
        let num = |s: &str| s.parse::<f64>().ok().filter(|x| x.is_finite());
        let at = |w: When| match w {
            When::Ago(secs) => now - secs,
            When::Day(day) => day * DAY,
        };
        match g {
            G::Project(p) => e.project.as_ref() == Some(p),
            G::User(u) => &e.owner == u,
            G::State("active") => ["queued", "starting", "running"].contains(&e.state),
            G::State("finished") => !["queued", "starting", "running"].contains(&e.state),
            G::State(s) => e.state == *s,
            G::Tag(t) => e.tags.contains(t),
            G::Outcome(o) => e.outcome.unwrap_or("none") == *o,
            G::Name(n) => e.name.as_deref().is_some_and(|name| has(name, n)),
            G::Metric(n, op, v) => e
                .metrics
                .iter()
                .rev()
                .find(|(m, _)| m == n)
                .is_some_and(|(_, x)| order(op, x.partial_cmp(v))),
            G::Param(n, op, v) => match e.params.iter().rev().find(|(k, _)| k == n) {
                None => false,
                Some((_, x)) => match (num(x), num(v)) {
                    (Some(a), Some(b)) => order(op, a.partial_cmp(&b)),
                    _ => (*op == "=" && x == v) || (*op == "!=" && x != v),
                },
            },
            G::Since(_, w) => e.submitted_at >= at(*w),
            G::Until(_, w) => e.submitted_at < at(*w),
            G::Text(t) => [
                e.name.as_deref(),
                e.project.as_deref(),
                Some(&e.owner),
                Some(&e.command),
            ]
            .into_iter()
            .flatten()
            .chain(e.tags.iter().map(String::as_str))
            .any(|field| has(field, t)),
        }
    }

    fn exps() -> impl Strategy<Value = Vec<Exp>> {
        let one = (
            prop::option::of(select(vec![
                "Big Run",
                "small",
                "churn-2",
                "a:b",
                "base\"line x",
            ])),
            select(vec!["ana", "bo", "Ana"]),
            prop::option::of(select(vec!["churn", "big run", "a b"])),
            select(STATES.to_vec()),
            prop::option::of(select(OUTCOMES.to_vec())),
            subsequence(
                vec!["baseline", "wip", "a b", "base\"line", "-x", "ü"],
                0..=6,
            ),
            select(vec!["python train.py --lr 0.01", "make all", "run"]),
            (NOW - 400 * DAY)..(NOW + 1000),
            prop::collection::vec(
                (
                    select(vec!["lr", "opt", "seed"]),
                    select(vec![
                        "0.01", "1e-3", "0.010", "10", "-1", "adam", "sgd", "a b", "0.5",
                    ]),
                ),
                0..4,
            ),
            prop::collection::vec((select(vec!["auc", "loss", "acc"]), number()), 0..4),
        )
            .prop_map(
                |(
                    name,
                    owner,
                    project,
                    state,
                    outcome,
                    tags,
                    command,
                    submitted_at,
                    params,
                    metrics,
                )| {
                    Exp {
                        name: name.map(String::from),
                        owner: owner.into(),
                        project: project.map(String::from),
                        state,
                        outcome,
                        tags: strings(&tags),
                        command: command.into(),
                        submitted_at,
                        params: params
                            .iter()
                            .map(|(k, v)| (k.to_string(), v.to_string()))
                            .collect(),
                        metrics: metrics.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
                    }
                },
            );
        prop::collection::vec(one, 1..6)
    }

    /// Pieces of filters, right and wrong, for the no-panic property.
    fn scraps() -> impl Strategy<Value = String> {
        prop::collection::vec(
            select(vec![
                "metric:",
                "param:",
                "state:",
                "since:",
                "until:",
                "tag:",
                "name:",
                "bogus:",
                ":",
                "-",
                "\"",
                "\\",
                " ",
                "auc",
                "lr",
                ">",
                ">=",
                "=",
                "!",
                "!=",
                "<",
                "1",
                "0.5",
                "7d",
                "1h30m",
                "2025-01-01",
                "finished",
                "ü",
                "名",
                "\t",
                "\u{0}",
            ]),
            0..24,
        )
        .prop_map(|parts| parts.concat())
    }

    proptest! {
        #[test]
        fn parse_never_panics_and_errors_point_inside_the_input(
            input in prop_oneof![any::<String>(), scraps(), "[a-z:\"\\\\ <>=!.0-9-]{0,40}"],
        ) {
            match parse(&input) {
                Ok(filter) => {
                    // Matching what parsed must not panic either.
                    let _ = exp().check(&filter, NOW);
                    let _ = bare().check(&filter, i64::MIN);
                    let _ = filter.since_secs(i64::MIN);
                }
                Err(e) => {
                    prop_assert!(e.position <= input.chars().count(), "{e:?}");
                    prop_assert!(e.render(&input).contains(&e.message));
                }
            }
        }

        #[test]
        fn generated_filters_parse_and_match_like_the_reference(
            terms in prop::collection::vec(gterm(), 0..6),
            exps in exps(),
            now in (NOW - 1000)..(NOW + 1000),
        ) {
            let input = terms.iter().map(render).collect::<Vec<_>>().join(" ");
            let filter = parse(&input).map_err(|e| TestCaseError::fail(e.render(&input)))?;
            prop_assert_eq!(filter.is_empty(), terms.is_empty());
            for e in &exps {
                let want = terms.iter().all(|t| reference(&t.g, e, now) != t.negated);
                prop_assert_eq!(e.check(&filter, now), want, "{} on {:?}", input, e);
            }
            // Each term alone too: a wrong term is not hidden by another
            // that fails anyway.
            for t in &terms {
                let one = render(t);
                let filter = parse(&one).map_err(|e| TestCaseError::fail(e.render(&one)))?;
                for e in &exps {
                    let want = reference(&t.g, e, now) != t.negated;
                    prop_assert_eq!(e.check(&filter, now), want, "{} on {:?}", one, e);
                }
            }
        }

        #[test]
        fn a_negated_term_matches_exactly_when_the_term_does_not(
            term in gterm(),
            exps in exps(),
        ) {
            let plain = render(&GTerm { negated: false, ..term });
            let yes = parse(&plain).map_err(|e| TestCaseError::fail(e.render(&plain)))?;
            let no = parse(&format!("-{plain}")).map_err(|e| TestCaseError::fail(e.render(&plain)))?;
            for e in &exps {
                prop_assert_ne!(e.check(&yes, NOW), e.check(&no, NOW), "{} on {:?}", plain, e);
            }
        }

        #[test]
        fn quoted_values_read_back_as_written(
            value in prop_oneof![any::<String>(), "[a b\"\\\\:<=-]{1,12}", "\\PC{1,20}"],
        ) {
            prop_assume!(!value.is_empty() && value.len() < 1000);
            let quoted = quote(&value);
            let tag = parse(&format!("tag:{quoted}")).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(
                tag,
                Filter { terms: vec![Term { negated: false, test: Test::Tag(value.clone()) }] }
            );
            let text = parse(&quoted).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(
                text,
                Filter { terms: vec![Term { negated: false, test: Test::Text(value.to_lowercase()) }] }
            );
            let e = Exp {
                name: Some(value.clone()),
                project: Some(value.clone()),
                tags: vec![value.clone()],
                ..bare()
            };
            let all = format!("name:{quoted} project:{quoted} tag:{quoted} {quoted}");
            let longer = format!("tag:{}", quote(&format!("{value} x")));
            let negated = format!("-{quoted}");
            prop_assert!(e.sees(&all));
            prop_assert!(!e.sees(&longer));
            prop_assert!(!e.sees(&negated));
        }
    }
}

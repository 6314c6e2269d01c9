//! What people say of an experiment: comments, and the outcome its owner
//! or an admin gives its result.

use serde::{Deserialize, Serialize};

/// Longest comment or outcome note, in bytes.
pub const MAX_COMMENT_BYTES: usize = 16 * 1024;

/// A comment on an experiment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Comment {
    /// Its id (unique across experiments).
    pub id: u64,
    /// The experiment it is on.
    pub experiment: u64,
    /// Lab user who wrote it.
    pub author: String,
    /// When that user's account was made: a later account of the same
    /// name is someone else.
    #[serde(default)]
    pub author_since: i64,
    /// What they wrote.
    pub text: String,
    /// When (seconds since the epoch).
    pub at: i64,
    /// When it was last edited, if it was.
    pub edited_at: Option<i64>,
}

/// What a result means to the people who ran it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// It showed what was hoped for.
    Positive,
    /// It showed it does not hold: recorded as carefully as a positive one.
    Negative,
    /// It did not tell.
    Inconclusive,
}

impl Verdict {
    /// Its name: `positive`, `negative`, `inconclusive`.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Positive => "positive",
            Verdict::Negative => "negative",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

/// The outcome people give an experiment's result (`outcome ID positive`),
/// apart from how its run ended ([`super::Outcome`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conclusion {
    /// The verdict.
    pub verdict: Verdict,
    /// Why, in a few words.
    pub note: Option<String>,
    /// Lab user who gave it.
    pub by: String,
    /// When (seconds since the epoch).
    pub at: i64,
}

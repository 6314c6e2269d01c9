//! Dependency transparency: which experiments used a package (at which
//! versions) or read a data source, and which packages nobody used lately
//! (`deps`). Answers from the captured provenance of the experiments whose
//! output the caller may read.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::experiments::owns_or_admin;
use super::{Lab, LabError, LabResult, Principal};
use crate::model::{Package, normalize_package_name};

/// A question to `deps`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DepsQuery {
    /// Only this package (`pandas`, `pandas<2`, `r:dplyr>=1.1`).
    pub package: Option<PackageQuery>,
    /// Only experiments naming a source containing this text.
    pub source: Option<String>,
    /// Only this project's experiments.
    pub project: Option<String>,
    /// Packages not used by any experiment submitted since this time.
    pub unused_since: Option<i64>,
}

/// Parses the Dependencies view's query: words `package:NAME[OP VERSION]`,
/// `source:TEXT`, `project:NAME` and `unused:AGE` (an empty text asks for
/// every package). `now`: seconds since the epoch, for `unused:`.
pub fn parse_deps_query(text: &str, now: i64) -> Result<DepsQuery, String> {
    let mut q = DepsQuery::default();
    for word in text.split_whitespace() {
        let (key, value) = word
            .split_once(':')
            .filter(|(_, v)| !v.is_empty())
            .ok_or_else(|| {
                format!("{word:?}: expected package:, source:, project: or unused: with a value")
            })?;
        match key {
            "package" => q.package = Some(PackageQuery::parse(value)?),
            "source" => q.source = Some(value.to_string()),
            "project" => q.project = Some(value.to_string()),
            "unused" => {
                let age = crate::model::parse_duration(value)?;
                q.unused_since = Some(now - age as i64);
            }
            _ => {
                return Err(format!(
                    "{key:?}: not a key; use package:, source:, project: or unused:"
                ));
            }
        }
    }
    if q.package.is_some() && q.unused_since.is_some() {
        return Err("unused: lists packages: give it without package:".into());
    }
    Ok(q)
}

/// A package and, optionally, a version comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct PackageQuery {
    /// Its ecosystem, when given (`python:pandas`).
    pub ecosystem: Option<String>,
    /// Its name (normalised).
    pub name: String,
    /// A comparison its exact version must meet.
    pub version: Option<(Ordering, bool, String)>,
}

impl PackageQuery {
    /// Parses `[ECOSYSTEM:]NAME[OP VERSION]` with OP one of `<`, `<=`, `>`,
    /// `>=`, `==`, `!=`.
    pub fn parse(text: &str) -> Result<PackageQuery, String> {
        let text = text.trim();
        let (ecosystem, rest) = match text.split_once(':') {
            Some((eco, rest)) => (Some(eco.to_lowercase()), rest),
            None => (None, text),
        };
        let at = rest.find(['<', '>', '=', '!']).unwrap_or(rest.len());
        let (name, op) = rest.split_at(at);
        if name.trim().is_empty() {
            return Err(format!("{text:?}: expected a package name, like pandas<2"));
        }
        let version = if op.is_empty() {
            None
        } else {
            let (want, equal, version) = if let Some(v) = op.strip_prefix("<=") {
                (Ordering::Less, true, v)
            } else if let Some(v) = op.strip_prefix(">=") {
                (Ordering::Greater, true, v)
            } else if let Some(v) = op.strip_prefix("==") {
                (Ordering::Equal, true, v)
            } else if let Some(v) = op.strip_prefix("!=") {
                (Ordering::Equal, false, v)
            } else if let Some(v) = op.strip_prefix('<') {
                (Ordering::Less, false, v)
            } else if let Some(v) = op.strip_prefix('>') {
                (Ordering::Greater, false, v)
            } else if let Some(v) = op.strip_prefix('=') {
                (Ordering::Equal, true, v)
            } else {
                return Err(format!(
                    "{text:?}: expected <, <=, >, >=, == or != before the version"
                ));
            };
            if !version
                .trim()
                .starts_with(|c: char| c.is_ascii_alphanumeric())
            {
                return Err(format!("{text:?}: expected a version after the comparison"));
            }
            Some((want, equal, version.trim().to_string()))
        };
        Ok(PackageQuery {
            ecosystem,
            name: normalize_package_name(name),
            version,
        })
    }

    /// Whether `p` is this package at a version that meets the comparison.
    pub fn matches(&self, p: &Package) -> bool {
        if self.ecosystem.as_deref().is_some_and(|e| e != p.ecosystem) {
            return false;
        }
        if normalize_package_name(&p.name) != self.name {
            return false;
        }
        let Some((want, equal, version)) = &self.version else {
            return true;
        };
        let Some(have) = &p.version else {
            return false;
        };
        let order = compare_versions(have, version);
        match (want, equal) {
            (Ordering::Equal, true) => order == Ordering::Equal,
            (Ordering::Equal, false) => order != Ordering::Equal,
            (want, true) => order == *want || order == Ordering::Equal,
            (want, false) => order == *want,
        }
    }
}

/// Compares versions as PEP 440 orders the common forms (and other
/// ecosystems' versions well enough): the release numbers part by part
/// (`1.10` > `1.9`, a missing part is 0), then a pre-release before its
/// release (`2.0.0rc1` < `2`: dev < a < b < rc), a post-release after it;
/// a local part (`+cu121`) is ignored.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let (ra, sa) = split_version(a);
    let (rb, sb) = split_version(b);
    for i in 0..ra.len().max(rb.len()) {
        let order = ra.get(i).unwrap_or(&0).cmp(rb.get(i).unwrap_or(&0));
        if order != Ordering::Equal {
            return order;
        }
    }
    sa.cmp(&sb)
}

/// The release numbers of `version`, and where its suffix puts it among
/// versions of the same release: a rank (dev 0, a 10, b 20, rc 25, the
/// release 30, post 40), its number, and the suffix itself.
fn split_version(version: &str) -> (Vec<u64>, (u8, u64, String)) {
    let version = version.trim().trim_start_matches(['v', 'V']);
    let version = version.split('+').next().unwrap_or(version);
    let mut release = Vec::new();
    let mut rest = version;
    loop {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            break;
        }
        release.push(rest[..digits].parse().unwrap_or(u64::MAX));
        rest = &rest[digits..];
        match rest.strip_prefix('.') {
            Some(more) if more.starts_with(|c: char| c.is_ascii_digit()) => rest = more,
            _ => break,
        }
    }
    let suffix = rest
        .trim_start_matches(['.', '-', '_'])
        .to_ascii_lowercase();
    let letters: String = suffix
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect();
    let number: u64 = suffix[letters.len()..]
        .trim_start_matches(['.', '-', '_'])
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or(0);
    let rank = match letters.as_str() {
        "dev" => 0,
        "a" | "alpha" => 10,
        "b" | "beta" => 20,
        "rc" | "c" | "pre" | "preview" => 25,
        "post" | "r" | "rev" => 40,
        // The release itself, or a suffix PEP 440 does not know.
        _ => 30,
    };
    (release, (rank, number, suffix))
}

/// An experiment that used a package or read a source.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DepsUse {
    /// The experiment.
    pub id: u64,
    /// Its project.
    pub project: Option<String>,
    /// Its owner.
    pub owner: String,
    /// When it was submitted.
    pub submitted_at: i64,
    /// The package as it declared it, for a package question.
    pub package: Option<Package>,
    /// The sources it named that matched, for a source question.
    pub sources: Vec<String>,
}

/// A package across experiments.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PackageSummary {
    /// `ecosystem:name`.
    pub package: String,
    /// Versions seen (exact ones, then constraints).
    pub versions: BTreeSet<String>,
    /// Experiments that declared it.
    pub experiments: u64,
    /// Their projects.
    pub projects: BTreeSet<String>,
    /// The latest submission of one of them.
    pub last_used: i64,
}

/// What `deps` answers.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum DepsAnswer {
    /// The experiments that used the package or read the source asked of.
    Uses(Vec<DepsUse>),
    /// Packages (all, or those unused since the time asked).
    Packages(Vec<PackageSummary>),
}

impl Lab {
    /// Answers `q` from the provenance of the experiments `p` may read.
    pub fn deps(&self, p: &Principal, q: &DepsQuery) -> LabResult<DepsAnswer> {
        let p = self.current(p)?;
        if q.package.is_some() && q.unused_since.is_some() {
            return Err(LabError::Invalid(
                "--unused-since lists packages: give it without --package".into(),
            ));
        }
        let private_projects = self.store.private_projects()?;
        let mut uses = Vec::new();
        let mut packages: BTreeMap<String, PackageSummary> = BTreeMap::new();
        for entry in self.store.provenances() {
            let (id, provenance) = entry?;
            let Some(e) = self.store.experiment(id)? else {
                continue;
            };
            let private = e.spec.private
                || e.spec
                    .project
                    .as_ref()
                    .is_some_and(|pr| private_projects.contains(pr));
            if private && !owns_or_admin(&p, &e) {
                continue;
            }
            if q.project.is_some() && e.spec.project != q.project {
                continue;
            }
            let sources: Vec<String> = match &q.source {
                Some(pattern) => provenance
                    .sources
                    .iter()
                    .filter(|s| s.contains(pattern.as_str()))
                    .cloned()
                    .collect(),
                None => Vec::new(),
            };
            if q.source.is_some() && sources.is_empty() {
                continue;
            }
            let use_of = |package: Option<Package>| DepsUse {
                id,
                project: e.spec.project.clone(),
                owner: e.owner.clone(),
                submitted_at: e.submitted_at,
                package,
                sources: sources.clone(),
            };
            match &q.package {
                Some(query) => {
                    for package in provenance.packages.iter().filter(|pkg| query.matches(pkg)) {
                        uses.push(use_of(Some(package.clone())));
                    }
                }
                None if q.source.is_some() => uses.push(use_of(None)),
                None => {
                    for package in &provenance.packages {
                        let summary = packages
                            .entry(format!("{}:{}", package.ecosystem, package.name))
                            .or_insert_with_key(|key| PackageSummary {
                                package: key.clone(),
                                versions: BTreeSet::new(),
                                experiments: 0,
                                projects: BTreeSet::new(),
                                last_used: 0,
                            });
                        if let Some(v) = package.version.as_ref().or(package.constraint.as_ref()) {
                            summary.versions.insert(v.clone());
                        }
                        summary.experiments += 1;
                        summary
                            .projects
                            .insert(e.spec.project.clone().unwrap_or_else(|| "-".into()));
                        summary.last_used = summary.last_used.max(e.submitted_at);
                    }
                }
            }
        }
        if q.package.is_some() || q.source.is_some() {
            uses.sort_by_key(|u| std::cmp::Reverse(u.id));
            return Ok(DepsAnswer::Uses(uses));
        }
        let mut summaries: Vec<PackageSummary> = packages
            .into_values()
            .filter(|s| q.unused_since.is_none_or(|since| s.last_used < since))
            .collect();
        summaries.sort_by(|a, b| {
            b.experiments
                .cmp(&a.experiments)
                .then(a.package.cmp(&b.package))
        });
        Ok(DepsAnswer::Packages(summaries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg(name: &str, version: Option<&str>) -> Package {
        Package {
            ecosystem: "python".into(),
            name: name.into(),
            version: version.map(str::to_string),
            constraint: None,
            from: "requirements.txt".into(),
        }
    }

    #[test]
    fn the_views_query_reads_its_words() {
        let q = parse_deps_query("package:pandas<2 project:churn", 1000).expect("parses");
        assert_eq!(q.package.map(|p| p.name), Some("pandas".into()));
        assert_eq!(q.project.as_deref(), Some("churn"));
        let q = parse_deps_query("unused:10s source:mysql", 1000).expect("parses");
        assert_eq!(
            (q.unused_since, q.source.as_deref()),
            (Some(990), Some("mysql"))
        );
        assert_eq!(
            parse_deps_query("", 0).expect("parses"),
            DepsQuery::default()
        );
        assert!(parse_deps_query("bogus:1", 0).is_err());
        assert!(parse_deps_query("package:", 0).is_err());
        assert!(parse_deps_query("package:x unused:1d", 0).is_err());
    }

    #[test]
    fn versions_compare_part_by_part() {
        assert_eq!(compare_versions("1.10.0", "1.9"), Ordering::Greater);
        assert_eq!(compare_versions("2", "2.0.0"), Ordering::Equal);
        assert_eq!(compare_versions("1.5.3", "2"), Ordering::Less);
        assert_eq!(compare_versions("2.0.0rc1", "2"), Ordering::Less);
        assert_eq!(compare_versions("1.0rc1", "1.0rc2"), Ordering::Less);
        assert_eq!(compare_versions("1.0b2", "1.0rc1"), Ordering::Less);
        assert_eq!(compare_versions("1.0.dev1", "1.0a1"), Ordering::Less);
        assert_eq!(compare_versions("1.0.post1", "1.0"), Ordering::Greater);
        assert_eq!(compare_versions("2.1.0+cu121", "2.1.0"), Ordering::Equal);
        assert_eq!(compare_versions("1.10", "1.9a"), Ordering::Greater);
    }

    #[test]
    fn package_questions_match_name_and_version() {
        let q = PackageQuery::parse("Pandas<2").expect("parses");
        assert!(q.matches(&pkg("pandas", Some("1.5.3"))));
        assert!(!q.matches(&pkg("pandas", Some("2.1.0"))));
        assert!(
            !q.matches(&pkg("pandas", None)),
            "a range alone is no version"
        );
        assert!(
            PackageQuery::parse("pandas")
                .expect("parses")
                .matches(&pkg("pandas", None))
        );
        let q = PackageQuery::parse("python:scikit_learn>=1.2").expect("parses");
        assert!(q.matches(&pkg("scikit-learn", Some("1.2"))));
        assert!(
            !PackageQuery::parse("r:pandas")
                .expect("parses")
                .matches(&pkg("pandas", None))
        );
        assert!(
            PackageQuery::parse("pandas!=1.5.3")
                .expect("parses")
                .matches(&pkg("pandas", Some("1.5.4")))
        );
        assert!(PackageQuery::parse("<2").is_err());
        assert!(PackageQuery::parse("pandas<").is_err());
        assert!(PackageQuery::parse("pandas=~2").is_err());
    }
}

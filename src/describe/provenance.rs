//! Provenance in words: one line per part, `-` where nothing was captured.

use crate::model::{FileDigest, Provenance};
use crate::units::{human_bytes, minute_time, printable};

/// Packages listed by name at most (`--json` has all).
const PACKAGES_SHOWN: usize = 12;

/// The text form: one line per part, `-` where nothing was captured.
pub fn provenance_lines(id: u64, p: &Provenance) -> String {
    if p == &Provenance::default() {
        return format!(
            "experiment {id}: no provenance captured (it has not started, or ran before labbench captured it)\n"
        );
    }
    let mut out = format!("experiment {id}: captured {}\n", minute_time(p.captured_at));
    let code = match &p.git {
        None => "- (not in a git repository)".to_string(),
        Some(g) => {
            let mut line = format!(
                "{} {} @ {}",
                g.repository,
                g.branch.as_deref().unwrap_or("(detached)"),
                g.commit
                    .as_deref()
                    .map_or("(no commit)", |c| &c[..c.len().min(12)])
            );
            if g.dirty {
                line.push_str(&format!(
                    ", dirty: diff {}{}, {} untracked{}",
                    human_bytes(g.diff_bytes),
                    if g.diff_truncated { " (cut)" } else { "" },
                    g.untracked.len(),
                    if g.untracked_truncated { "+" } else { "" }
                ));
            }
            if let Some(remote) = &g.remote {
                line.push_str(&format!(", remote {remote}"));
            }
            line
        }
    };
    out.push_str(&format!("code      {}\n", printable(&code)));
    for (label, digests) in [("inputs", &p.inputs), ("outputs", &p.outputs)] {
        for d in digests {
            out.push_str(&format!("{label:<9} {}\n", digest_line(d)));
        }
    }
    for i in &p.interpreters {
        out.push_str(&format!(
            "{:<9} {} ({})\n",
            i.name,
            printable(&i.version),
            printable(&i.path.display().to_string())
        ));
    }
    if !p.packages.is_empty() {
        let shown: Vec<String> = p
            .packages
            .iter()
            .take(PACKAGES_SHOWN)
            .map(|pkg| {
                let version = pkg
                    .version
                    .as_deref()
                    .or(pkg.constraint.as_deref())
                    .unwrap_or("");
                printable(&format!(
                    "{}{}{version}",
                    pkg.name,
                    if pkg.version.is_some() { " " } else { "" }
                ))
            })
            .collect();
        let more = p.packages.len().saturating_sub(PACKAGES_SHOWN);
        out.push_str(&format!(
            "packages  {} from {}: {}{}\n",
            p.packages.len(),
            printable(&p.dependency_files.join(", ")),
            shown.join(", "),
            if more > 0 {
                format!(", … {more} more (--json)")
            } else {
                String::new()
            }
        ));
    }
    if !p.sources.is_empty() {
        out.push_str(&format!("sources   {}\n", printable(&p.sources.join(", "))));
    }
    for s in &p.skipped {
        out.push_str(&format!(
            "skipped   {}: {}\n",
            printable(&s.what),
            printable(&s.why)
        ));
    }
    if p.cache_hits > 0 || p.hashed_bytes > 0 {
        out.push_str(&format!(
            "hashing   {} read, {} file(s) unchanged since last hashed\n",
            human_bytes(p.hashed_bytes),
            p.cache_hits
        ));
    }
    out
}

fn digest_line(d: &FileDigest) -> String {
    let what = if d.directory {
        format!("{} files, {}", d.files, human_bytes(d.bytes))
    } else {
        human_bytes(d.bytes)
    };
    let mut line = format!("{}  ", d.path.display());
    match &d.blake3 {
        Some(hash) => line.push_str(&format!("{what}  blake3 {}", &hash[..hash.len().min(16)])),
        None => line.push_str("unreadable"),
    }
    if let Some(error) = &d.error {
        line.push_str(&format!("  ({error})"));
    }
    printable(&line)
}

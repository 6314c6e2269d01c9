//! Data sources: URLs named in an experiment's environment and project
//! file, with their credentials removed.

/// `url` without credentials: everything up to its last `@` (a user and
/// a password, even one with an unencoded `/`, `#` or `?`), its query
/// string and fragment (where tokens travel) are dropped. Text that is
/// not a URL is returned trimmed.
pub fn strip_credentials(url: &str) -> String {
    let url = url.trim();
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    // An `@` in a path would cut its host too: less is said, never a secret.
    let rest = rest.rsplit_once('@').map_or(rest, |(_, after)| after);
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    format!("{scheme}://{rest}")
}

/// `url` reduced to its scheme, host and port: what a URL taken from an
/// environment value may show to others (its path can hold a token, as a
/// webhook's does).
pub fn host_only(url: &str) -> String {
    let stripped = strip_credentials(url);
    match stripped.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.split('/').next().unwrap_or("");
            format!("{scheme}://{host}")
        }
        None => stripped,
    }
}

/// Whether `scheme` looks like a URL scheme (RFC 3986).
fn is_scheme(scheme: &str) -> bool {
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// The URLs (`scheme://…`) in `text` (an environment value), each as its
/// scheme, host and port only.
pub fn urls_in(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let before = &rest[..at];
        let start = before
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
            .map_or(0, |i| i + 1);
        let scheme = &before[start..];
        let after = &rest[at + 3..];
        let end = after
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ',' | ';' | '<' | '>'))
            .unwrap_or(after.len());
        if is_scheme(scheme) && end > 0 {
            found.push(host_only(&format!("{scheme}://{}", &after[..end])));
        }
        rest = &after[end..];
    }
    found
}

/// The `sources` list of a project's `.labbench.toml`.
pub fn from_project_file(text: &str) -> Result<Vec<String>, String> {
    #[derive(serde::Deserialize)]
    struct ProjectFile {
        #[serde(default)]
        sources: Vec<String>,
    }
    let file: ProjectFile = toml::from_str(text).map_err(|e| e.message().to_string())?;
    Ok(file.sources.iter().map(|s| strip_credentials(s)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_removed_from_urls() {
        assert_eq!(
            strip_credentials("postgres://ana:s3cret@db.lab:5432/sales?sslmode=require&password=x"),
            "postgres://db.lab:5432/sales"
        );
        assert_eq!(
            strip_credentials("https://token@github.com/org/repo.git"),
            "https://github.com/org/repo.git"
        );
        assert_eq!(strip_credentials("hdfs:///events#x"), "hdfs:///events");
        assert_eq!(
            strip_credentials("git@github.com:org/repo.git"),
            "git@github.com:org/repo.git"
        );
        // Unencoded characters in a password still go with it.
        assert_eq!(
            strip_credentials("postgres://u:p#ss@db/x"),
            "postgres://db/x"
        );
        assert_eq!(strip_credentials("https://u:pa/ss@h/r"), "https://h/r");
        assert_eq!(strip_credentials("https://u:p?ss@h/r"), "https://h/r");
        assert_eq!(
            host_only("https://hooks.slack.com/services/T0/B0/SECRET"),
            "https://hooks.slack.com"
        );
    }

    #[test]
    fn urls_are_found_inside_values() {
        assert_eq!(
            urls_in("primary=mysql://u:p@warehouse:3306/sales, backup='s3://bucket/x?sig=1' 42"),
            vec!["mysql://warehouse:3306", "s3://bucket"]
        );
        assert!(urls_in("a plain token abc123").is_empty());
        assert!(urls_in("://nothing").is_empty());
    }

    #[test]
    fn project_files_name_their_sources() {
        let text = "sources = [\"mysql://root:pw@warehouse/sales\", \"hdfs:///events\"]\n";
        assert_eq!(
            from_project_file(text).expect("parses"),
            vec!["mysql://warehouse/sales", "hdfs:///events"]
        );
        assert!(from_project_file("sources = 3").is_err());
    }
}

//! Data sources: URLs named in an experiment's environment and project
//! file, with their credentials removed.

/// `url` without credentials: the user and password of its authority,
/// its query string and fragment (where tokens travel) are dropped.
/// Text that is not a URL is returned trimmed.
pub fn strip_credentials(url: &str) -> String {
    let url = url.trim();
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let path = path.split(['?', '#']).next().unwrap_or("");
    format!("{scheme}://{host}{path}")
}

/// Whether `scheme` looks like a URL scheme (RFC 3986).
fn is_scheme(scheme: &str) -> bool {
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// The URLs (`scheme://…`) in `text`, credentials removed.
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
            found.push(strip_credentials(&format!("{scheme}://{}", &after[..end])));
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
    }

    #[test]
    fn urls_are_found_inside_values() {
        assert_eq!(
            urls_in("primary=mysql://u:p@warehouse/sales, backup='s3://bucket/x?sig=1' 42"),
            vec!["mysql://warehouse/sales", "s3://bucket/x"]
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

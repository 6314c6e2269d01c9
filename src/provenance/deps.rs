//! The dependency set, read from what a project has: Python requirement
//! files, `pyproject.toml` and its locks (`uv.lock`, `poetry.lock`), conda's
//! `environment.yml`, R's `renv.lock` and `DESCRIPTION`, `Cargo.lock`,
//! `package-lock.json`, and the packages installed in an active virtual
//! environment (the `*.dist-info` directories `pip freeze` reads).

use std::path::{Path, PathBuf};

use crate::model::{Package, normalize_package_name};

/// Most bytes read of one dependency file.
const MAX_FILE: u64 = 8 << 20;

/// What was found of a project's dependencies.
#[derive(Debug, Default)]
pub struct Found {
    /// The packages, at most the limit asked.
    pub packages: Vec<Package>,
    /// The files read.
    pub files: Vec<String>,
    /// Files that could not be read or parsed, and why.
    pub problems: Vec<(String, String)>,
}

/// Reads the dependency files in `dirs` (the working directory and the
/// repository's root) and the virtual environment `venv`, if any, keeping
/// at most `max` packages.
pub fn find(dirs: &[PathBuf], venv: Option<&Path>, max: usize) -> Found {
    let mut found = Found::default();
    let mut seen_dirs = Vec::new();
    for dir in dirs {
        if seen_dirs.contains(dir) {
            continue;
        }
        seen_dirs.push(dir.clone());
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|name| parser_for(name).is_some())
            .collect();
        names.sort();
        for name in names {
            let Some(parse) = parser_for(&name) else {
                continue;
            };
            let label = if dirs.len() > 1 && dir != &dirs[0] {
                dir.join(&name).display().to_string()
            } else {
                name.clone()
            };
            match read_small(&dir.join(&name)).and_then(|text| parse(&text, &label)) {
                Ok(packages) => {
                    found.files.push(label);
                    found.packages.extend(packages);
                }
                Err(why) => found.problems.push((label, why)),
            }
        }
    }
    let venv = venv.map(Path::to_path_buf).or_else(|| {
        dirs.iter()
            .flat_map(|d| [d.join(".venv"), d.join("venv")])
            .find(|candidate| candidate.join("pyvenv.cfg").is_file())
    });
    if let Some(venv) = venv {
        let label = format!("venv:{}", venv.display());
        let installed = installed_in(&venv, &label);
        if !installed.is_empty() {
            found.files.push(label);
            found.packages.extend(installed);
        }
    }
    found.packages.dedup();
    found.packages.truncate(max);
    found
}

type Parser = fn(&str, &str) -> Result<Vec<Package>, String>;

fn parser_for(name: &str) -> Option<Parser> {
    Some(match name {
        "pyproject.toml" => pyproject,
        "uv.lock" | "poetry.lock" => python_lock,
        "environment.yml" | "environment.yaml" => conda_environment,
        "renv.lock" => renv_lock,
        "DESCRIPTION" => r_description,
        "Cargo.lock" => cargo_lock,
        "package-lock.json" => npm_lock,
        _ if name.starts_with("requirements") && name.ends_with(".txt") => requirements,
        _ => return None,
    })
}

fn read_small(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let file = super::open_regular(path).map_err(|e| e.to_string())?;
    let mut text = String::new();
    file.take(MAX_FILE)
        .read_to_string(&mut text)
        .map_err(|e| e.to_string())?;
    Ok(text)
}

fn package(
    ecosystem: &str,
    name: &str,
    version: Option<String>,
    constraint: Option<String>,
    from: &str,
) -> Package {
    let name = if ecosystem == "python" {
        normalize_package_name(name)
    } else {
        name.trim().to_string()
    };
    Package {
        ecosystem: ecosystem.into(),
        name,
        version,
        constraint: constraint.filter(|c| !c.is_empty()),
        from: from.into(),
    }
}

/// One PEP 508 requirement (`pandas[sql]>=1.5,<2; python_version>"3"`):
/// its name and constraint; `==X` alone is a pinned version.
fn requirement(line: &str, from: &str) -> Option<Package> {
    let line = line.split(';').next()?.trim();
    // A URL is recorded without its credentials; one without a name
    // (`git+https://…`) names no package.
    if line.contains("://") {
        let (name, url) = line.split_once(" @ ")?;
        let name = name.trim().split('[').next().unwrap_or("").trim();
        let url = super::sources::strip_credentials(url);
        return (!name.is_empty())
            .then(|| package("python", name, None, Some(format!("@{url}")), from));
    }
    let end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .unwrap_or(line.len());
    let (name, mut rest) = line.split_at(end);
    if name.is_empty() {
        return None;
    }
    if rest.starts_with('[') {
        rest = rest.split_once(']').map_or("", |(_, r)| r);
    }
    let rest = rest
        .trim()
        .trim_start_matches('(')
        .trim_end_matches(')')
        .replace(' ', "");
    if rest.starts_with('@') {
        return Some(package("python", name, None, Some(rest), from));
    }
    let pinned = rest
        .strip_prefix("==")
        .filter(|v| !v.contains([',', '*']))
        .map(str::to_string);
    let constraint = pinned.is_none().then_some(rest);
    Some(package("python", name, pinned, constraint, from))
}

fn requirements(text: &str, from: &str) -> Result<Vec<Package>, String> {
    Ok(text
        .lines()
        .map(
            |line| match line.find(" #").or(line.starts_with('#').then_some(0)) {
                Some(at) => &line[..at],
                None => line,
            },
        )
        .map(str::trim)
        .filter(|line| {
            (!line.is_empty() && !line.starts_with('-') && !line.contains("://"))
                || line.contains(" @ ")
        })
        .filter_map(|line| requirement(line, from))
        .collect())
}

fn toml_of(text: &str) -> Result<toml::Table, String> {
    text.parse::<toml::Table>()
        .map_err(|e| e.message().to_string())
}

fn pyproject(text: &str, from: &str) -> Result<Vec<Package>, String> {
    let doc = toml_of(text)?;
    let mut packages = Vec::new();
    let project_deps = doc
        .get("project")
        .and_then(|p| p.get("dependencies"))
        .and_then(|d| d.as_array());
    for dep in project_deps.into_iter().flatten() {
        if let Some(p) = dep.as_str().and_then(|d| requirement(d, from)) {
            packages.push(p);
        }
    }
    let poetry = doc
        .get("tool")
        .and_then(|t| t.get("poetry"))
        .and_then(|p| p.get("dependencies"))
        .and_then(|d| d.as_table());
    for (name, spec) in poetry.into_iter().flatten() {
        if name == "python" {
            continue;
        }
        let constraint = spec
            .as_str()
            .or_else(|| spec.get("version").and_then(|v| v.as_str()))
            .map(str::to_string);
        packages.push(package("python", name, None, constraint, from));
    }
    Ok(packages)
}

/// The `[[package]]` tables (`name`, `version`) of a TOML lock file.
fn locked_packages(text: &str, ecosystem: &str, from: &str) -> Result<Vec<Package>, String> {
    let doc = toml_of(text)?;
    Ok(doc
        .get("package")
        .and_then(|p| p.as_array())
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let name = p.get("name")?.as_str()?;
            let version = p
                .get("version")
                .and_then(|v| v.as_str())
                .map(str::to_string);
            Some(package(ecosystem, name, version, None, from))
        })
        .collect())
}

fn python_lock(text: &str, from: &str) -> Result<Vec<Package>, String> {
    locked_packages(text, "python", from)
}

fn cargo_lock(text: &str, from: &str) -> Result<Vec<Package>, String> {
    locked_packages(text, "rust", from)
}

/// conda's `dependencies:` list (`numpy=1.26`, `conda-forge::scipy`), and
/// its nested `pip:` list as Python requirements.
fn conda_environment(text: &str, from: &str) -> Result<Vec<Package>, String> {
    let mut packages = Vec::new();
    let mut in_deps = false;
    let mut pip_indent: Option<usize> = None;
    for line in text.lines() {
        let content = line.split(" #").next().unwrap_or("").trim_end();
        if content.trim().is_empty() || content.trim_start().starts_with('#') {
            continue;
        }
        let indent = content.len() - content.trim_start().len();
        if indent == 0 {
            in_deps = content.starts_with("dependencies:");
            pip_indent = None;
            continue;
        }
        if !in_deps {
            continue;
        }
        let Some(item) = content.trim_start().strip_prefix("- ") else {
            continue;
        };
        let item = item.trim().trim_matches(['"', '\'']);
        if item == "pip:" {
            pip_indent = Some(indent);
            continue;
        }
        match pip_indent {
            Some(pip) if indent > pip => packages.extend(requirement(item, from)),
            _ if item.contains("://") => pip_indent = None,
            _ => {
                pip_indent = None;
                let spec = item.rsplit("::").next().unwrap_or(item);
                let end = spec.find(['=', '<', '>', '!', ' ']).unwrap_or(spec.len());
                let (name, rest) = spec.split_at(end);
                let rest = rest.trim();
                let exact = rest
                    .trim_start_matches('=')
                    .split('=')
                    .next()
                    .filter(|v| {
                        !v.is_empty() && !rest.starts_with(['<', '>', '!']) && !v.contains('*')
                    })
                    .map(str::to_string);
                let constraint = exact.is_none().then(|| rest.to_string());
                packages.push(package("conda", name, exact, constraint, from));
            }
        }
    }
    Ok(packages)
}

fn renv_lock(text: &str, from: &str) -> Result<Vec<Package>, String> {
    let doc: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let Some(map) = doc.get("Packages").and_then(|p| p.as_object()) else {
        return Err("no \"Packages\" object".into());
    };
    Ok(map
        .iter()
        .map(|(key, p)| {
            let name = p.get("Package").and_then(|n| n.as_str()).unwrap_or(key);
            let version = p
                .get("Version")
                .and_then(|v| v.as_str())
                .map(str::to_string);
            package("r", name, version, None, from)
        })
        .collect())
}

/// R's `DESCRIPTION`: the packages of `Depends`, `Imports` and `LinkingTo`.
fn r_description(text: &str, from: &str) -> Result<Vec<Package>, String> {
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = fields.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((key, value)) = line.split_once(':') {
            fields.push((key.trim().to_string(), value.trim().to_string()));
        }
    }
    Ok(fields
        .iter()
        .filter(|(key, _)| matches!(key.as_str(), "Depends" | "Imports" | "LinkingTo"))
        .flat_map(|(_, value)| value.split(','))
        .filter_map(|item| {
            let item = item.trim();
            let (name, constraint) = match item.split_once('(') {
                Some((name, rest)) => (
                    name.trim(),
                    Some(rest.trim_end_matches(')').replace(' ', "")),
                ),
                None => (item, None),
            };
            (!name.is_empty() && name != "R").then(|| package("r", name, None, constraint, from))
        })
        .collect())
}

fn npm_lock(text: &str, from: &str) -> Result<Vec<Package>, String> {
    let doc: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let version_of = |p: &serde_json::Value| {
        p.get("version")
            .and_then(|v| v.as_str())
            .map(str::to_string)
    };
    if let Some(map) = doc.get("packages").and_then(|p| p.as_object()) {
        return Ok(map
            .iter()
            .filter_map(|(key, p)| {
                let name = key
                    .rsplit("node_modules/")
                    .next()
                    .filter(|_| key.contains("node_modules/"))?;
                Some(package("npm", name, version_of(p), None, from))
            })
            .collect());
    }
    let map = doc
        .get("dependencies")
        .and_then(|d| d.as_object())
        .ok_or("neither \"packages\" nor \"dependencies\"")?;
    Ok(map
        .iter()
        .map(|(name, p)| package("npm", name, version_of(p), None, from))
        .collect())
}

/// The distributions installed in virtual environment `venv`
/// (`lib/python*/site-packages/NAME-VERSION.dist-info`).
fn installed_in(venv: &Path, from: &str) -> Vec<Package> {
    let mut packages = Vec::new();
    let Ok(libs) = std::fs::read_dir(venv.join("lib")) else {
        return packages;
    };
    for lib in libs.filter_map(|e| e.ok()) {
        let Ok(site) = std::fs::read_dir(lib.path().join("site-packages")) else {
            continue;
        };
        for entry in site.filter_map(|e| e.ok()) {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some((name, version)) = name
                .strip_suffix(".dist-info")
                .and_then(|n| n.split_once('-'))
            {
                packages.push(package(
                    "python",
                    name,
                    Some(version.to_string()),
                    None,
                    from,
                ));
            }
        }
    }
    packages.sort_by(|a, b| a.name.cmp(&b.name));
    packages
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brief(packages: &[Package]) -> Vec<String> {
        packages
            .iter()
            .map(|p| {
                format!(
                    "{}:{} {} {}",
                    p.ecosystem,
                    p.name,
                    p.version.as_deref().unwrap_or("-"),
                    p.constraint.as_deref().unwrap_or("-")
                )
            })
            .collect()
    }

    #[test]
    fn requirement_files_give_pins_and_constraints() {
        let text = "# data\npandas==1.5.3\nScikit_Learn>=1.2, <2  # ml\nnumpy\n-r other.txt\n\
                    torch[cuda]==2.1.*\nrequests ; python_version > \"3.8\"\n--index-url https://x\n";
        let with_urls = "pkg @ https://u:tok@host/x.whl\ngit+https://tok@github.com/o/r.git\n";
        assert_eq!(
            brief(&requirements(with_urls, "requirements.txt").expect("parses")),
            vec!["python:pkg - @https://host/x.whl"]
        );
        assert_eq!(
            brief(&requirements(text, "requirements.txt").expect("parses")),
            vec![
                "python:pandas 1.5.3 -",
                "python:scikit-learn - >=1.2,<2",
                "python:numpy - -",
                "python:torch - ==2.1.*",
                "python:requests - -",
            ]
        );
    }

    #[test]
    fn pyproject_and_its_locks_are_read() {
        let project = "[project]\nname='x'\ndependencies = ['polars>=0.20', 'pyarrow==15.0.0']\n\
                       [tool.poetry.dependencies]\npython='^3.11'\nrich={version='^13'}\n";
        assert_eq!(
            brief(&pyproject(project, "pyproject.toml").expect("parses")),
            vec![
                "python:polars - >=0.20",
                "python:pyarrow 15.0.0 -",
                "python:rich - ^13"
            ]
        );
        let lock = "version = 1\n[[package]]\nname = \"Polars\"\nversion = \"0.20.3\"\n";
        assert_eq!(
            brief(&python_lock(lock, "uv.lock").expect("parses")),
            vec!["python:polars 0.20.3 -"]
        );
        assert!(python_lock("[[package]\n", "uv.lock").is_err());
    }

    #[test]
    fn conda_environments_with_a_pip_section_are_read() {
        let text = "name: churn\nchannels:\n  - conda-forge\ndependencies:\n  - python=3.11\n  \
                    - conda-forge::numpy=1.26.4=py311_0\n  - scipy>=1.10\n  - pip:\n    - xgboost==2.0.3\n  - r-base\n";
        assert_eq!(
            brief(&conda_environment(text, "environment.yml").expect("parses")),
            vec![
                "conda:python 3.11 -",
                "conda:numpy 1.26.4 -",
                "conda:scipy - >=1.10",
                "python:xgboost 2.0.3 -",
                "conda:r-base - -",
            ]
        );
    }

    #[test]
    fn r_lock_and_description_are_read() {
        let lock = r#"{"R":{"Version":"4.3.1"},"Packages":{"dplyr":{"Package":"dplyr","Version":"1.1.4"}}}"#;
        assert_eq!(
            brief(&renv_lock(lock, "renv.lock").expect("parses")),
            vec!["r:dplyr 1.1.4 -"]
        );
        let description =
            "Package: churn\nDepends: R (>= 4.0)\nImports: dplyr (>= 1.1),\n    ggplot2\n";
        assert_eq!(
            brief(&r_description(description, "DESCRIPTION").expect("parses")),
            vec!["r:dplyr - >=1.1", "r:ggplot2 - -"]
        );
    }

    #[test]
    fn cargo_and_npm_locks_are_read() {
        let cargo = "version = 3\n[[package]]\nname = \"serde\"\nversion = \"1.0.200\"\n";
        assert_eq!(
            brief(&cargo_lock(cargo, "Cargo.lock").expect("parses")),
            vec!["rust:serde 1.0.200 -"]
        );
        let npm = r#"{"packages":{"":{"name":"app"},"node_modules/d3":{"version":"7.8.5"},"node_modules/a/node_modules/b":{"version":"1.0.0"}}}"#;
        let mut found = brief(&npm_lock(npm, "package-lock.json").expect("parses"));
        found.sort();
        assert_eq!(found, vec!["npm:b 1.0.0 -", "npm:d3 7.8.5 -"]);
    }

    #[test]
    fn a_project_directory_and_its_virtual_environment_are_searched() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("requirements-dev.txt"), "pytest==8.0.0\n").expect("write");
        std::fs::write(dir.path().join("renv.lock"), "not json").expect("write");
        let site = dir.path().join(".venv/lib/python3.11/site-packages");
        std::fs::create_dir_all(site.join("pandas-2.2.1.dist-info")).expect("mkdir");
        std::fs::write(dir.path().join(".venv/pyvenv.cfg"), "home = /usr\n").expect("write");
        let found = find(&[dir.path().to_path_buf()], None, 100);
        assert_eq!(
            brief(&found.packages),
            vec!["python:pytest 8.0.0 -", "python:pandas 2.2.1 -"]
        );
        assert_eq!(found.files[0], "requirements-dev.txt");
        assert!(found.files[1].starts_with("venv:"));
        assert_eq!(
            found.problems.len(),
            1,
            "renv.lock is not JSON: {:?}",
            found.problems
        );
    }
}

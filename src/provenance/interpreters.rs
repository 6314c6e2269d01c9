//! Interpreters on an experiment's `PATH` and their versions.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::ProbedInterpreter;
use super::process::{first_line, run};
use crate::model::Interpreter;

/// Longest an interpreter may take to say its version.
const VERSION_TIMEOUT: Duration = Duration::from_secs(10);

/// What is looked for: a name, the programs that may be it, and the
/// argument that makes it print its version.
const KNOWN: [(&str, &[&str], &str); 4] = [
    ("python", &["python3", "python"], "--version"),
    ("R", &["R"], "--version"),
    ("julia", &["julia"], "--version"),
    ("java", &["java"], "-version"),
];

/// The first executable called `program` in `path`'s directories.
fn which(program: &str, path: &str) -> Option<PathBuf> {
    std::env::split_paths(path)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(program))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Each known interpreter on `path` with its version (run in `dir` with
/// `path` and `home`, unless `known` has it for the same program, size and
/// mtime); failures are listed apart.
pub fn find(
    path: &str,
    dir: &Path,
    home: &Path,
    known: &[ProbedInterpreter],
) -> (Vec<ProbedInterpreter>, Vec<(String, String)>) {
    use std::os::unix::fs::MetadataExt;
    let mut found = Vec::new();
    let mut failed = Vec::new();
    let home = home.to_string_lossy();
    let env = [("PATH", path), ("HOME", home.as_ref()), ("LC_ALL", "C")];
    for (name, programs, flag) in KNOWN {
        let Some(program) = programs.iter().find_map(|p| which(p, path)) else {
            continue;
        };
        let Ok(meta) = std::fs::metadata(&program) else {
            continue;
        };
        let (size, mtime_ns) = (meta.size(), super::mtime_ns(&meta));
        if let Some(same) = known
            .iter()
            .find(|k| k.interpreter.path == program && k.size == size && k.mtime_ns == mtime_ns)
        {
            found.push(same.clone());
            continue;
        }
        match run(&program, &[flag], dir, &env, 64 << 10, VERSION_TIMEOUT) {
            Ok(ran) => {
                // java writes its version to standard error.
                let text = String::from_utf8_lossy(&ran.stdout);
                match first_line(&text).or_else(|| first_line(&ran.stderr)) {
                    Some(version) if ran.ok => found.push(ProbedInterpreter {
                        interpreter: Interpreter {
                            name: name.into(),
                            path: program,
                            version,
                        },
                        size,
                        mtime_ns,
                    }),
                    other => failed.push((
                        name.to_string(),
                        other.unwrap_or_else(|| "printed no version".into()),
                    )),
                }
            }
            Err(why) => failed.push((name.to_string(), why)),
        }
    }
    (found, failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interpreter_on_the_path_is_found_with_its_version() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).expect("mkdir");
        let python = bin.join("python3");
        std::fs::write(&python, "#!/bin/sh\necho \"Python 3.99.1\"\n").expect("write");
        std::fs::set_permissions(&python, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let java = bin.join("java");
        std::fs::write(&java, "#!/bin/sh\necho 'openjdk version \"21\"' >&2\n").expect("write");
        std::fs::set_permissions(&java, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let path = format!("{}:/usr/bin:/bin", bin.display());
        let (found, failed) = find(&path, dir.path(), dir.path(), &[]);
        let names: Vec<_> = found
            .iter()
            .map(|i| format!("{} {}", i.interpreter.name, i.interpreter.version))
            .collect();
        assert!(
            names.contains(&"python Python 3.99.1".to_string()),
            "{names:?}"
        );
        assert!(
            names.contains(&"java openjdk version \"21\"".to_string()),
            "{names:?}"
        );
        assert!(failed.is_empty(), "{failed:?}");

        // Known and unchanged: not run again. Changed: asked again.
        let (again, _) = find(&path, dir.path(), dir.path(), &found);
        assert_eq!(again, found);
        std::fs::write(&python, "#!/bin/sh\necho \"Python 3.99.22\"\n").expect("write");
        let (fresh, _) = find(&path, dir.path(), dir.path(), &found);
        assert!(
            fresh
                .iter()
                .any(|k| k.interpreter.version == "Python 3.99.22"),
            "a changed program is asked again: {fresh:?}"
        );
        // What proves the known version was used: a lie is believed.
        let mut lie = found.clone();
        lie.iter_mut()
            .filter(|k| k.interpreter.name == "java")
            .for_each(|k| k.interpreter.version = "remembered".into());
        let (used, _) = find(&path, dir.path(), dir.path(), &lie);
        assert!(
            used.iter().any(|k| k.interpreter.version == "remembered"),
            "{used:?}"
        );
    }
}

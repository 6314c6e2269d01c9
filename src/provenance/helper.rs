//! The helper process, `labbench __provenance`: takes on the owner's
//! identity first, then captures what the request asks and writes one
//! JSON line per part to standard output.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::{Code, Part, Phase, Request, deps, git, hashing, interpreters, sources};
use crate::model::Skipped;

/// Files read now whose hashes are handed back for the cache at most.
const MOST_FRESH_CACHED: usize = 250_000;

/// Most bytes of a request (its cache entries dominate).
const MAX_REQUEST: u64 = 256 << 20;

/// Reads a request from standard input, answers on standard output;
/// returns the exit status.
pub fn serve_stdin() -> i32 {
    let mut text = Vec::new();
    let read = std::io::stdin().take(MAX_REQUEST).read_to_end(&mut text);
    let request: Request = match read
        .map_err(|e| e.to_string())
        .and_then(|_| serde_json::from_slice(&text).map_err(|e| e.to_string()))
    {
        Ok(request) => request,
        Err(why) => {
            return answer(&Part::Failed {
                why: format!("bad request: {why}"),
            });
        }
    };
    // Behind the experiments and the daemon for the CPU (hashing is long,
    // and the runner's checks must not wait for it).
    let _ = rustix::process::setpriority_process(None, 19);
    // Nothing is read before this: the owner's rights are the only ones.
    if let Some(owner) = &request.owner
        && let Err(e) = crate::sys::process::become_identity(owner.uid, owner.gid, &owner.groups)
    {
        return answer(&Part::Failed {
            why: format!("cannot become the owner: {e}"),
        });
    }
    if request.phase == Phase::Start {
        let code = capture_code(&request);
        if answer(&code) != 0 {
            return 1;
        }
    }
    let hashed = hashing::hash_all(
        &request.workdir,
        &request.files,
        &request.cache,
        request.limits.files,
        request.limits.workers,
    );
    let mut fresh = hashed.fresh;
    // The answer is one line, which the daemon bounds: the rest of the
    // files read now are not cached (they are read again next time).
    fresh.truncate(MOST_FRESH_CACHED);
    answer(&Part::Files {
        digests: hashed.digests,
        hashed: fresh,
        cache_hits: hashed.cache_hits,
        hashed_bytes: hashed.hashed_bytes,
    })
}

/// Writes `part` as one line; 0 when written.
fn answer(part: &Part) -> i32 {
    let Ok(mut line) = serde_json::to_vec(part) else {
        return 1;
    };
    line.push(b'\n');
    let mut out = std::io::stdout().lock();
    match out.write_all(&line).and_then(|()| out.flush()) {
        Ok(()) => 0,
        Err(_) => 1,
    }
}

/// The code and environment part.
pub fn capture_code(request: &Request) -> Part {
    let home = request
        .owner
        .as_ref()
        .map(|o| o.home.clone())
        .or_else(|| std::env::var_os("HOME").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/"));
    let mut skipped = Vec::new();
    let (git, diff) = match git::capture(
        &request.workdir,
        &home,
        request.limits.diff_bytes,
        request.limits.untracked,
    ) {
        Ok(Some((state, diff))) => (Some(state), Some(diff)),
        Ok(None) => (None, None),
        Err(git::GitError::Missing) => {
            skipped.push(skip("git", "git is not installed on this host"));
            (None, None)
        }
        Err(git::GitError::Failed(why)) => {
            skipped.push(skip("git", &why));
            (None, None)
        }
    };
    let mut dirs = vec![request.workdir.clone()];
    if let Some(state) = &git {
        dirs.push(state.root.clone());
    }
    let venv = request
        .env
        .iter()
        .find(|(name, _)| name == "VIRTUAL_ENV")
        .map(|(_, value)| PathBuf::from(value));
    let found = deps::find(&dirs, venv.as_deref(), request.limits.packages);
    for (file, why) in found.problems {
        skipped.push(skip(&format!("dependencies in {file}"), &why));
    }
    let (probed, failed) = interpreters::find(
        &request.path,
        &request.workdir,
        &home,
        &request.known_interpreters,
    );
    let interpreters = probed.iter().map(|p| p.interpreter.clone()).collect();
    for (name, why) in failed {
        skipped.push(skip(&format!("{name} version"), &why));
    }
    let sources = data_sources(request, &dirs, &mut skipped);
    Part::Code(Box::new(Code {
        git,
        diff,
        interpreters,
        packages: found.packages,
        dependency_files: found.files,
        sources,
        skipped,
        probed,
    }))
}

fn skip(what: &str, why: &str) -> Skipped {
    Skipped {
        what: what.into(),
        why: why.into(),
    }
}

/// Declared inputs, URLs in `--env` values and the project file's
/// `sources`, each once.
fn data_sources(request: &Request, dirs: &[PathBuf], skipped: &mut Vec<Skipped>) -> Vec<String> {
    let mut found: Vec<String> = request
        .files
        .iter()
        .map(|f| super::resolve(&request.workdir, f).display().to_string())
        .collect();
    for (_, value) in &request.env {
        found.extend(sources::urls_in(value));
    }
    if let Some(file) = dirs
        .iter()
        .map(|d| d.join(".labbench.toml"))
        .find(|f| f.is_file())
    {
        match read_project_file(&file) {
            Ok(listed) => found.extend(listed),
            Err(why) => skipped.push(skip(&file.display().to_string(), &why)),
        }
    }
    let mut unique = Vec::new();
    for source in found {
        if !unique.contains(&source) {
            unique.push(source);
        }
    }
    unique
}

fn read_project_file(file: &Path) -> Result<Vec<String>, String> {
    let mut text = String::new();
    super::open_regular(file)
        .and_then(|f| f.take(1 << 20).read_to_string(&mut text))
        .map_err(|e| e.to_string())?;
    sources::from_project_file(&text)
}

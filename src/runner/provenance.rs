//! Capturing experiments' provenance in the background: at a start (code,
//! environment, inputs) and at an end (outputs), a few at a time, never in
//! the way of the runner's loop or the run itself.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::lab::Engine;
use crate::model::Experiment;
use std::collections::HashMap;

use crate::provenance::{
    Limits, Owner, Part, Phase, ProbedInterpreter, Request, capture::run_helper,
};

/// How provenance is captured.
#[derive(Debug, Clone)]
pub struct ProvenanceSettings {
    /// The labbench binary (its `__provenance` helper); `None`: nothing is
    /// captured.
    pub program: Option<PathBuf>,
    /// Bounds of each capture.
    pub limits: Limits,
    /// Longest one capture may take (hashing large inputs dominates).
    pub timeout: Duration,
    /// Captures running at once at most.
    pub running: Arc<tokio::sync::Semaphore>,
    /// Whether the helper takes on the owner's identity (the daemon runs
    /// as root).
    pub as_owner: bool,
    /// Interpreter versions found, by working directory (a version may
    /// depend on it, as pyenv's does), so that each run does not start
    /// every interpreter again.
    pub interpreters: Arc<std::sync::Mutex<HashMap<PathBuf, Vec<ProbedInterpreter>>>>,
}

/// Working directories whose interpreters are remembered at most.
const REMEMBERED_WORKDIRS: usize = 1024;

impl ProvenanceSettings {
    /// No capture (tests of the runner that do not run the labbench binary).
    pub fn off() -> ProvenanceSettings {
        ProvenanceSettings {
            program: None,
            limits: Limits::default(),
            timeout: Duration::from_secs(600),
            running: Arc::new(tokio::sync::Semaphore::new(2)),
            as_owner: false,
            interpreters: Arc::default(),
        }
    }
}

/// Starts capturing experiment `e`'s provenance at `phase` in the
/// background (at the end only when it declared outputs).
pub(super) fn capture(lab: &Engine, settings: &ProvenanceSettings, e: &Experiment, phase: Phase) {
    let Some(program) = settings.program.clone() else {
        return;
    };
    let files = match phase {
        Phase::Start => e.spec.inputs.clone(),
        Phase::End if e.spec.outputs.is_empty() => return,
        Phase::End => e.spec.outputs.clone(),
    };
    let (lab, settings, e) = (lab.clone(), settings.clone(), e.clone());
    tokio::spawn(async move {
        let Ok(_permit) = settings.running.clone().acquire_owned().await else {
            return;
        };
        let id = e.id;
        let recorder = lab.clone();
        let blocking = tokio::task::spawn_blocking(move || {
            let request = request(&lab, &settings, &e, phase, files)?;
            run_helper(&program, &request, settings.timeout, |part| {
                if let Part::Code(code) = &part {
                    remember(&settings, &e.spec.workdir, code.probed.clone());
                }
                if let Err(err) = lab.record_provenance(id, phase, part) {
                    tracing::warn!("experiment {id}: cannot record its provenance: {err}");
                }
            })
        });
        if let Ok(Err(why)) = blocking.await {
            recorder.provenance_failed(id, phase, why);
        }
    });
}

/// The helper's request for `e` at `phase`, hashing `files`.
fn request(
    lab: &Engine,
    settings: &ProvenanceSettings,
    e: &Experiment,
    phase: Phase,
    files: Vec<PathBuf>,
) -> Result<Request, String> {
    let owner = if settings.as_owner {
        let account = crate::sys::accounts::by_name(&e.unix_user)?
            .ok_or_else(|| format!("unix user {} does not exist", e.unix_user))?;
        let groups = crate::sys::accounts::groups_of(&e.unix_user, account.gid)?;
        Some(Owner {
            uid: account.uid,
            gid: account.gid,
            groups,
            home: account.home,
        })
    } else {
        None
    };
    let cache = files
        .iter()
        .flat_map(|f| lab.cached_hashes(&crate::provenance::resolve(&e.spec.workdir, f)))
        .collect();
    let path = e
        .spec
        .env
        .iter()
        .find(|(name, _)| name == "PATH")
        .map_or(crate::exec::local::DEFAULT_PATH.to_string(), |(_, v)| {
            v.clone()
        });
    let known_interpreters = settings
        .interpreters
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&e.spec.workdir)
        .cloned()
        .unwrap_or_default();
    Ok(Request {
        known_interpreters,
        phase,
        owner,
        workdir: e.spec.workdir.clone(),
        path,
        env: e.spec.env.clone(),
        files,
        cache,
        limits: settings.limits,
    })
}

/// Remembers the interpreters found for `workdir`.
fn remember(
    settings: &ProvenanceSettings,
    workdir: &std::path::Path,
    probed: Vec<ProbedInterpreter>,
) {
    let mut known = settings
        .interpreters
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if known.len() >= REMEMBERED_WORKDIRS && !known.contains_key(workdir) {
        known.clear();
    }
    known.insert(workdir.to_path_buf(), probed);
}

//! Capturing experiments' provenance in the background: at a start (code,
//! environment, inputs) and at an end (outputs), never in the way of the
//! runner's loop or the run itself.
//!
//! Captures wait in one queue. Its reader lets them gather for
//! [`GATHER`], takes all that waits (up to [`MOST_AT_ONCE`]) and runs the
//! helper once for each distinct request: the experiments of a sweep,
//! submitted from one working directory with the same inputs, share one
//! capture made for all of them. So a burst of starts costs a few helper
//! processes, not one each (measured in `cargo bench --bench queue`).
//! At most [`HELPERS_AT_ONCE`] helpers run, one per Unix user at a time:
//! one user's long hashing holds up nobody else's captures.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::exec::cgroup::{ExperimentCgroup, Slots};
use crate::lab::Engine;
use crate::model::Experiment;
use crate::provenance::capture::{Confinement, ProcessGroup, run_helper};
use crate::provenance::{Limits, Owner, Part, Phase, ProbedInterpreter, Request};

/// What interpreter versions found are remembered for.
type InterpreterKey = (String, PathBuf, String);

/// Helpers running at once at most (each in its own cgroup, at nice 19).
const HELPERS_AT_ONCE: usize = 3;
/// Captures a worker takes at once at most.
const MOST_AT_ONCE: usize = 1024;
/// How long a worker lets captures gather after the first before it takes
/// them (a burst of starts then costs a helper per distinct capture, not
/// one per start; each captures what its experiment began with, this
/// much later at most, besides the wait for a worker).
const GATHER: Duration = Duration::from_millis(250);
/// Cached hashes sent with one request at most (about 40 MB of JSON).
const MOST_CACHED_SENT: usize = 250_000;
/// Working directories whose interpreters are remembered at most.
const REMEMBERED_WORKDIRS: usize = 1024;

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
    /// Whether the helper takes on the owner's identity (the daemon runs
    /// as root).
    pub as_owner: bool,
    /// Interpreter versions found, by Unix user, working directory and
    /// `PATH` (a version may depend on each, as pyenv's does), so that each
    /// capture does not start every interpreter again.
    pub interpreters: Arc<std::sync::Mutex<HashMap<InterpreterKey, Vec<ProbedInterpreter>>>>,
    /// The queue of captures, once the runner has started its workers.
    pub queue: Arc<OnceLock<mpsc::UnboundedSender<Job>>>,
    /// Where helpers get a cgroup of their own (when experiments do).
    pub slots: Option<Arc<crate::exec::cgroup::Slots>>,
}

impl ProvenanceSettings {
    /// Captures as `notebook` settings say, with the labbench binary
    /// `program`; `as_owner` when the daemon runs as root.
    pub fn new(
        program: Option<PathBuf>,
        limits: Limits,
        timeout: Duration,
        as_owner: bool,
        slots: Option<Arc<crate::exec::cgroup::Slots>>,
    ) -> Self {
        ProvenanceSettings {
            program,
            limits,
            timeout,
            as_owner,
            interpreters: Arc::default(),
            queue: Arc::default(),
            slots,
        }
    }
}

/// One capture asked for.
#[derive(Debug)]
pub struct Job {
    id: u64,
    unix_user: String,
    phase: Phase,
    workdir: PathBuf,
    env: Vec<(String, String)>,
    files: Vec<PathBuf>,
}

impl Job {
    /// Whether `other` is the same capture (of another experiment).
    fn same_capture(&self, other: &Job) -> bool {
        self.unix_user == other.unix_user
            && self.phase == other.phase
            && self.workdir == other.workdir
            && self.env == other.env
            && self.files == other.files
    }
}

/// Starts the reader of the capture queue (once; not without a helper).
pub(super) fn start_workers(lab: &Engine, settings: &ProvenanceSettings) {
    let Some(program) = settings.program.clone() else {
        return;
    };
    let (sender, receiver) = mpsc::unbounded_channel();
    if settings.queue.set(sender).is_err() {
        return;
    }
    tokio::spawn(gather(lab.clone(), settings.clone(), program, receiver));
}

/// Takes the captures that wait, a batch at a time, and starts each
/// distinct one: at most [`HELPERS_AT_ONCE`] helpers run, and one at a
/// time per Unix user, so that one user's long hashing (a large dataset)
/// holds up neither the others' captures nor the queue.
async fn gather(
    lab: Engine,
    settings: ProvenanceSettings,
    program: PathBuf,
    mut receiver: mpsc::UnboundedReceiver<Job>,
) {
    let running = Arc::new(tokio::sync::Semaphore::new(HELPERS_AT_ONCE));
    let mut per_user: HashMap<String, Arc<tokio::sync::Semaphore>> = HashMap::new();
    while let Some(first) = receiver.recv().await {
        tokio::time::sleep(GATHER).await;
        let mut jobs = vec![first];
        while jobs.len() < MOST_AT_ONCE {
            match receiver.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        for same in coalesce(jobs) {
            let users_turn = per_user
                .entry(same[0].unix_user.clone())
                .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(1)))
                .clone();
            let (lab, settings, program, running) = (
                lab.clone(),
                settings.clone(),
                program.clone(),
                running.clone(),
            );
            tokio::spawn(async move {
                let (Ok(_users_turn), Ok(_slot)) = (
                    users_turn.acquire_owned().await,
                    running.acquire_owned().await,
                ) else {
                    return;
                };
                let _ = tokio::task::spawn_blocking(move || {
                    capture_for(&lab, &settings, &program, &same);
                })
                .await;
            });
        }
    }
}

/// `jobs` grouped into identical captures, in the order they came.
fn coalesce(jobs: Vec<Job>) -> Vec<Vec<Job>> {
    let mut groups: Vec<Vec<Job>> = Vec::new();
    for job in jobs {
        match groups.iter_mut().find(|g| g[0].same_capture(&job)) {
            Some(group) => group.push(job),
            None => groups.push(vec![job]),
        }
    }
    groups
}

/// Asks for experiment `e`'s provenance at `phase` (at the end only when
/// it declared outputs).
pub(super) fn capture(settings: &ProvenanceSettings, e: &Experiment, phase: Phase) {
    let Some(queue) = settings.queue.get() else {
        return;
    };
    let files = match phase {
        Phase::Start => e.spec.inputs.clone(),
        Phase::End if e.spec.outputs.is_empty() => return,
        Phase::End => e.spec.outputs.clone(),
    };
    let _ = queue.send(Job {
        id: e.id,
        unix_user: e.unix_user.clone(),
        phase,
        workdir: e.spec.workdir.clone(),
        env: e.spec.env.clone(),
        files,
    });
}

/// Runs the helper once for `same` (identical captures) and records what
/// it found for each of them.
fn capture_for(
    lab: &Engine,
    settings: &ProvenanceSettings,
    program: &std::path::Path,
    same: &[Job],
) {
    let job = &same[0];
    let mut cgroup;
    let mut group = ProcessGroup;
    let confinement: &mut dyn Confinement = match &settings.slots {
        Some(slots) => {
            cgroup = HelperCgroup {
                slots,
                limits: crate::exec::local::helper_limits(&lab.host_gpus()),
                cgroup: None,
            };
            &mut cgroup
        }
        None => &mut group,
    };
    let ran = request(lab, settings, job).and_then(|request| {
        run_helper(program, &request, settings.timeout, confinement, |part| {
            if let Part::Code(code) = &part {
                remember(
                    settings,
                    interpreter_key(job, &request.path),
                    code.probed.clone(),
                );
            }
            for (i, j) in same.iter().enumerate() {
                let mut part = part.clone();
                if let Part::Files { hashed, .. } = &mut part
                    && i > 0
                {
                    // The cache needs them once.
                    hashed.clear();
                }
                if let Err(err) = lab.record_provenance(j.id, job.phase, part) {
                    tracing::warn!("experiment {}: cannot record its provenance: {err}", j.id);
                }
            }
        })
    });
    if let Err(why) = ran {
        for j in same {
            lab.provenance_failed(j.id, job.phase, why.clone());
        }
    }
}

/// A helper's cgroup: made before the helper reads its request, held to
/// [`crate::exec::local::helper_limits`], and emptied and given back when
/// it is done (what it started dies with it, `setsid` or not).
struct HelperCgroup<'a> {
    slots: &'a Slots,
    limits: crate::exec::cgroup::Limits,
    cgroup: Option<ExperimentCgroup>,
}

impl Confinement for HelperCgroup<'_> {
    fn enter(&mut self, pid: u32) -> Result<(), String> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let cgroup = self
            .slots
            .create_for_helper(n, self.limits)
            .map_err(|e| e.to_string())?;
        let added = cgroup.add_process(pid).map_err(|e| e.to_string());
        self.cgroup = Some(cgroup);
        added
    }

    fn end(&mut self) {
        let Some(cgroup) = self.cgroup.take() else {
            return;
        };
        cgroup.signal_all_but(libc::SIGKILL, None);
        // Removed rather than kept for an experiment: the page cache its
        // reads were charged for would count against the next one.
        for _ in 0..50 {
            if cgroup.pid_list().is_some_and(|pids| pids.is_empty()) && cgroup.remove() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        self.slots.release_when_empty(cgroup);
    }
}

/// The helper's request for `job`.
fn request(lab: &Engine, settings: &ProvenanceSettings, job: &Job) -> Result<Request, String> {
    let owner = if settings.as_owner {
        let account = crate::sys::accounts::by_name(&job.unix_user)?
            .ok_or_else(|| format!("unix user {} does not exist", job.unix_user))?;
        let groups = crate::sys::accounts::groups_of(&job.unix_user, account.gid)?;
        Some(Owner {
            uid: account.uid,
            gid: account.gid,
            groups,
            home: account.home,
        })
    } else {
        None
    };
    // Bounded: a directory past the most files hashed is not hashed at
    // all, so more entries than that for one path are of no use.
    let mut cache = Vec::new();
    for f in &job.files {
        let room = MOST_CACHED_SENT
            .saturating_sub(cache.len())
            .min(settings.limits.files);
        cache.extend(lab.cached_hashes(&crate::provenance::resolve(&job.workdir, f), room));
    }
    let path = job
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
        .get(&interpreter_key(job, &path))
        .cloned()
        .unwrap_or_default();
    Ok(Request {
        known_interpreters,
        phase: job.phase,
        owner,
        workdir: job.workdir.clone(),
        path,
        env: job.env.clone(),
        files: job.files.clone(),
        cache,
        limits: settings.limits,
    })
}

/// What the interpreters found for `job` with `PATH` `path` are kept by.
fn interpreter_key(job: &Job, path: &str) -> InterpreterKey {
    (job.unix_user.clone(), job.workdir.clone(), path.to_string())
}

/// Remembers the interpreters found for `key`.
fn remember(settings: &ProvenanceSettings, key: InterpreterKey, probed: Vec<ProbedInterpreter>) {
    let mut known = settings
        .interpreters
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if known.len() >= REMEMBERED_WORKDIRS && !known.contains_key(&key) {
        known.clear();
    }
    known.insert(key, probed);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: u64, workdir: &str, files: &[&str]) -> Job {
        Job {
            id,
            unix_user: "ana".into(),
            phase: Phase::Start,
            workdir: workdir.into(),
            env: Vec::new(),
            files: files.iter().map(PathBuf::from).collect(),
        }
    }

    #[test]
    fn identical_captures_are_made_once_for_all() {
        let groups = coalesce(vec![
            job(1, "/a", &["x"]),
            job(2, "/b", &["x"]),
            job(3, "/a", &["x"]),
            job(4, "/a", &["y"]),
        ]);
        let ids: Vec<Vec<u64>> = groups
            .iter()
            .map(|g| g.iter().map(|j| j.id).collect())
            .collect();
        assert_eq!(ids, [vec![1, 3], vec![2], vec![4]]);
    }
}

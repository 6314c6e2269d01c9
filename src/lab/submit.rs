//! Submitting experiments: the request, its validation (labels, resources,
//! quotas, the owner's Unix account and working directory), and reruns.

use std::path::{Path, PathBuf};

use super::experiments::owns_or_admin;
use super::{Change, Lab, LabError, LabResult, Principal, now};
use crate::model::{
    CommandLine, Experiment, ExperimentSpec, MAX_DURATION_SECS, ResourceUse, Resources, Role,
    State, Transition, User, is_reserved_env,
};
use crate::sched::Quota;
use crate::sys::accounts::{self, Account};

/// Longest name, project or tag.
pub(super) const MAX_LABEL: usize = 128;

/// Most environment variables, tags, params, inputs, outputs or dependencies.
pub(super) const MAX_ITEMS: usize = 256;

/// Defaults applied to experiments that ask for nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueSettings {
    /// CPU cores.
    pub default_cpus: f64,
    /// Memory, bytes.
    pub default_memory_bytes: u64,
    /// Wall-time limit, seconds.
    pub default_time_secs: u64,
    /// Bytes kept free on the data disk: below, submissions are refused and
    /// nothing starts, so that running experiments' ends can still be
    /// recorded (0: no reserve).
    pub disk_reserve_bytes: u64,
    /// Why no experiment may run on this host, if none may (a daemon not
    /// running as root, outside single-user mode).
    pub run_refusal: Option<String>,
    /// Most bytes an experiment's output may take unless an admin allows more.
    pub max_output_bytes: u64,
    /// Most experiments one user may have queued at once (a quota may say otherwise).
    pub max_queued_per_user: u32,
    /// In single-user mode (a daemon not running as root that runs
    /// experiments as itself), the daemon's account: only the lab user
    /// mapped to it runs experiments (they can read the daemon's data).
    pub single_user: Option<String>,
    /// The project of an experiment that names none and is not in a git
    /// repository.
    pub default_project: Option<String>,
}

impl Default for QueueSettings {
    fn default() -> Self {
        QueueSettings {
            default_cpus: 1.0,
            default_memory_bytes: 4 << 30,
            default_time_secs: 86_400,
            disk_reserve_bytes: 0,
            run_refusal: None,
            max_output_bytes: 10 << 30,
            max_queued_per_user: 1000,
            single_user: None,
            default_project: None,
        }
    }
}

/// A submission as a front end builds it; missing resources take defaults.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SubmitRequest {
    /// Short name.
    pub name: Option<String>,
    /// Project.
    pub project: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// The command (`None` is an error).
    pub command: Option<CommandLine>,
    /// Working directory (default: the owner's home).
    pub workdir: Option<PathBuf>,
    /// Environment additions.
    pub env: Vec<(String, String)>,
    /// Declared inputs.
    pub inputs: Vec<PathBuf>,
    /// Declared outputs.
    pub outputs: Vec<PathBuf>,
    /// Parameters.
    pub params: Vec<(String, String)>,
    /// Dependencies.
    pub after: Vec<u64>,
    /// CPU cores.
    pub cpus: Option<f64>,
    /// Memory, bytes.
    pub memory_bytes: Option<u64>,
    /// GPUs.
    pub gpus: Option<u32>,
    /// Wall-time limit, seconds.
    pub time_limit_secs: Option<u64>,
    /// Priority.
    pub priority: i32,
    /// Only its owner and admins may read its output and see what it runs.
    pub private: bool,
    /// Most bytes of output (more than the queue's default: admins only).
    pub max_output_bytes: Option<u64>,
}

impl Lab {
    /// Queues an experiment for the caller; refused for viewers and for bad input.
    pub fn submit(&self, p: &Principal, request: SubmitRequest) -> LabResult<u64> {
        let p = &self.current(p)?;
        if p.role == Role::Viewer {
            return Err(LabError::PermissionDenied(
                "viewers cannot submit experiments".into(),
            ));
        }
        if request.priority > 0 && !p.is_admin() {
            return Err(LabError::PermissionDenied(
                "only admins can submit with a priority above 0".into(),
            ));
        }
        if request
            .max_output_bytes
            .is_some_and(|max| max > self.queue.max_output_bytes)
            && !p.is_admin()
        {
            return Err(LabError::PermissionDenied(format!(
                "only admins can allow more output than queue.max_output ({})",
                crate::units::short_bytes(self.queue.max_output_bytes as f64)
            )));
        }
        if let Some(why) = &self.queue.run_refusal {
            return Err(LabError::Invalid(why.clone()));
        }
        let owner = self.existing_user_record(&p.user)?;
        if let Some(daemon) = &self.queue.single_user
            && owner.unix_user.as_deref() != Some(daemon.as_str())
        {
            return Err(LabError::PermissionDenied(format!(
                "single-user mode: experiments run as the daemon's own account {daemon}, which \
                 can read labbench's data; only the lab user mapped to {daemon} may run them"
            )));
        }
        let account = run_as(&owner)?;
        let spec = self.validate_submission(&account, request)?;
        let project = spec.project.as_deref();
        if let Some(why) = self.request_over_quota(&p.user, project, &spec.resources)? {
            return Err(LabError::Invalid(why));
        }
        // From the count of what is queued to the record staged, one
        // submission at a time: parallel ones cannot pass a limit together.
        let counted = self
            .engine
            .submissions
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        self.check_queue_room(&p.user, project)?;
        self.check_budgets(&p.user, spec.project.as_deref())?;
        if let Some((free, reserve)) = self.disk_short() {
            return Err(LabError::Unavailable(format!(
                "the data disk is full: {} free, and labbench keeps {} free for the records \
                 of running experiments; nothing was queued (try again when space is freed)",
                crate::units::short_bytes(free as f64),
                crate::units::short_bytes(reserve as f64)
            )));
        }
        let id = self.store.next_experiment_id()?;
        let at = now();
        let experiment = Experiment {
            id,
            owner: p.user.clone(),
            unix_user: account.name,
            spec,
            submitted_at: at,
            state: State::Queued,
            transitions: vec![Transition {
                at,
                to: "queued".into(),
                reason: format!("submitted by {}", p.user),
            }],
            host: self.usage_snapshot(p).host.hostname.clone(),
            backend: "local".into(),
            usage: ResourceUse::default(),
        };
        // One flush makes the counter, the record and the audit entry durable.
        self.store.stage_experiment(&experiment)?;
        drop(counted);
        self.audit_with_next_flush(
            p,
            Change::new(
                "experiment.submit",
                format!("experiment {id}"),
                format!("submitted experiment {id}"),
            ),
        )?;
        self.store.flush()?;
        // One that waits for an unfinished experiment cannot start before
        // that one ends (which makes the runner plan anyway).
        let after = &experiment.spec.after;
        if self
            .store
            .with_active(|active| after.iter().any(|d| active.contains_key(d)))
        {
            self.notify_queue();
        } else {
            self.queue_grew(experiment.spec.resources);
        }
        Ok(id)
    }

    pub(super) fn validate_submission(
        &self,
        account: &Account,
        r: SubmitRequest,
    ) -> LabResult<ExperimentSpec> {
        let invalid = |m: String| Err(LabError::Invalid(m));
        let command = match r.command {
            Some(CommandLine::Argv(argv)) if argv.is_empty() || argv[0].is_empty() => {
                return invalid(
                    "no command given: use submit -- CMD ARGS… or submit --sh 'CMD'".into(),
                );
            }
            Some(CommandLine::Shell(line)) if line.trim().is_empty() => {
                return invalid("empty --sh command".into());
            }
            Some(command) => command,
            None => {
                return invalid(
                    "no command given: use submit -- CMD ARGS… or submit --sh 'CMD'".into(),
                );
            }
        };
        for label in r.name.iter().chain(r.project.iter()).chain(r.tags.iter()) {
            if label.is_empty()
                || label.chars().count() > MAX_LABEL
                || label.chars().any(char::is_control)
            {
                return invalid(format!(
                    "invalid name, project or tag {label:?}: 1–{MAX_LABEL} printable characters"
                ));
            }
        }
        let counts = [
            r.tags.len(),
            r.env.len(),
            r.params.len(),
            r.inputs.len(),
            r.outputs.len(),
            r.after.len(),
        ];
        if counts.iter().any(|n| *n > MAX_ITEMS) {
            return invalid(format!(
                "too many tags, variables, params, inputs, outputs or dependencies (at most {MAX_ITEMS} each)"
            ));
        }
        for (key, _) in &r.env {
            if key.is_empty() || key.contains('=') || key.contains('\0') {
                return invalid(format!("invalid environment variable name {key:?}"));
            }
            if is_reserved_env(key) {
                return invalid(reserved_env_message(key));
            }
        }
        let settings = &self.queue;
        let resources = Resources {
            cpus: r.cpus.unwrap_or(settings.default_cpus),
            memory_bytes: r.memory_bytes.unwrap_or(settings.default_memory_bytes),
            gpus: r.gpus.unwrap_or(0),
            time_limit_secs: r.time_limit_secs.unwrap_or(settings.default_time_secs),
        };
        if !(1..=MAX_DURATION_SECS).contains(&resources.time_limit_secs) {
            return invalid(format!(
                "--time {} s: a wall-time limit is from 1 s to 365d",
                resources.time_limit_secs
            ));
        }
        if resources.cpus.is_nan() || resources.cpus <= 0.0 || !resources.cpus.is_finite() {
            return invalid("--cpus must be more than 0".into());
        }
        let capacity = self.capacity();
        if resources.cpus > capacity.cpus {
            return invalid(format!(
                "--cpus {} is more than this host has ({})",
                resources.cpus, capacity.cpus
            ));
        }
        if resources.memory_bytes > capacity.memory_bytes {
            return invalid(format!(
                "--mem {} is more than this host has ({})",
                crate::units::short_bytes(resources.memory_bytes as f64),
                crate::units::short_bytes(capacity.memory_bytes as f64)
            ));
        }
        if resources.gpus as usize > capacity.gpus.len() {
            return invalid(format!(
                "--gpus {} is more than this host has ({})",
                resources.gpus,
                capacity.gpus.len()
            ));
        }
        for dep in &r.after {
            if self.store.experiment(*dep)?.is_none() {
                return invalid(format!("--after {dep}: no such experiment"));
            }
        }
        let workdir = r.workdir.unwrap_or_else(|| account.home.clone());
        let repository = check_workdir(&workdir, account, &self.workdir_checks.0)?;
        Ok(ExperimentSpec {
            name: r.name,
            // Its project: as given, else its git repository's name, else
            // the configured default.
            // Not a private one's repository: its name would say what the
            // experiment hides (its working directory).
            project: r
                .project
                .or(repository.filter(|_| !r.private))
                .or_else(|| self.queue.default_project.clone()),
            tags: r.tags,
            command,
            workdir,
            env: r.env,
            inputs: r.inputs,
            outputs: r.outputs,
            params: r.params,
            after: r.after,
            resources,
            priority: r.priority,
            private: r.private,
            max_output_bytes: r.max_output_bytes,
        })
    }

    /// Most bytes an experiment's output may take unless it says otherwise.
    pub fn default_output_limit(&self) -> u64 {
        self.queue.max_output_bytes
    }

    /// Why no experiment may run on this host, if none may.
    pub fn run_refusal(&self) -> Option<&str> {
        self.queue.run_refusal.as_deref()
    }

    /// Refuses a submission of `user` who has as many experiments queued
    /// as allowed (their quota's `max_queued`, the default's, else the
    /// queue's setting), or into a `project` that has as many queued as its
    /// quota allows: the queue is everyone's, and each queued one costs the
    /// daemon memory.
    pub(super) fn check_queue_room(&self, user: &str, project: Option<&str>) -> LabResult<()> {
        let (max, project_max) = self.queued_limits(user, project)?;
        let (queued, in_project) = self.store.with_active(|active| {
            let queued = active.values().filter(|e| e.state == State::Queued);
            let (mut mine, mut theirs) = (0, 0);
            for e in queued {
                mine += usize::from(e.owner == user);
                theirs += usize::from(project.is_some() && e.spec.project.as_deref() == project);
            }
            (mine, theirs)
        });
        if queued >= max as usize {
            return Err(LabError::Unavailable(format!(
                "{user} has {queued} experiments queued, the most allowed (queue.max_queued_per_user, \
                 or quota --max-queued); nothing was queued: submit again once some have started"
            )));
        }
        if let (Some(project), Some(max)) = (project, project_max)
            && in_project >= max as usize
        {
            return Err(LabError::Unavailable(format!(
                "project {project} has {in_project} experiments queued, the most its quota allows; \
                 nothing was queued: submit again once some have started"
            )));
        }
        Ok(())
    }

    /// Submits a copy of experiment `id` for the caller, with `changes` applied
    /// to its resources, priority and name: its owner's or an admin's (the
    /// same checks as `submit` apply).
    pub fn rerun(&self, p: &Principal, id: u64, changes: SubmitRequest) -> LabResult<u64> {
        let p = &self.current(p)?;
        let original = self.stored_experiment(id)?;
        if !owns_or_admin(p, &original) {
            return Err(LabError::PermissionDenied(format!(
                "only {} or an admin can rerun experiment {id}",
                original.owner
            )));
        }
        let spec = original.spec;
        let request = SubmitRequest {
            name: changes.name.or(spec.name),
            project: spec.project,
            tags: spec.tags,
            command: Some(spec.command),
            workdir: Some(spec.workdir),
            env: spec.env,
            inputs: spec.inputs,
            outputs: spec.outputs,
            params: spec.params,
            after: Vec::new(),
            cpus: changes.cpus.or(Some(spec.resources.cpus)),
            memory_bytes: changes.memory_bytes.or(Some(spec.resources.memory_bytes)),
            gpus: changes.gpus.or(Some(spec.resources.gpus)),
            time_limit_secs: changes
                .time_limit_secs
                .or(Some(spec.resources.time_limit_secs)),
            priority: if changes.priority != 0 {
                changes.priority
            } else {
                spec.priority.min(0)
            },
            private: spec.private || changes.private,
            max_output_bytes: changes.max_output_bytes.or(spec.max_output_bytes),
        };
        self.submit(p, request)
    }
}

/// Why a request exceeds a quota outright (not just given current use).
pub(super) fn larger_than_quota(quota: &Quota, r: &Resources) -> Option<String> {
    if let Some(max) = quota.max_cpus
        && r.cpus > max
    {
        return Some(format!("{} CPUs asked, max {max}", r.cpus));
    }
    if let Some(max) = quota.max_memory_bytes
        && r.memory_bytes > max
    {
        return Some(format!(
            "{} memory asked, max {}",
            crate::units::short_bytes(r.memory_bytes as f64),
            crate::units::short_bytes(max as f64)
        ));
    }
    if let Some(max) = quota.max_gpus
        && r.gpus > max
    {
        return Some(format!("{} GPUs asked, max {max}", r.gpus));
    }
    if let Some(max) = quota.max_time_secs
        && r.time_limit_secs > max
    {
        return Some(format!(
            "{} s wall time asked, max {max} s",
            r.time_limit_secs
        ));
    }
    if quota.max_running == Some(0) {
        return Some("you may not run experiments (max 0 running)".into());
    }
    None
}

/// A `KEY=VALUE` pair (`--param`, `--env`), the key not empty.
pub fn parse_pair(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{s:?}: expected KEY=VALUE"))
}

/// An `--env` pair whose name labbench does not reserve.
pub fn parse_env_pair(s: &str) -> Result<(String, String), String> {
    let (name, value) = parse_pair(s)?;
    if crate::model::is_reserved_env(&name) {
        return Err(reserved_env_message(&name));
    }
    Ok((name, value))
}

/// Why `--env NAME=…` is refused for a reserved `name`.
pub fn reserved_env_message(name: &str) -> String {
    format!(
        "--env {name}: labbench sets {name} for every experiment (the GPUs it assigned, its own \
         variables); it cannot be overridden"
    )
}

/// Accounts whose `--workdir` check has not returned (see [`check_workdir`]).
#[derive(Default)]
pub(super) struct WorkdirChecks(
    pub(super) std::sync::Arc<std::sync::Mutex<std::collections::HashSet<u32>>>,
);

/// Longest a `--workdir` check may take.
pub(super) const WORKDIR_CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// How long a `--workdir` an account passed is not checked again.
pub(super) const WORKDIR_PASSED_FOR: std::time::Duration = std::time::Duration::from_secs(10);

/// The Unix account `owner`'s experiments run as: refused when none is
/// set, it does not exist here, or it is a system account an admin did
/// not allow.
pub(super) fn run_as(owner: &User) -> LabResult<Account> {
    let Some(name) = &owner.unix_user else {
        return Err(LabError::Invalid(format!(
            "no Unix account is set for {0}, so their experiments cannot run: an admin must set \
             one (user set-unix {0} UNIX_USER)",
            owner.name
        )));
    };
    let account = accounts::by_name(name)
        .map_err(LabError::Unavailable)?
        .ok_or_else(|| {
            LabError::Invalid(format!(
                "unix user {name} does not exist on this host; an admin must create it or map {} \
                 to another (user set-unix)",
                owner.name
            ))
        })?;
    if accounts::is_system_uid(account.uid) && !owner.system_account_allowed {
        return Err(LabError::Invalid(format!(
            "unix user {name} is a system account (uid {}); an admin must allow it (user \
             set-unix {} {name} --allow-system-account) or map another",
            account.uid, owner.name
        )));
    }
    Ok(account)
}

/// Refuses a working directory `account` cannot enter and list, as the
/// kernel decides for it. One message whether it is missing or closed to
/// the account, so a refusal tells nothing about what the account cannot see.
///
/// A directory an account may enter is taken as such for
/// [`WORKDIR_PASSED_FOR`] (a script that submits many experiments from one
/// directory costs one check, not a thread each); the command's start
/// enters it as the account anyway, and fails clearly if it no longer may.
///
/// The check can hang on a filesystem that does not answer (a user's own
/// FUSE mount): it is given [`WORKDIR_CHECK_TIMEOUT`], after which the
/// directory is refused, and an account has one check at a time (`in_flight`:
/// accounts whose check has not returned), so that none can tie up the
/// daemon's threads.
pub(super) fn check_workdir(
    dir: &Path,
    account: &Account,
    in_flight: &std::sync::Arc<std::sync::Mutex<std::collections::HashSet<u32>>>,
) -> LabResult<Option<String>> {
    if !dir.is_absolute() {
        return Err(LabError::Invalid(format!(
            "--workdir {}: use an absolute path",
            dir.display()
        )));
    }
    static PASSED: std::sync::OnceLock<accounts::Kept<(u32, PathBuf), Option<String>>> =
        std::sync::OnceLock::new();
    let passed = PASSED.get_or_init(accounts::Kept::new);
    let key = (account.uid, dir.to_path_buf());
    if let Some(repository) = passed.get(&key) {
        return Ok(repository);
    }
    let groups = accounts::groups_of(&account.name, account.gid).map_err(LabError::Unavailable)?;
    if !in_flight
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(account.uid)
    {
        return Err(LabError::Unavailable(format!(
            "the check of an earlier --workdir of unix user {} has not returned (is its \
             filesystem answering?); try again later",
            account.name
        )));
    }
    let (path, uid, gid, checks) = (
        dir.to_path_buf(),
        account.uid,
        account.gid,
        in_flight.clone(),
    );
    let checked = accounts::within(WORKDIR_CHECK_TIMEOUT, move || {
        let may = crate::sys::fs::may_enter_as(&path, uid, gid, &groups);
        // Its owner may enter it, so every directory above it: whether one
        // holds `.git` tells nothing the owner could not see.
        let repository = may.then(|| repository_name(&path)).flatten();
        checks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&uid);
        (may, repository)
    });
    if let Ok((true, repository)) = checked {
        passed.put(key, repository.clone(), WORKDIR_PASSED_FOR);
        return Ok(repository);
    }
    Err(LabError::Invalid(format!(
        "--workdir {}: no such directory, or unix user {} cannot enter and list it",
        dir.display(),
        account.name
    )))
}

/// The name of the git repository `dir` is in (the directory that holds
/// `.git`), when it is a valid project name.
fn repository_name(dir: &Path) -> Option<String> {
    let root = dir
        .ancestors()
        .find(|d| d.join(".git").symlink_metadata().is_ok())?;
    let name = root.file_name()?.to_str()?;
    (!name.is_empty() && name.chars().count() <= MAX_LABEL && !name.chars().any(char::is_control))
        .then(|| name.to_string())
}

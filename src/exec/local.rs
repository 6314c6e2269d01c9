//! Starting an experiment on this host: its files, its cgroup, and its
//! supervisor ([`super::shim`]): a kept one (see [`super::pool`]) or one
//! forked by the [`super::launcher`]; told to go once the daemon has
//! recorded the start.
//!
//! As root, the owner's account and groups are looked up here through the
//! name service ([`crate::sys::accounts`], whose answers are kept 30 s): a
//! lookup that does not answer within 5 s (a directory service down) fails
//! that start instead of holding up the daemon.
//!
//! The command's environment is built here, clean: `PATH`, `HOME`, `USER`,
//! `LOGNAME`, `SHELL`, `LANG`, `LABBENCH_EXPERIMENT_ID`, `LABBENCH_METRICS`
//! and the GPU variables, then the experiment's `--env` (which may not set
//! labbench's own). The GPUs given are named in `CUDA_VISIBLE_DEVICES` and
//! `NVIDIA_VISIBLE_DEVICES` by UUID ([`cuda_visible`]), which means the same
//! whichever device files the program may open.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::cgroup::{ExperimentCgroup, GpuAccess, Limits};
use super::error::{ExecError, LaunchError};
use super::launcher::Launcher;
use super::pool::{self, ExitWatch, IdleShim};
use super::protocol::{Identity, ShimArgs};
use crate::model::{CommandLine, Experiment, HostGpu, cuda_visible};
use crate::output::ExperimentFiles;

/// An experiment whose supervisor waits for go (see [`go`]).
#[derive(Debug)]
pub struct Launched {
    /// The shim's pid (leader of the experiment's session).
    pub pid: u32,
    /// The shim's start time (ticks after boot), to recognise it later.
    pub start_time: u64,
    /// Its cgroups, when confined by them.
    pub cgroup: Option<ExperimentCgroup>,
    /// Whether its supervisor stays for another experiment afterwards.
    pub reusable: bool,
    /// Whom the supervisor runs commands as.
    pub identity: Option<Identity>,
    /// A kept supervisor's pidfd watch (a new one gets its own).
    pub watch: Option<ExitWatch>,
    /// A kept supervisor whose hand-over is still to be confirmed
    /// ([`Launcher::handed_over`]) before it is told go.
    pub handing_over: bool,
}

/// Everything `launch` needs besides the experiment.
#[derive(Debug, Clone)]
pub struct LaunchContext {
    /// The data directory.
    pub data_dir: PathBuf,
    /// Forks the supervisors.
    pub launcher: Arc<Launcher>,
    /// Supervisors kept idle for further experiments.
    pub pool: Arc<pool::Pool>,
    /// This daemon's cgroups (kept slots, those left to empty).
    pub slots: Arc<super::cgroup::Slots>,
    /// Whether cgroups (v2 or v1) can be used.
    pub cgroups: bool,
    /// Whether the daemon runs as root (then experiments run as their owner's Unix user).
    pub as_root: bool,
    /// Most processes per experiment.
    pub max_processes: u32,
    /// Whether supervisors are kept for further experiments (v1 cgroup
    /// slots, and an ends pipe to report on; see [`super::pool`]).
    pub reuse_supervisors: bool,
}

/// Creates `data_dir/experiments`, traversable (not listable) by everyone:
/// experiments' users reach their own files in it. Done once by the runner.
pub fn prepare_experiments_dir(data_dir: &Path) -> std::io::Result<()> {
    let parent = data_dir.join("experiments");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o711)
        .create(&parent)?;
    std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o711))
}

/// Prepares an experiment (its cgroup; the launcher creates its directory
/// and files) under a supervisor waiting for [`go`]: a kept one if one is
/// idle (whose hand-over is confirmed by [`Launcher::handed_over`] after
/// the start is recorded), else a new one, confined to the cgroup.
/// `gpus` are the indices of the GPUs given to it among `host_gpus`, whose
/// device files its cgroup denies it but theirs, and which its environment
/// names.
pub fn launch(
    ctx: &LaunchContext,
    e: &Experiment,
    gpus: &[u32],
    host_gpus: &[HostGpu],
) -> Result<Launched, ExecError> {
    let files = ExperimentFiles::new(&ctx.data_dir, e.id);
    let account = if ctx.as_root {
        let unknown = || format!("unix user {} does not exist on this host", e.unix_user);
        let entry = crate::sys::accounts::by_name(&e.unix_user)
            .and_then(|entry| entry.ok_or_else(unknown))
            .map_err(ExecError::Account)?;
        let groups =
            crate::sys::accounts::groups_of(&e.unix_user, entry.gid).map_err(ExecError::Account)?;
        Some((entry, groups))
    } else {
        None
    };
    // The launcher creates the experiment's directory and files (it opens
    // them for the shim anyway).

    let argv = match &e.spec.command {
        CommandLine::Argv(argv) => argv.clone(),
        CommandLine::Shell(line) => vec!["/bin/sh".into(), "-c".into(), line.clone()],
    };
    let identity = account.as_ref().map(|(a, groups)| Identity {
        name: e.unix_user.clone(),
        uid: a.uid,
        gid: a.gid,
        groups: groups.clone(),
    });
    let args = ShimArgs {
        id: e.id,
        dir: files.dir.clone(),
        workdir: e.spec.workdir.clone(),
        identity: identity.clone(),
        argv,
        env: environment(ctx, e, gpus, host_gpus, account.as_ref().map(|(a, _)| a)),
        reusable: ctx.reuse_supervisors,
    };
    let limits = Limits {
        memory_bytes: e.spec.resources.memory_bytes,
        cpus: e.spec.resources.cpus,
        pids: ctx.max_processes,
        gpus: GpuAccess::new(host_gpus, &gpu_device_files(), gpus),
    };
    if ctx.reuse_supervisors
        && let Some(idle) = ctx.pool.take(&identity, &ctx.launcher)
    {
        match hand_to_kept(ctx, idle, &args, limits) {
            Ok(launched) => return Ok(launched),
            Err(why) => tracing::debug!("experiment {}: a new supervisor, since {why}", e.id),
        }
    }

    let cgroup = if ctx.cgroups {
        Some(ctx.slots.create(e.id, limits).map_err(ExecError::Cgroup)?)
    } else {
        None
    };
    let remove_cgroup = |why: ExecError| {
        if let Some(cg) = &cgroup {
            let _ = cg.remove();
        }
        why
    };

    let pid = ctx
        .launcher
        .spawn(args)
        .map_err(|e| remove_cgroup(e.into()))?;
    if let Some(cg) = &cgroup
        && let Err(err) = cg.add_process(pid)
    {
        // Killed while it surely waits for go, before its pid can be reused.
        crate::sys::process::kill(pid as i32, libc::SIGKILL);
        ctx.launcher.abort(pid);
        return Err(remove_cgroup(ExecError::Confine(err)));
    }
    let start_time = crate::sys::procfs::process_start_time(pid).unwrap_or(0);
    Ok(Launched {
        pid,
        start_time,
        cgroup,
        reusable: ctx.reuse_supervisors,
        identity,
        watch: None,
        handing_over: false,
    })
}

/// Hands experiment `args` to kept supervisor `idle`, in its slot set to
/// `limits`; on failure the supervisor is retired.
fn hand_to_kept(
    ctx: &LaunchContext,
    idle: IdleShim,
    args: &ShimArgs,
    limits: Limits,
) -> Result<Launched, ExecError> {
    let cgroup = match idle.cgroup.renew(limits) {
        Ok(cgroup) => cgroup,
        Err(e) => {
            // Some limits may have been written: the slot's are unknown now.
            let cgroup = idle.cgroup.with_unknown_limits();
            ctx.pool
                .retire(IdleShim { cgroup, ..idle }, Some(&ctx.launcher));
            return Err(ExecError::Renew(e));
        }
    };
    if let Err(why) = ctx.launcher.hand_over(idle.pid, args) {
        ctx.pool
            .retire(IdleShim { cgroup, ..idle }, Some(&ctx.launcher));
        return Err(why.into());
    }
    Ok(Launched {
        pid: idle.pid,
        start_time: idle.start_time,
        cgroup: Some(cgroup),
        reusable: true,
        identity: idle.identity,
        watch: idle.watch,
        handing_over: true,
    })
}

/// The `PATH` an experiment gets unless its `--env` sets one.
pub const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin";

/// Lets a launched experiment's command run (after its start is recorded).
pub fn go(ctx: &LaunchContext, launched: &Launched) -> Result<(), LaunchError> {
    ctx.launcher.go(launched.pid)
}

/// The command's whole environment.
/// Minors of the host's GPU device files (`/dev/nvidiaN`), looked for at
/// most once a minute, where device files are fenced.
/// Limits of a helper the daemon starts as a user (the provenance
/// helper, which runs the user's git and interpreters): 2 GiB, one core,
/// 256 processes, no GPU.
pub fn helper_limits(host_gpus: &[HostGpu]) -> Limits {
    Limits {
        memory_bytes: 2 << 30,
        cpus: 1.0,
        pids: 256,
        gpus: GpuAccess::new(host_gpus, &gpu_device_files(), &[]),
    }
}

fn gpu_device_files() -> Vec<u32> {
    static FOUND: Mutex<Option<(Instant, Vec<u32>)>> = Mutex::new(None);
    if !super::cgroup::gpu_devices_enforced() {
        return Vec::new();
    }
    let mut found = FOUND.lock().unwrap_or_else(|e| e.into_inner());
    match &*found {
        Some((at, minors)) if at.elapsed() < Duration::from_secs(60) => minors.clone(),
        _ => {
            let minors = super::cgroup::gpu_device_minors(Path::new("/dev"));
            *found = Some((Instant::now(), minors.clone()));
            minors
        }
    }
}

fn environment(
    ctx: &LaunchContext,
    e: &Experiment,
    gpus: &[u32],
    host_gpus: &[HostGpu],
    account: Option<&crate::sys::accounts::Account>,
) -> Vec<(String, String)> {
    let files = ExperimentFiles::new(&ctx.data_dir, e.id);
    let home = account
        .map(|a| a.home.display().to_string())
        .or_else(|| std::env::var("HOME").ok())
        .unwrap_or_else(|| "/".into());
    let fenced = ctx.cgroups && super::cgroup::gpu_devices_enforced();
    let visible = cuda_visible(host_gpus, gpus, fenced);
    // For containers it starts, whose runtime counts all the host's GPUs.
    let nvidia_visible = match cuda_visible(host_gpus, gpus, false) {
        host if host.is_empty() => "none".to_string(),
        host => host,
    };
    let mut env: Vec<(String, String)> = [
        ("PATH", DEFAULT_PATH.to_string()),
        ("HOME", home),
        ("USER", e.unix_user.clone()),
        ("LOGNAME", e.unix_user.clone()),
        ("SHELL", "/bin/sh".to_string()),
        ("LANG", "C.UTF-8".to_string()),
        ("LABBENCH_EXPERIMENT_ID", e.id.to_string()),
        ("LABBENCH_METRICS", files.metrics().display().to_string()),
        // Numbers (where no UUID is known) count in bus order, as NVML does.
        ("CUDA_DEVICE_ORDER", "PCI_BUS_ID".to_string()),
        ("CUDA_VISIBLE_DEVICES", visible),
        ("NVIDIA_VISIBLE_DEVICES", nvidia_visible),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    // The experiment's own variables win over the defaults, but never over
    // labbench's (refused at submission; an older record may hold one).
    for (key, value) in &e.spec.env {
        if crate::model::is_reserved_env(key) {
            continue;
        }
        env.retain(|(k, _)| k != key);
        env.push((key.clone(), value.clone()));
    }
    env
}

//! Starting `labbench serve`: store, bootstrap, host key, sampler, SSH listener.

use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use russh::{MethodKind, MethodSet};
use tokio::net::TcpListener;

use crate::config::{Config, ConfigError};
use crate::exec::LaunchContext;
use crate::lab::{AdminBootstrap, BootstrapReport, Lab, LabError, QueueSettings, RunnerHandle};
use crate::monitor::{GpuSourceSpec, MonitorSettings, spawn_monitor};
use crate::runner::RunnerSettings;
use crate::ssh::{
    ConnectionHandler, ConnectionLimits, HostKey, LimitSettings, ServerShared, generate_ed25519,
    load_or_create_host_key, write_private_key,
};
use crate::store::{Store, StoreError};

/// File name of the admin key pair generated, in the invoking user's
/// `~/.ssh`, when no admin key can be found.
pub const GENERATED_ADMIN_KEY: &str = "labbench_admin_ed25519";

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Invalid configuration (exit status 2).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The host key could not be loaded or created.
    #[error(transparent)]
    HostKey(#[from] crate::ssh::hostkey::HostKeyError),
    /// The admin bootstrap failed.
    #[error("admin bootstrap: {0}")]
    Bootstrap(#[from] LabError),
    /// The GPU source could not be opened (e.g. a missing replay file).
    #[error("GPU source: {0}")]
    Gpu(String),
    /// Something else needed to start is missing.
    #[error("{0}")]
    Start(String),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// A started server and what to tell the operator about it.
pub struct RunningServer {
    /// The service, for shutdown and tests.
    pub lab: Lab,
    /// Bound address (with the real port when 0 was asked).
    pub addr: SocketAddr,
    /// The host key.
    pub host_key: HostKey,
    /// What the first-start bootstrap did, if it ran.
    pub bootstrap: Option<BootstrapReport>,
    /// The data directory, absolute.
    pub data_dir: PathBuf,
    /// The task serving connections.
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
    /// The experiment runner (it ends after [`Lab::stop_runner`]).
    pub runner: tokio::task::JoinHandle<()>,
    /// The runner's idle supervisors (ended at shutdown).
    pub supervisors: Arc<crate::exec::pool::Pool>,
    /// The daemon's cgroups (its kept slots removed at shutdown).
    pub slots: Arc<crate::exec::cgroup::Slots>,
}

/// Opens everything and starts accepting SSH connections.
pub async fn start(
    config: Config,
    admin_key_files: &[PathBuf],
) -> Result<RunningServer, ServeError> {
    let listen = config.listen_addr()?;
    let data_dir = absolute(&config.data_dir);
    let gpu = config
        .monitor
        .gpu_source
        .parse::<GpuSourceSpec>()
        .and_then(|spec| spec.open())
        .map_err(ServeError::Gpu)?;
    let store = Store::open(&data_dir)?;
    let monitor = spawn_monitor(
        store.clone(),
        MonitorSettings {
            period: Duration::from_millis(config.monitor.sample_ms),
            gpu,
            keep_minutes_days: config.monitor.keep_minutes_days,
            keep_hours_days: config.monitor.keep_hours_days,
            disk_path: data_dir.clone(),
        },
    );
    let (runner_handle, runner_commands) = RunnerHandle::new();
    let lab = Lab::new(store, monitor)
        .with_data_dir(data_dir.clone())
        .with_queue_settings(queue_settings(&config))
        .with_cost_settings(cost_settings(&config))
        .with_idle_rule(idle_rule(&config))
        .with_runner(runner_handle);
    // Bind and load the host key before the bootstrap, so a port in use fails
    // before an admin key is generated and its `ssh -i` line could be missed.
    let host_key = load_or_create_host_key(&data_dir)?;
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ServeError::Bind {
        addr: listen,
        source,
    })?;

    let bootstrap = if lab.needs_bootstrap() {
        let invoking = invoking_user();
        let name = if config.bootstrap.initial_admin_name.is_empty() {
            invoking.clone()
        } else {
            config.bootstrap.initial_admin_name.clone()
        };
        // As root, the first admin's experiments run as no account until
        // one is named (never as root by default); otherwise they run as
        // the daemon's own user anyway.
        let unix_user = match config.bootstrap.initial_admin_unix_user.as_str() {
            "" if crate::sys::process::is_root() => None,
            "" => Some(invoking),
            named => Some(named.to_string()),
        };
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let admin = AdminBootstrap::collect(
            &name,
            unix_user.as_deref(),
            &config.bootstrap.initial_admin_keys,
            admin_key_files,
            home.as_deref(),
            || generate_admin_key(home.as_deref()),
        )?;
        Some(lab.bootstrap_admin(admin)?)
    } else {
        if !admin_key_files.is_empty() {
            tracing::warn!("--admin-key is used only on first start; users already exist");
        }
        None
    };

    let russh_config = Arc::new(russh_config(&config, &host_key));
    let host_limits = config.host_limits.clone();
    let shared = Arc::new(ServerShared {
        lab: lab.clone(),
        limits: ConnectionLimits::new(limit_settings(&config)),
        config: Arc::new(config),
    });
    let program = std::env::current_exe()
        .map_err(|e| ServeError::Start(format!("cannot locate the labbench binary: {e}")))?;
    let launcher = Arc::new(crate::exec::Launcher::new(program.clone()));
    let cgroups = shared.config.queue.cgroups && crate::exec::cgroup::available();
    let slots = Arc::new(crate::exec::cgroup::Slots::new(&data_dir));
    let runner_settings = RunnerSettings {
        launch: LaunchContext {
            data_dir: data_dir.clone(),
            // Kept supervisors stay in v1 slots (v2 cannot reset a cgroup's counters).
            reuse_supervisors: cgroups
                && launcher.can_reuse()
                && crate::exec::cgroup::hierarchy() == Some(crate::exec::cgroup::Hierarchy::V1),
            launcher,
            pool: Arc::new(crate::exec::pool::Pool::new(slots.clone())),
            slots: slots.clone(),
            cgroups,
            as_root: crate::sys::process::is_root(),
            max_processes: shared.config.queue.max_processes,
        },
        grace: Duration::from_secs(shared.config.queue.kill_grace_secs),
        output_limit: lab.default_output_limit(),
        disk_reserve: shared.config.queue.disk_reserve.0,
        provenance: provenance_settings(
            &shared.config.notebook,
            program.clone(),
            cgroups.then(|| slots.clone()),
        ),
    };
    tracing::info!(
        "experiments run {} and {}",
        if runner_settings.launch.as_root {
            "as their owner's Unix user"
        } else {
            "as the daemon's own user (not root)"
        },
        match (
            runner_settings.launch.cgroups,
            crate::exec::cgroup::hierarchy()
        ) {
            (true, Some(crate::exec::cgroup::Hierarchy::V2(mount))) => {
                format!("are confined by cgroups v2 ({})", mount.display())
            }
            (true, _) if crate::exec::cgroup::gpu_devices_enforced() => {
                "are confined by cgroups v1 (GPU device files fenced)".to_string()
            }
            (true, _) => "are confined by cgroups v1".to_string(),
            (false, _) => {
                "are NOT confined by cgroups (process groups and a watchdog only)".to_string()
            }
        }
    );
    let supervisors = runner_settings.launch.pool.clone();
    let runner = tokio::spawn(crate::runner::run(
        lab.engine(),
        runner_settings,
        runner_commands,
    ));
    // The guard moves processes only where experiments have cgroups of
    // their own (else it would take them for the user's other work) and
    // the daemon may move anyone's (root).
    if host_limits.enabled {
        let guard = if !crate::sys::process::is_root() {
            Err("the daemon does not run as root")
        } else if !cgroups {
            Err("experiments are not in cgroups of their own: queue.cgroups")
        } else {
            crate::exec::cgroup::UserCgroups::detect().ok_or("labbench cannot make cgroups here")
        };
        match guard {
            Ok(user_cgroups) => {
                println!(
                    "host limits: on (cgroups {}; `hostlimit set` caps a Unix user)",
                    user_cgroups.version()
                );
                let h = &host_limits;
                tokio::spawn(crate::guard::run(
                    lab.clone(),
                    user_cgroups,
                    crate::monitor::penalty::PenaltyRule {
                        over_percent: h.penalty_over_percent,
                        after_secs: h.penalty_after.0 as i64,
                        cpus_percent: h.penalty_cpus_percent,
                        for_secs: h.penalty_for.0 as i64,
                    },
                ));
            }
            Err(why) => println!("host limits: NOT enforced ({why})"),
        }
    }
    let task = tokio::spawn(accept_loop(listener, russh_config, shared));
    Ok(RunningServer {
        lab,
        addr,
        host_key,
        bootstrap,
        data_dir,
        task,
        runner,
        supervisors,
        slots,
    })
}

/// Key exchanges offered: the post-quantum hybrid first (OpenSSH 9.9 and
/// later choose it); curve25519 for older clients (ssh-audit notes that it
/// is not post-quantum: the documented exception of its test); no
/// finite-field Diffie-Hellman, whose cheap-to-ask, costly-to-answer
/// exchanges invite the DHEat attack; the extension and strict-kex markers.
const KEX: &[russh::kex::Name] = &[
    russh::kex::MLKEM768X25519_SHA256,
    russh::kex::CURVE25519,
    russh::kex::EXTENSION_SUPPORT_AS_SERVER,
    russh::kex::EXTENSION_OPENSSH_STRICT_KEX_AS_SERVER,
];

/// Ciphers offered: authenticated encryption first, counter mode for old
/// clients (with encrypt-then-MAC only).
const CIPHERS: &[russh::cipher::Name] = &[
    russh::cipher::CHACHA20_POLY1305,
    russh::cipher::AES_256_GCM,
    russh::cipher::AES_128_GCM,
    russh::cipher::AES_256_CTR,
    russh::cipher::AES_192_CTR,
    russh::cipher::AES_128_CTR,
];

/// MACs offered: encrypt-then-MAC only.
const MACS: &[russh::mac::Name] = &[russh::mac::HMAC_SHA512_ETM, russh::mac::HMAC_SHA256_ETM];

fn russh_config(config: &Config, host_key: &HostKey) -> russh::server::Config {
    let server = &config.server;
    russh::server::Config {
        methods: MethodSet::from(&[MethodKind::PublicKey][..]),
        preferred: russh::Preferred {
            kex: std::borrow::Cow::Borrowed(KEX),
            cipher: std::borrow::Cow::Borrowed(CIPHERS),
            mac: std::borrow::Cow::Borrowed(MACS),
            ..russh::Preferred::default()
        },
        keys: vec![host_key.key.clone()],
        max_auth_attempts: server.max_auth_attempts as usize,
        auth_rejection_time: Duration::from_millis(300),
        auth_rejection_time_initial: Some(Duration::ZERO),
        inactivity_timeout: (server.idle_timeout_secs > 0)
            .then(|| Duration::from_secs(server.idle_timeout_secs)),
        // No keepalives: a client answering them would reset the inactivity
        // timer forever, so an idle connection would never be closed.
        keepalive_interval: None,
        nodelay: true,
        ..Default::default()
    }
}

/// The connection limits of the configuration.
fn limit_settings(config: &Config) -> LimitSettings {
    let s = &config.server;
    LimitSettings {
        max_startups: s.max_startups as usize,
        max_startups_per_source: s.max_startups_per_source as usize,
        penalize_sources: s.penalize_sources,
        max_connections: s.max_connections as usize,
        max_connections_per_user: s.max_connections_per_user as usize,
        max_connections_per_key: s.max_connections_per_key as usize,
        max_sessions: s.max_sessions as usize,
        max_sessions_per_user: s.max_sessions_per_user as usize,
        admin_reserve: s.admin_reserve as usize,
    }
}

/// Accepts connections forever: an accept error (e.g. out of file
/// descriptors) is logged and retried, never fatal. A connection is
/// admitted by the limits (see [`crate::ssh::ConnectionLimits`]) or told
/// why not and closed; one that has not logged in within
/// `server.login_grace_secs` is dropped; a removed user or key loses its
/// connections at once.
async fn accept_loop(
    listener: TcpListener,
    config: Arc<russh::server::Config>,
    shared: Arc<ServerShared>,
) -> std::io::Result<()> {
    let login_grace = Duration::from_secs(shared.config.server.login_grace_secs);
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!("accepting a connection failed: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let startup = match shared.limits.admit(peer.ip()) {
            Ok(slot) => slot,
            Err(why) => {
                tracing::debug!(peer = %peer, "refused connection: {why}");
                refuse(socket, why.banner());
                continue;
            }
        };
        let _ = socket.set_nodelay(true);
        let handler = ConnectionHandler::new(Arc::clone(&shared), Some(peer));
        let mut authenticated = handler.authenticated();
        let config = Arc::clone(&config);
        let lab = shared.lab.clone();
        let limit_refused = handler.limit_refused();
        tokio::spawn(async move {
            // The login time starts at once: a client that sends not even
            // its version line holds its slot no longer than one that stalls later.
            let login_deadline = tokio::time::sleep(login_grace);
            tokio::pin!(login_deadline);
            let mut startup = Some(startup);
            let started = tokio::select! {
                started = russh::server::run_stream(config, socket, handler) => started,
                _ = &mut login_deadline => {
                    if let Some(slot) = &mut startup {
                        slot.overstayed();
                    }
                    tracing::warn!(peer = %peer, "dropped connection: no version line within {} s", login_grace.as_secs());
                    return;
                }
            };
            let session = match started {
                Ok(session) => session,
                Err(e) => {
                    tracing::debug!(peer = %peer, "connection setup failed: {e}");
                    return;
                }
            };
            let handle = session.handle();
            let mut revocations = lab.revocations();
            tokio::pin!(session);
            let mut watching = true;
            let farewell = loop {
                tokio::select! {
                    result = &mut session => {
                        if let Err(e) = result {
                            tracing::debug!(peer = %peer, "connection ended: {e}");
                        }
                        excuse_if_refused_by_limit(&mut startup, &limit_refused);
                        return;
                    }
                    changed = authenticated.changed(), if startup.is_some() => {
                        if changed.is_ok() && authenticated.borrow().is_some()
                            && let Some(slot) = startup.take()
                        {
                            slot.logged_in();
                        }
                    }
                    _ = &mut login_deadline, if startup.is_some() => {
                        tracing::warn!(peer = %peer, "dropped connection: no login within {} s", login_grace.as_secs());
                        if let Some(slot) = &mut startup {
                            slot.overstayed();
                        }
                        break "authentication took too long".to_string();
                    }
                    // A removed user or key loses its open connections at once.
                    changed = revocations.changed(), if watching => {
                        if changed.is_err() {
                            watching = false;
                            continue;
                        }
                        let who = authenticated.borrow().clone();
                        if let Some(Err(e)) = who.map(|p| lab.current(&p))
                            && e.is_refusal()
                        {
                            tracing::info!(peer = %peer, "closed connection: {e}");
                            break e.to_string();
                        }
                    }
                }
            };
            let _ = handle
                .disconnect(russh::Disconnect::ByApplication, farewell, String::new())
                .await;
            if let Err(e) = session.await {
                tracing::debug!(peer = %peer, "connection ended: {e}");
            }
            excuse_if_refused_by_limit(&mut startup, &limit_refused);
        });
    }
}

/// A connection whose login was refused for its user's or key's limit ends
/// at no cost to its source.
fn excuse_if_refused_by_limit(
    startup: &mut Option<crate::ssh::StartupSlot>,
    refused: &std::sync::atomic::AtomicBool,
) {
    if refused.load(std::sync::atomic::Ordering::Acquire)
        && let Some(slot) = startup
    {
        slot.excuse();
    }
}

/// Tells a refused client why, as OpenSSH does in place of its banner, and
/// closes the connection (without waiting on the client).
fn refuse(socket: tokio::net::TcpStream, banner: &'static [u8]) {
    let _ = socket.try_write(banner);
    drop(socket);
}

/// The queue defaults of the configuration (already validated).
pub fn queue_settings(config: &Config) -> QueueSettings {
    let q = &config.queue;
    QueueSettings {
        default_cpus: f64::from(q.default_cpus),
        default_memory_bytes: q.default_memory.0,
        default_time_secs: q.default_time.0,
        disk_reserve_bytes: q.disk_reserve.0,
        run_refusal: run_refusal(crate::sys::process::is_root(), q.run_as_daemon_user),
        max_output_bytes: q.max_output.0,
        max_queued_per_user: q.max_queued_per_user,
        single_user: (!crate::sys::process::is_root() && q.run_as_daemon_user).then(invoking_user),
        default_project: Some(config.notebook.default_project.trim().to_string())
            .filter(|p| !p.is_empty()),
    }
}

/// The rates and the zone of months `[costs]` sets.
pub fn cost_settings(config: &Config) -> crate::lab::CostSettings {
    let c = &config.costs;
    crate::lab::CostSettings {
        rates: crate::model::CostRates {
            currency: c.currency.clone(),
            cpu_hour: c.cpu_hour,
            gib_hour: c.gib_hour,
            gpu_hour: c.gpu_hour,
            gpu_models: c.gpu_models.clone().into_iter().collect(),
        },
        zone: if c.time_zone == "UTC" {
            crate::lab::CostZone::Utc
        } else {
            crate::lab::CostZone::Local
        },
        budget_action: if c.budget_action == "notify" {
            crate::lab::BudgetAction::Notify
        } else {
            crate::lab::BudgetAction::Hold
        },
    }
}

/// Idle detection's rule from `[idle]` (`None` when it is off).
pub fn idle_rule(config: &Config) -> Option<crate::monitor::idle::IdleRule> {
    let i = &config.idle;
    i.enabled.then(|| crate::monitor::idle::IdleRule {
        gpu_percent: i.gpu_percent,
        cpu_percent: i.cpu_percent,
        after_secs: i.after.0 as i64,
        cancel_after_secs: (i.action == "cancel").then_some(i.cancel_after.0 as i64),
    })
}

/// Why no experiment may run, for a daemon that is not root and was not
/// put in single-user mode: experiments would run as the daemon's own user
/// and could read its database and keys.
fn run_refusal(as_root: bool, run_as_daemon_user: bool) -> Option<String> {
    (!as_root && !run_as_daemon_user).then(|| {
        format!(
            "labbench runs as {}, not as root, so experiments would run as the daemon's own \
             user and could read its data and keys; an admin can allow that for a host used by \
             one person (queue.run_as_daemon_user = true in the configuration: single-user \
             mode), or run labbench as root",
            invoking_user()
        )
    })
}

/// Generates the admin key pair in the invoking user's `~/.ssh` (never in
/// the data directory, where experiments could reach it); returns (public
/// line, private path).
fn generate_admin_key(home: Option<&Path>) -> Result<(String, PathBuf), String> {
    let home = home.ok_or(
        "no admin key was given and HOME is not set: pass --admin-key FILE or set \
         bootstrap.initial_admin_keys",
    )?;
    let ssh_dir = home.join(".ssh");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&ssh_dir)
        .map_err(|e| format!("cannot create {}: {e}", ssh_dir.display()))?;
    let path = ssh_dir.join(GENERATED_ADMIN_KEY);
    let key = generate_ed25519("labbench admin").map_err(|e| e.to_string())?;
    write_private_key(&path, &key).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    let public = key.public_key().to_openssh().map_err(|e| e.to_string())?;
    std::fs::write(path.with_extension("pub"), format!("{public}\n"))
        .map_err(|e| format!("cannot write public key: {e}"))?;
    Ok((public, path))
}

/// The name of the Unix user running this process.
pub fn invoking_user() -> String {
    let uid = std::fs::metadata("/proc/self").map(|m| m.uid()).ok();
    let from_passwd = uid.and_then(|uid| {
        std::fs::read_to_string("/etc/passwd")
            .ok()?
            .lines()
            .find_map(|line| {
                let mut fields = line.split(':');
                let name = fields.next()?;
                let id: u32 = fields.nth(1)?.parse().ok()?;
                (id == uid).then(|| name.to_string())
            })
    });
    from_passwd
        .or_else(|| std::env::var("USER").ok())
        .filter(|n| crate::model::validate_user_name(n).is_ok())
        .unwrap_or_else(|| "admin".into())
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// How the runner captures provenance, from the `[notebook]` settings;
/// `program` is the labbench binary (its `__provenance` helper).
fn provenance_settings(
    notebook: &crate::config::NotebookConfig,
    program: std::path::PathBuf,
    slots: Option<Arc<crate::exec::cgroup::Slots>>,
) -> crate::runner::ProvenanceSettings {
    crate::runner::ProvenanceSettings::new(
        notebook.provenance.then_some(program),
        crate::provenance::Limits {
            diff_bytes: notebook.max_diff.0,
            files: notebook.max_hashed_files as usize,
            ..crate::provenance::Limits::default()
        },
        Duration::from_secs(notebook.provenance_timeout.0),
        crate::sys::process::is_root(),
        slots,
    )
}

//! Configuration: the documented default file, lookup, parsing and validation.
//!
//! Owns turning `config/labbench.toml` (or a user's file) into a checked
//! [`Config`]. Errors name the offending key and, where known, its line.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Largest git diff kept per experiment (`notebook.max_diff` at most).
pub const MAX_DIFF_BYTES: u64 = 16 << 20;

/// The documented default configuration, embedded in the binary.
pub const DEFAULT_CONFIG_TOML: &str = include_str!("../config/labbench.toml");

/// Environment variable naming a configuration file.
pub const CONFIG_ENV: &str = "LABBENCH_CONFIG";

/// The whole configuration of a labbench server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Directory of the database and host key.
    pub data_dir: PathBuf,
    /// SSH server settings.
    pub server: ServerConfig,
    /// First-start admin bootstrap.
    pub bootstrap: BootstrapConfig,
    /// Full-screen interface settings.
    pub tui: TuiConfig,
    /// Usage sampling and retention.
    pub monitor: MonitorConfig,
    /// Experiment queue defaults and limits.
    pub queue: QueueConfig,
    /// What the lab notebook captures of each experiment.
    pub notebook: NotebookConfig,
    /// What compute costs.
    pub costs: CostsConfig,
    /// Idle reservations: when one is flagged, and what is done then.
    pub idle: IdleConfig,
    /// The login-node guard: caps outside the queue, and the penalty box.
    pub host_limits: HostLimitsConfig,
}

/// The login-node guard (caps themselves are set with `hostlimit`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HostLimitsConfig {
    /// Run the guard.
    pub enabled: bool,
    /// CPU use at or over this share of a user's cap, percent, is overuse.
    pub penalty_over_percent: f64,
    /// How long unbroken overuse lasts before the penalty.
    pub penalty_after: Secs,
    /// The CPU cap during a penalty, percent of the usual one.
    pub penalty_cpus_percent: f64,
    /// How long a penalty lasts.
    pub penalty_for: Secs,
}

impl Default for HostLimitsConfig {
    fn default() -> Self {
        Config::default().host_limits
    }
}

/// Idle reservations: a running experiment whose GPUs (or, without GPUs,
/// CPUs) stay under a threshold for a while.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdleConfig {
    /// Watch running experiments.
    pub enabled: bool,
    /// A GPU at or over this utilisation, percent, is busy.
    pub gpu_percent: u32,
    /// CPU use at or over this share of the request, percent, is busy.
    pub cpu_percent: f64,
    /// How long without a busy reading before an experiment is idle.
    pub after: Secs,
    /// What then: `notify` (the owner and admins), or `cancel` after
    /// `cancel_after`.
    pub action: String,
    /// How long after the flag an idle experiment is cancelled.
    pub cancel_after: Secs,
}

impl Default for IdleConfig {
    fn default() -> Self {
        Config::default().idle
    }
}

/// What compute costs: prices per hour, and the zone of months.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CostsConfig {
    /// What the prices are in (a label).
    pub currency: String,
    /// Price of a CPU core for an hour.
    pub cpu_hour: f64,
    /// Price of a GiB of memory for an hour.
    pub gib_hour: f64,
    /// Price of a GPU for an hour.
    pub gpu_hour: f64,
    /// Prices of a GPU for an hour by model (a key the model's name
    /// contains: `H100`), instead of `gpu_hour`.
    pub gpu_models: std::collections::BTreeMap<String, f64>,
    /// The zone whose months costs are counted in: `local` (the host's)
    /// or `UTC`.
    pub time_zone: String,
    /// What a spent budget does: `hold` new submissions, or `notify` only.
    pub budget_action: String,
}

impl Default for CostsConfig {
    fn default() -> Self {
        Config::default().costs
    }
}

/// What the lab notebook captures of each experiment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotebookConfig {
    /// Capture provenance (git state, input and output hashes,
    /// interpreters, dependencies, data sources) as the owner's user.
    pub provenance: bool,
    /// Longest one capture may take (`10m`): hashing large inputs dominates.
    pub provenance_timeout: Secs,
    /// Most bytes of an experiment's `git diff HEAD` kept (`1M`).
    pub max_diff: Size,
    /// Most files hashed under one declared directory.
    pub max_hashed_files: u32,
    /// The project of an experiment that names none with `--project` and
    /// does not run in a git repository (empty: none).
    pub default_project: String,
}

/// A size as a configuration file writes it (`4G`, `256M`, `0`), in bytes;
/// it is parsed as the file is read, so a bad one is reported with its key
/// and line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub u64);

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Size, D::Error> {
        let text = String::deserialize(d)?;
        let number: String = text
            .trim()
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        // Zero in any unit is zero (parse_size takes only sizes of 1 byte up).
        if number.parse::<f64>() == Ok(0.0) {
            return Ok(Size(0));
        }
        crate::model::parse_size(&text)
            .map(Size)
            .map_err(serde::de::Error::custom)
    }
}

impl Serialize for Size {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_string())
    }
}

/// A duration as a configuration file writes it (`24h`, `90m`), in seconds,
/// at most 365 days; parsed as the file is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Secs(pub u64);

impl<'de> Deserialize<'de> for Secs {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Secs, D::Error> {
        let text = String::deserialize(d)?;
        crate::model::parse_duration(&text)
            .map(Secs)
            .map_err(serde::de::Error::custom)
    }
}

impl Serialize for Secs {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}s", self.0))
    }
}

/// Experiment queue defaults and limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// CPU cores of an experiment that asks for none.
    pub default_cpus: u32,
    /// Memory of an experiment that asks for none (`4G`).
    pub default_memory: Size,
    /// Wall-time limit of an experiment that asks for none (`24h`).
    pub default_time: Secs,
    /// Most processes one experiment may have at once.
    pub max_processes: u32,
    /// Seconds between SIGTERM and SIGKILL when an experiment is stopped.
    pub kill_grace_secs: u64,
    /// Confine experiments in cgroups when the host allows it.
    pub cgroups: bool,
    /// Space kept free on the data disk (`256M`; `0`: none): below it,
    /// submissions are refused and nothing starts.
    pub disk_reserve: Size,
    /// Run experiments as the daemon's own user when it is not root
    /// (single-user mode); without it such a daemon runs none.
    pub run_as_daemon_user: bool,
    /// Most output one experiment may write (`10G`); admins may allow more.
    pub max_output: Size,
    /// Most experiments one user may have queued at once (a quota may say otherwise).
    pub max_queued_per_user: u32,
}

/// Settings of the embedded SSH server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Listen address, `ADDR:PORT`.
    pub listen: String,
    /// Required SSH user name.
    pub ssh_user: String,
    /// Authentication attempts per connection.
    pub max_auth_attempts: u32,
    /// Simultaneous connections per key.
    pub max_connections_per_key: u32,
    /// Simultaneous connections per lab user.
    pub max_connections_per_user: u32,
    /// Simultaneous sessions on the server.
    pub max_sessions: u32,
    /// Simultaneous sessions per lab user.
    pub max_sessions_per_user: u32,
    /// Simultaneous logged-in connections.
    pub max_connections: u32,
    /// Connections and sessions (of the totals) kept for admins.
    pub admin_reserve: u32,
    /// Connections not logged in yet, in all.
    pub max_startups: u32,
    /// Connections not logged in yet, from one address.
    pub max_startups_per_source: u32,
    /// Refuse for a while sources whose connections end without logging in.
    pub penalize_sources: bool,
    /// Seconds a connection has to log in.
    pub login_grace_secs: u64,
    /// Simultaneous sessions (channels) on one connection.
    pub max_channels_per_connection: u32,
    /// Idle seconds before disconnect (0: never).
    pub idle_timeout_secs: u64,
    /// Longest exec command, bytes.
    pub max_exec_command_bytes: u32,
    /// Most bytes of standard input a command reads.
    pub max_stdin_bytes: u32,
}

/// Who becomes the first admin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BootstrapConfig {
    /// OpenSSH public key lines or paths to `.pub` files.
    pub initial_admin_keys: Vec<String>,
    /// Admin user name; empty means the invoking Unix user.
    pub initial_admin_name: String,
    /// The admin's Unix account; empty: none as root (set one later),
    /// the invoking user otherwise.
    pub initial_admin_unix_user: String,
}

/// Settings of the full-screen interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TuiConfig {
    /// Idle redraw period in milliseconds.
    pub refresh_ms: u64,
}

/// Usage sampling and retention.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MonitorConfig {
    /// Milliseconds between samples.
    pub sample_ms: u64,
    /// `nvml`, `none` or `replay:FILE`.
    pub gpu_source: String,
    /// Days of 1-minute buckets kept.
    pub keep_minutes_days: u32,
    /// Days of 1-hour buckets kept.
    pub keep_hours_days: u32,
}

/// A configuration that could not be read or is invalid.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has a value of the wrong type.
    #[error("config {origin}{line}: {key}{message}")]
    Parse {
        /// File name or "built-in defaults".
        origin: String,
        /// `" line N"` where known.
        line: String,
        /// "key `a.b`: " where known.
        key: String,
        /// The parser's explanation.
        message: String,
    },
    /// A value parsed but is not acceptable.
    #[error("config {origin}{line}: key `{key}`: {message}")]
    Invalid {
        /// File name or "built-in defaults".
        origin: String,
        /// `" line N"` where known.
        line: String,
        /// Dotted key.
        key: String,
        /// What is wrong and what would be right.
        message: String,
    },
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("labbench-data"),
            server: ServerConfig {
                listen: "0.0.0.0:2222".into(),
                ssh_user: "lab".into(),
                max_auth_attempts: 6,
                max_connections_per_key: 16,
                max_connections_per_user: 32,
                max_sessions: 512,
                max_sessions_per_user: 64,
                max_connections: 1024,
                admin_reserve: 4,
                max_startups: 64,
                max_startups_per_source: 8,
                penalize_sources: true,
                login_grace_secs: 10,
                max_channels_per_connection: 16,
                idle_timeout_secs: 3600,
                max_exec_command_bytes: 8192,
                max_stdin_bytes: 65536,
            },
            bootstrap: BootstrapConfig {
                initial_admin_keys: Vec::new(),
                initial_admin_name: String::new(),
                initial_admin_unix_user: String::new(),
            },
            tui: TuiConfig { refresh_ms: 1000 },
            monitor: MonitorConfig {
                sample_ms: 1000,
                gpu_source: "nvml".into(),
                keep_minutes_days: 7,
                keep_hours_days: 400,
            },
            queue: QueueConfig {
                default_cpus: 1,
                default_memory: Size(4 << 30),
                default_time: Secs(24 * 3600),
                max_processes: 4096,
                kill_grace_secs: 10,
                cgroups: true,
                disk_reserve: Size(256 << 20),
                run_as_daemon_user: false,
                max_output: Size(10 << 30),
                max_queued_per_user: 1000,
            },
            notebook: NotebookConfig {
                provenance: true,
                provenance_timeout: Secs(600),
                max_diff: Size(1 << 20),
                max_hashed_files: 100_000,
                default_project: String::new(),
            },
            costs: CostsConfig {
                currency: "USD".into(),
                cpu_hour: 0.0,
                gib_hour: 0.0,
                gpu_hour: 0.0,
                gpu_models: Default::default(),
                time_zone: "local".into(),
                budget_action: "hold".into(),
            },
            idle: IdleConfig {
                enabled: true,
                gpu_percent: 5,
                cpu_percent: 5.0,
                after: Secs(3600),
                action: "notify".into(),
                cancel_after: Secs(crate::monitor::idle::DEFAULT_CANCEL_AFTER_SECS as u64),
            },
            host_limits: HostLimitsConfig {
                enabled: false,
                penalty_over_percent: 90.0,
                penalty_after: Secs(600),
                penalty_cpus_percent: 50.0,
                penalty_for: Secs(1800),
            },
        }
    }
}

impl Default for NotebookConfig {
    fn default() -> Self {
        Config::default().notebook
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Config::default().server
    }
}

impl Default for BootstrapConfig {
    fn default() -> Self {
        Config::default().bootstrap
    }
}

impl Default for QueueConfig {
    fn default() -> Self {
        Config::default().queue
    }
}

impl Default for MonitorConfig {
    fn default() -> Self {
        Config::default().monitor
    }
}

impl Default for TuiConfig {
    fn default() -> Self {
        Config::default().tui
    }
}

impl Config {
    /// Loads the configuration: `explicit` file, else `$LABBENCH_CONFIG`, else defaults.
    pub fn load(explicit: Option<&Path>) -> Result<Config, ConfigError> {
        let from_env = std::env::var_os(CONFIG_ENV).filter(|v| !v.is_empty());
        match explicit
            .map(Path::to_path_buf)
            .or_else(|| from_env.map(PathBuf::from))
        {
            Some(path) => {
                let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                Config::parse(&text, &path.display().to_string())
            }
            None => Ok(Config::default()),
        }
    }

    /// Parses and validates TOML text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| parse_error(text, origin, &e))?;
        config.validate(text, origin)?;
        Ok(config)
    }

    /// The listen address as a socket address.
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.server
            .listen
            .parse()
            .map_err(|_| ConfigError::Invalid {
                origin: "flags".into(),
                line: String::new(),
                key: "server.listen".into(),
                message: format!(
                    "{:?} is not an ADDR:PORT such as 0.0.0.0:2222",
                    self.server.listen
                ),
            })
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self, text: &str, origin: &str) -> Result<(), ConfigError> {
        let invalid = |section: &str, key: &str, message: String| ConfigError::Invalid {
            origin: origin.to_string(),
            line: line_of_key(text, section, key)
                .map(|n| format!(" line {n}"))
                .unwrap_or_default(),
            key: if section.is_empty() {
                key.to_string()
            } else {
                format!("{section}.{key}")
            },
            message,
        };
        if self.data_dir.as_os_str().is_empty() {
            return Err(invalid("", "data_dir", "must not be empty".into()));
        }
        let s = &self.server;
        if s.listen.parse::<SocketAddr>().is_err() {
            return Err(invalid(
                "server",
                "listen",
                format!("{:?} is not an ADDR:PORT such as 0.0.0.0:2222", s.listen),
            ));
        }
        if s.ssh_user.is_empty() || s.ssh_user.chars().any(|c| c.is_whitespace()) {
            return Err(invalid(
                "server",
                "ssh_user",
                "must be a non-empty name without spaces".into(),
            ));
        }
        let positive: [(&str, u64); 12] = [
            ("max_auth_attempts", s.max_auth_attempts.into()),
            ("max_connections_per_key", s.max_connections_per_key.into()),
            (
                "max_connections_per_user",
                s.max_connections_per_user.into(),
            ),
            ("max_sessions", s.max_sessions.into()),
            ("max_sessions_per_user", s.max_sessions_per_user.into()),
            ("max_connections", s.max_connections.into()),
            ("max_startups", s.max_startups.into()),
            ("max_startups_per_source", s.max_startups_per_source.into()),
            ("login_grace_secs", s.login_grace_secs),
            (
                "max_channels_per_connection",
                s.max_channels_per_connection.into(),
            ),
            ("max_exec_command_bytes", s.max_exec_command_bytes.into()),
            ("max_stdin_bytes", s.max_stdin_bytes.into()),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(invalid("server", key, "must be at least 1".into()));
            }
        }
        for (key, total) in [
            ("max_sessions", s.max_sessions),
            ("max_connections", s.max_connections),
        ] {
            if s.admin_reserve >= total {
                return Err(invalid(
                    "server",
                    "admin_reserve",
                    format!(
                        "{} leaves no {key} for members and viewers",
                        s.admin_reserve
                    ),
                ));
            }
        }
        if !(50..=60_000).contains(&self.tui.refresh_ms) {
            return Err(invalid(
                "tui",
                "refresh_ms",
                format!(
                    "{} is out of range: use 50 to 60000 milliseconds",
                    self.tui.refresh_ms
                ),
            ));
        }
        if s.idle_timeout_secs > 30 * 86_400 {
            return Err(invalid(
                "server",
                "idle_timeout_secs",
                format!(
                    "{} is too long: use at most 2592000 (30 days), or 0 for none",
                    s.idle_timeout_secs
                ),
            ));
        }
        for entry in &self.bootstrap.initial_admin_keys {
            let first = entry.split_whitespace().next().unwrap_or("");
            let looks_like_key = first.starts_with("ssh-") || first.starts_with("ecdsa-");
            if looks_like_key && let Err(e) = crate::model::PublicKeyInfo::parse(entry) {
                return Err(invalid("bootstrap", "initial_admin_keys", e.to_string()));
            }
            if !looks_like_key && !std::path::Path::new(entry).is_file() {
                return Err(invalid(
                    "bootstrap",
                    "initial_admin_keys",
                    format!("{entry:?} is neither a public key line nor a readable .pub file"),
                ));
            }
        }
        let m = &self.monitor;
        if !(100..=60_000).contains(&m.sample_ms) {
            return Err(invalid(
                "monitor",
                "sample_ms",
                format!(
                    "{} is out of range: use 100 to 60000 milliseconds",
                    m.sample_ms
                ),
            ));
        }
        if let Err(e) = m.gpu_source.parse::<crate::monitor::GpuSourceSpec>() {
            return Err(invalid("monitor", "gpu_source", e));
        }
        if m.keep_minutes_days < 7 {
            return Err(invalid(
                "monitor",
                "keep_minutes_days",
                "must be at least 7 (the longest peak window)".into(),
            ));
        }
        if m.keep_hours_days == 0 {
            return Err(invalid(
                "monitor",
                "keep_hours_days",
                "must be at least 1".into(),
            ));
        }
        let q = &self.queue;
        if q.default_cpus == 0 {
            return Err(invalid(
                "queue",
                "default_cpus",
                "must be at least 1".into(),
            ));
        }
        for (key, size) in [
            ("default_memory", q.default_memory),
            ("max_output", q.max_output),
        ] {
            if size.0 == 0 {
                return Err(invalid("queue", key, "must be more than 0".into()));
            }
        }
        if q.default_time.0 == 0 {
            return Err(invalid(
                "queue",
                "default_time",
                "must be more than 0".into(),
            ));
        }
        if q.max_processes < 8 {
            return Err(invalid(
                "queue",
                "max_processes",
                "must be at least 8".into(),
            ));
        }
        let c = &self.costs;
        if c.currency.is_empty()
            || c.currency.chars().count() > 16
            || c.currency.chars().any(|ch| ch.is_control())
        {
            return Err(invalid(
                "costs",
                "currency",
                "1–16 printable characters (EUR, USD, credits)".into(),
            ));
        }
        let models = c.gpu_models.values().copied();
        for (key, rate) in [
            ("cpu_hour", c.cpu_hour),
            ("gib_hour", c.gib_hour),
            ("gpu_hour", c.gpu_hour),
        ]
        .into_iter()
        .chain(models.map(|rate| ("gpu_models", rate)))
        {
            if !rate.is_finite() || rate < 0.0 {
                return Err(invalid(
                    "costs",
                    key,
                    format!("{rate} is not a price (0 or more)"),
                ));
            }
        }
        if !["hold", "notify"].contains(&c.budget_action.as_str()) {
            return Err(invalid(
                "costs",
                "budget_action",
                format!(
                    "{:?}: hold (new submissions wait) or notify",
                    c.budget_action
                ),
            ));
        }
        if !["local", "UTC"].contains(&c.time_zone.as_str()) {
            return Err(invalid(
                "costs",
                "time_zone",
                format!("{:?}: local (the host's zone) or UTC", c.time_zone),
            ));
        }
        let i = &self.idle;
        if i.gpu_percent > 100 {
            return Err(invalid("idle", "gpu_percent", "a percentage, 0–100".into()));
        }
        if !i.cpu_percent.is_finite() || !(0.0..=100.0).contains(&i.cpu_percent) {
            return Err(invalid(
                "idle",
                "cpu_percent",
                "a percentage of the request, 0–100".into(),
            ));
        }
        let h = &self.host_limits;
        for (key, value) in [
            ("penalty_over_percent", h.penalty_over_percent),
            ("penalty_cpus_percent", h.penalty_cpus_percent),
        ] {
            if !value.is_finite() || !(1.0..=100.0).contains(&value) {
                return Err(invalid("host_limits", key, "a percentage, 1–100".into()));
            }
        }
        if !["notify", "cancel"].contains(&i.action.as_str()) {
            return Err(invalid(
                "idle",
                "action",
                format!("{:?}: notify or cancel", i.action),
            ));
        }
        if self.notebook.max_diff.0 > MAX_DIFF_BYTES {
            return Err(invalid(
                "notebook",
                "max_diff",
                format!(
                    "at most {}",
                    crate::units::short_bytes(MAX_DIFF_BYTES as f64)
                ),
            ));
        }
        for (key, name) in [
            ("initial_admin_name", &self.bootstrap.initial_admin_name),
            (
                "initial_admin_unix_user",
                &self.bootstrap.initial_admin_unix_user,
            ),
        ] {
            if !name.is_empty() && crate::model::validate_user_name(name).is_err() {
                return Err(invalid(
                    "bootstrap",
                    key,
                    format!("{name:?} is not a valid user name (letters, digits, '.', '_', '-')"),
                ));
            }
        }
        Ok(())
    }
}

/// Builds a parse error naming the key and line from the parser's span.
fn parse_error(text: &str, origin: &str, error: &toml::de::Error) -> ConfigError {
    let line_no = error
        .span()
        .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
    let key = line_no
        .and_then(|n| key_at_line(text, n))
        .map(|k| format!("key `{k}`: "))
        .unwrap_or_default();
    ConfigError::Parse {
        origin: origin.to_string(),
        line: line_no.map(|n| format!(" line {n}")).unwrap_or_default(),
        key,
        message: error.message().trim().to_string(),
    }
}

/// The dotted key assigned on line `line_no` (1-based), if that line assigns one.
fn key_at_line(text: &str, line_no: usize) -> Option<String> {
    let mut section = String::new();
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if let Some(header) = trimmed.strip_prefix('[') {
            section = header.trim_end_matches(']').trim().to_string();
        }
        if index + 1 == line_no {
            let (key, _) = trimmed.split_once('=')?;
            let key = key.trim();
            return Some(if section.is_empty() {
                key.to_string()
            } else {
                format!("{section}.{key}")
            });
        }
    }
    None
}

/// The 1-based line on which `section.key` is assigned, if it is.
fn line_of_key(text: &str, section: &str, key: &str) -> Option<usize> {
    let mut current = String::new();
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if let Some(header) = trimmed.strip_prefix('[') {
            current = header.trim_end_matches(']').trim().to_string();
            continue;
        }
        if current == section
            && let Some((k, _)) = trimmed.split_once('=')
            && k.trim() == key
        {
            return Some(index + 1);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_are_typed_as_the_file_is_read() {
        let config = Config::parse(
            "[queue]\ndefault_memory = \"8G\"\ndefault_time = \"1h30m\"\ndisk_reserve = \"0M\"\n",
            "t.toml",
        )
        .expect("parses");
        assert_eq!(config.queue.default_memory, Size(8 << 30));
        assert_eq!(config.queue.default_time, Secs(5400));
        assert_eq!(config.queue.disk_reserve, Size(0));
        let bad = Config::parse("[queue]\n\nmax_output = \"lots\"\n", "t.toml")
            .expect_err("refused")
            .to_string();
        assert!(
            bad.contains("line 3") && bad.contains("queue.max_output"),
            "{bad}"
        );
        assert!(bad.contains("expected a size like 512M or 8G"), "{bad}");
        let zero = Config::parse("[queue]\ndefault_memory = \"0\"\n", "t.toml")
            .expect_err("refused")
            .to_string();
        assert!(
            zero.contains("queue.default_memory") && zero.contains("more than 0"),
            "{zero}"
        );
        let long = Config::parse("[queue]\ndefault_time = \"400d\"\n", "t.toml")
            .expect_err("refused")
            .to_string();
        assert!(long.contains("365d"), "{long}");
    }

    #[test]
    fn documented_default_file_equals_builtin_defaults() {
        let parsed = Config::parse(DEFAULT_CONFIG_TOML, "config/labbench.toml")
            .expect("default config parses");
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn wrong_type_names_key_and_line() {
        let text = "data_dir = \"d\"\n[server]\nmax_sessions = \"many\"\n";
        let err = Config::parse(text, "bad.toml").expect_err("must fail");
        let msg = err.to_string();
        assert!(msg.contains("bad.toml line 3"), "{msg}");
        assert!(msg.contains("server.max_sessions"), "{msg}");
    }

    #[test]
    fn unknown_key_is_rejected_with_its_name() {
        let text = "[server]\nlisten_port = 22\n";
        let msg = Config::parse(text, "x.toml")
            .expect_err("must fail")
            .to_string();
        assert!(msg.contains("listen_port"), "{msg}");
        assert!(msg.contains("line 2"), "{msg}");
    }

    #[test]
    fn invalid_value_names_key_and_line() {
        let text = "[server]\nlisten = \"nowhere\"\n";
        let msg = Config::parse(text, "x.toml")
            .expect_err("must fail")
            .to_string();
        assert_eq!(
            msg,
            "config x.toml line 2: key `server.listen`: \"nowhere\" is not an ADDR:PORT such as 0.0.0.0:2222"
        );
    }

    #[test]
    fn zero_limits_are_refused() {
        let text = "[server]\nmax_sessions = 0\n";
        let msg = Config::parse(text, "x.toml")
            .expect_err("must fail")
            .to_string();
        assert!(msg.contains("server.max_sessions"), "{msg}");
        assert!(msg.contains("at least 1"), "{msg}");
    }

    #[test]
    fn partial_file_keeps_other_defaults() {
        let config = Config::parse("[tui]\nrefresh_ms = 250\n", "x.toml").expect("parses");
        assert_eq!(config.tui.refresh_ms, 250);
        assert_eq!(config.server, Config::default().server);
    }
}

//! The `labbench` binary: `labbench serve`, or a command run locally as the admin.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use labbench::cli::{LabCommand, StdinSource, exit, run_command};
use labbench::config::Config;
use labbench::lab::{BootstrapSource, Lab};
use labbench::monitor::{GpuSourceSpec, HostSampler, NoGpu, host_only, measure_once};
use labbench::server::{RunningServer, ServeError};
use labbench::store::{Store, StoreError};

#[derive(Debug, Parser)]
#[command(
    name = "labbench",
    version,
    about = "A workbench for a shared compute host, reached with `ssh lab@host`.",
    after_help = "Run `labbench serve` to start the server; other commands act locally on the data directory as the admin (only while no server holds it)."
)]
struct Cli {
    /// Configuration file (else $LABBENCH_CONFIG, else built-in defaults).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory (overrides `data_dir`).
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: TopCommand,
}

#[derive(Debug, Subcommand)]
enum TopCommand {
    /// Run the SSH server.
    Serve {
        /// Listen address (overrides `server.listen`).
        #[arg(long, value_name = "ADDR:PORT")]
        listen: Option<String>,
        /// Public key file of the first admin (first start only; repeatable).
        #[arg(long = "admin-key", value_name = "PUBKEY_FILE")]
        admin_keys: Vec<PathBuf>,
        /// GPU source: nvml, none or replay:FILE (overrides `monitor.gpu_source`).
        #[arg(long, value_name = "SOURCE")]
        gpu_source: Option<String>,
        /// The first admin's Unix account (first start only; overrides
        /// `bootstrap.initial_admin_unix_user`).
        #[arg(long, value_name = "USER")]
        admin_unix_user: Option<String>,
    },
    #[command(flatten)]
    Lab(LabCommand),
}

fn main() -> ExitCode {
    // The daemon's launcher, which forks experiment supervisors: `labbench __launcher`.
    if std::env::args().nth(1).as_deref() == Some("__launcher") {
        let code = labbench::exec::launcher::serve_stdin();
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    // The provenance helper, run as an experiment's owner: `labbench __provenance`.
    if std::env::args().nth(1).as_deref() == Some("__provenance") {
        let code = labbench::provenance::helper::serve_stdin();
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("LABBENCH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();

    let mut config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("labbench: {e}");
            return ExitCode::from(exit::USAGE as u8);
        }
    };
    if let Some(dir) = cli.data_dir {
        config.data_dir = dir;
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("labbench: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        TopCommand::Serve {
            listen,
            admin_keys,
            gpu_source,
            admin_unix_user,
        } => {
            if let Some(unix_user) = admin_unix_user {
                config.bootstrap.initial_admin_unix_user = unix_user;
            }
            if let Some(listen) = listen {
                config.server.listen = listen;
            }
            if let Some(source) = gpu_source {
                config.monitor.gpu_source = source;
            }
            if let Err(e) = config.validate("", "flags") {
                eprintln!("labbench: {e}");
                return ExitCode::from(exit::USAGE as u8);
            }
            runtime.block_on(serve(config, admin_keys))
        }
        TopCommand::Lab(command) => runtime.block_on(local(config, command)),
    }
}

async fn serve(config: Config, admin_keys: Vec<PathBuf>) -> ExitCode {
    let ssh_user = config.server.ssh_user.clone();
    let server = match labbench::server::start(config, &admin_keys).await {
        Ok(s) => s,
        Err(e @ (ServeError::Config(_) | ServeError::Gpu(_))) => {
            eprintln!("labbench: {e}");
            return ExitCode::from(exit::USAGE as u8);
        }
        Err(e) => {
            eprintln!("labbench: {e}");
            return ExitCode::FAILURE;
        }
    };
    print_banner(&server, &ssh_user);
    let RunningServer {
        lab,
        task,
        runner,
        supervisors,
        slots,
        ..
    } = server;
    let result = tokio::select! {
        r = task => r.context("server task failed").and_then(|r| r.context("server stopped")),
        _ = shutdown_signal() => {
            eprintln!("labbench: shutting down");
            Ok(())
        }
    };
    // The runner finishes what it was doing (a start half made, say) before
    // the cleanup below, so nothing it makes afterwards is left behind.
    // Every wait in a round has its own limit (the launcher's answers,
    // account lookups), so this wait ends.
    lab.stop_runner();
    if let Err(e) = runner.await {
        eprintln!("labbench: the experiment runner failed: {e}");
    }
    // The peaks of the minute and hour in progress survive the restart.
    lab.save_open_usage();
    let flushed = lab.store().flush();
    // Experiments still running keep their cgroups (a restart re-attaches);
    // idle supervisors end, and their slots go (even if the flush failed).
    supervisors.retire_all();
    slots.remove_all();
    // Supervisors that ended meanwhile were reparented to the daemon (a
    // subreaper) once the launcher had gone with the runner: reaped here,
    // since the runner no longer does.
    labbench::sys::process::reap_orphans();
    if let Err(e) = flushed {
        eprintln!("labbench: final flush failed: {e}");
        return ExitCode::FAILURE;
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("labbench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn print_banner(server: &RunningServer, ssh_user: &str) {
    println!(
        "labbench {} serving data directory {}",
        env!("CARGO_PKG_VERSION"),
        server.data_dir.display()
    );
    println!(
        "host key {} ({})",
        server.host_key.fingerprint,
        if server.host_key.created {
            "created"
        } else {
            "loaded"
        }
    );
    let mut identity = None;
    if let Some(report) = &server.bootstrap {
        println!(
            "first start: created admin {:?} with these keys:",
            report.admin
        );
        for (key, source) in &report.keys {
            println!("  {} {} ({source})", key.fingerprint, key.algorithm);
            if let BootstrapSource::Generated(path) = source {
                identity = Some(path.clone());
            }
        }
        match &report.unix_user {
            Some(unix_user) => println!(
                "{:?} runs experiments as unix user {unix_user}",
                report.admin
            ),
            None => println!(
                "{0:?} has no unix user yet, so cannot run experiments: set one with \
                 `user set-unix {0} UNIX_USER` (or --admin-unix-user on first start)",
                report.admin
            ),
        }
    }
    if let Some(why) = server.lab.run_refusal() {
        println!("no experiment will run: {why}");
    }
    let host = if server.addr.ip().is_unspecified() {
        HostSampler::default().sample().hostname
    } else {
        server.addr.ip().to_string()
    };
    let port = server.addr.port();
    println!("listening on {}", server.addr);
    let port_flag = if port == 22 {
        String::new()
    } else {
        format!("-p {port} ")
    };
    let identity_flag = identity
        .map(|p| format!("-i {} ", p.display()))
        .unwrap_or_default();
    let known_host = if port == 22 {
        host.clone()
    } else {
        format!("[{host}]:{port}")
    };
    println!(
        "known_hosts line: {known_host} {}",
        server.host_key.public_line
    );
    println!("connect with: ssh -t {identity_flag}{port_flag}{ssh_user}@{host}");
}

/// Streams command output to this process's stdout and stderr.
struct StdoutSink;

impl labbench::cli::StreamSink for StdoutSink {
    async fn out(&mut self, bytes: Vec<u8>) -> Result<(), ()> {
        use std::io::Write;
        std::io::stdout().write_all(&bytes).map_err(|_| ())
    }

    async fn err(&mut self, bytes: Vec<u8>) -> Result<(), ()> {
        use std::io::Write;
        std::io::stderr().write_all(&bytes).map_err(|_| ())
    }
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Runs a command on the host as the admin, with the data directory opened directly.
async fn local(config: Config, command: LabCommand) -> ExitCode {
    let store = match Store::open(&config.data_dir) {
        Ok(s) => s,
        Err(e @ StoreError::Locked(_)) => {
            eprintln!("labbench: {e}");
            eprintln!(
                "hint: while the server runs, use `ssh -p PORT {}@HOST {}`",
                config.server.ssh_user,
                command.name()
            );
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("labbench: {e}");
            return ExitCode::FAILURE;
        }
    };
    let gpu = config
        .monitor
        .gpu_source
        .parse::<GpuSourceSpec>()
        .and_then(|spec| spec.open())
        .unwrap_or_else(|e| Box::new(NoGpu(e)));
    let monitor = if command.needs_usage() {
        measure_once(&store, gpu, config.data_dir.clone(), Duration::from_secs(1))
    } else {
        host_only(gpu, config.data_dir.clone())
    };
    let settings = labbench::server::queue_settings(&config);
    let lab = Lab::new(store, monitor)
        .with_data_dir(config.data_dir.clone())
        .with_queue_settings(settings)
        .with_cost_settings(labbench::server::cost_settings(&config));
    let operator = match lab.local_operator() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("labbench: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let LabCommand::Logs(args) = &command {
        let mut sink = StdoutSink;
        let status = labbench::cli::logs::logs(&lab, &operator, args, &mut sink).await;
        return ExitCode::from(u8::try_from(status).unwrap_or(1));
    }
    let output = run_command(
        &lab,
        &operator,
        command,
        &mut StdinSource::Process,
        config.server.max_stdin_bytes as usize,
    )
    .await;
    use std::io::Write;
    let _ = std::io::stdout().write_all(&output.stdout);
    let _ = std::io::stderr().write_all(&output.stderr);
    ExitCode::from(u8::try_from(output.status).unwrap_or(1))
}

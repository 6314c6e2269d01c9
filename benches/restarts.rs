//! Restart torture: `cargo bench --bench restarts` (as root).
//!
//! N experiments (`LABBENCH_BENCH_RESTART_RUNS`, 500) each append their id
//! to one shared file and sleep 0.2 s, two at a time, while the daemon is
//! killed with SIGKILL K times (`LABBENCH_BENCH_KILLS`, 50), each time at a
//! random moment 0–1.5 s after it came up, and restarted on the same data
//! directory. Submissions are spread over the daemon's lives, paced to keep
//! a few experiments queued, and about one life in four sends its share in
//! a burst just before its kill: kills land during runs, during
//! submissions (some cut before their answer) and during the re-attachment
//! that follows a start. After a last, clean, life has run everything that
//! is left, it checks that every experiment whose submission returned an id
//! ended, that none ran twice, that no experiment or supervisor process is
//! left (the bench is the supervisors' subreaper, as init would be) and,
//! once the daemon has stopped, that labbench left nothing in the cgroup
//! tree. It prints one summary line (the outcome counts) and panics on any
//! violation, keeping the data directory, the daemon's logs
//! (`serve-NN.log`, INFO and up) and a timeline of its lives
//! (`LABBENCH_BENCH_KEEP=1` keeps them after a run without violations
//! too). `LABBENCH_BENCH_SEED` draws the same kill delays and bursts again
//! (the daemon's timing still varies).

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Client, ExecResult, TestKey, TestServer, env_count};
use russh::ChannelMsg;
use russh::client::{self, Handle};
use russh::keys::PrivateKeyWithHashAlg;

/// The Unix account the experiments run as: one of the bench's own, so
/// that a process of it can only be one of these experiments.
const EXPERIMENT_USER: &str = "lbrestart";
/// Longest delay between a daemon's start and its kill.
const MAX_KILL_DELAY: Duration = Duration::from_millis(1500);
/// Experiments kept queued or running while submitting: two run, two wait,
/// so that most kills find experiments running.
const BACKLOG: usize = 4;
/// How long each experiment sleeps after writing its id: two at a time,
/// 500 of them then take about as long as 50 lives of the daemon.
const RUN_SLEEP: &str = "0.2";
/// One life in this many is a burst: its share is submitted back to back,
/// starting up to [`BURST_LEAD`] before the kill, so that kills also cut
/// submissions in flight (a submission takes a few milliseconds: a kill
/// at a random moment almost never meets one).
const BURST_EVERY: u64 = 4;
/// How long before its kill a burst may start.
const BURST_LEAD: Duration = Duration::from_millis(40);
/// How long the last life may take to run what is left.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(300);
/// v1 hierarchies an experiment's cgroup lives in (devices where mounted).
const V1_CONTROLLERS: [&str; 6] = ["memory", "cpu", "cpuacct", "pids", "freezer", "devices"];
/// Kept supervisor slots a daemon may hold (see `labbench::exec::pool`).
const MAX_KEPT_SLOTS: usize = 8;

fn main() {
    if !common::lab::is_root() {
        println!(
            "(r) restarts: skipped, the bench runs experiments as a user of their own and needs root"
        );
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(torture());
}

/// xorshift64*: enough to place kills and pauses, and replayable from its seed.
struct Rng(u64);

impl Rng {
    /// Seeded from `LABBENCH_BENCH_SEED`, else from the clock.
    fn new() -> Rng {
        let seed = std::env::var("LABBENCH_BENCH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            });
        Rng(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..=max`.
    fn below(&mut self, max: u64) -> u64 {
        self.next() % (max + 1)
    }
}

/// A scratch directory outside `/tmp` (see `bench_dir` in benches/queue.rs
/// for why), that the experiments' user may pass through to the ids file.
fn bench_dir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let parent = std::env::var_os("LABBENCH_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
    let _ = std::fs::create_dir_all(&parent);
    // Kept until the bench ends without a violation: a failure leaves the
    // daemon's logs to read.
    let dir = tempfile::Builder::new()
        .prefix("restart-bench")
        .disable_cleanup(true)
        .tempdir_in(parent)
        .expect("bench directory");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711))
        .expect("bench directory mode");
    dir
}

/// Everything the daemon's lives share: where it runs and how it starts.
struct Bench {
    dir: tempfile::TempDir,
    data: PathBuf,
    config: PathBuf,
    admin: Arc<TestKey>,
    /// The file every experiment appends its id to.
    ids_file: PathBuf,
    /// labbench's cgroup instance name for `data`.
    instance: String,
    /// uid of [`EXPERIMENT_USER`].
    uid: u32,
}

impl Bench {
    fn new() -> Bench {
        let dir = bench_dir();
        let unix = common::lab::unix_account(EXPERIMENT_USER);
        let uid = labbench::sys::accounts::by_name(&unix)
            .ok()
            .flatten()
            .expect("the experiments' account")
            .uid;
        let ids_file = dir.path().join("ids");
        std::fs::write(&ids_file, b"").expect("ids file");
        std::os::unix::fs::chown(&ids_file, Some(uid), None).expect("ids file owner");
        let config = dir.path().join("bench.toml");
        // No GPUs here: no driver library to load at each start.
        std::fs::write(
            &config,
            "[monitor]\ngpu_source = \"none\"\n[queue]\nmax_queued_per_user = 1000000\n",
        )
        .expect("config");
        let admin = Arc::new(TestKey::generate(dir.path(), "admin_key"));
        let data = dir.path().join("data");
        let instance = labbench::exec::cgroup::instance_name(&data);
        Bench {
            dir,
            data,
            config,
            admin,
            ids_file,
            instance,
            uid,
        }
    }

    /// Starts life `life` of the daemon, logging from INFO up to `serve-NN.log`.
    fn start(&self, life: usize) -> TestServer {
        let config = self.config.to_string_lossy();
        TestServer::start_logged(
            &self.data,
            Some(&self.admin),
            &["--config", &config, "--admin-unix-user", EXPERIMENT_USER],
            &self.log(life),
        )
    }

    fn log(&self, life: usize) -> PathBuf {
        self.dir.path().join(format!("serve-{life:02}.log"))
    }

    /// The `submit` arguments of one experiment (after `submit --json`):
    /// half the host's cores, so that two run at once.
    fn experiment(&self) -> String {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        format!(
            "--workdir /tmp --cpus {} --mem 64M --time 1m --sh 'echo $LABBENCH_EXPERIMENT_ID >> {}; sleep {RUN_SLEEP}'",
            cores as f64 / 2.0,
            self.ids_file.display()
        )
    }
}

/// What one life's submissions came to.
#[derive(Debug, Default)]
struct Submissions {
    /// Ids the daemon returned.
    ids: Vec<u64>,
    /// Submissions sent whose answer the kill cut: they may or may not exist.
    cut: usize,
    /// Submissions refused (non-zero status), with the message.
    refused: Vec<String>,
    /// Whether it had not sent all of its share when the daemon went.
    interrupted: bool,
}

impl Submissions {
    fn sent(&self) -> usize {
        self.ids.len() + self.cut + self.refused.len()
    }

    /// Sends one `submit --json ARGS` and notes how it went.
    async fn submit(&mut self, handle: &Handle<Client>, args: &str) {
        let out = match try_exec(handle, &format!("submit --json {args}")).await {
            Sent::NotSent => {
                self.interrupted = true;
                return;
            }
            Sent::Answered(out) => out,
        };
        match out.status {
            None => {
                self.cut += 1;
                self.interrupted = true;
            }
            Some(0) => {
                let id = serde_json::from_str::<serde_json::Value>(&out.stdout)
                    .ok()
                    .and_then(|v| v["id"].as_u64());
                match id {
                    Some(id) => self.ids.push(id),
                    None => self.refused.push(format!("no id in {:?}", out.stdout)),
                }
            }
            Some(status) => self
                .refused
                .push(format!("status {status}: {}", out.stderr.trim())),
        }
    }
}

/// [`common::session`] that returns an error instead of panicking: the
/// daemon may be killed while it logs in.
async fn try_session(
    addr: std::net::SocketAddr,
    fingerprint: String,
    key: &TestKey,
) -> Result<Handle<Client>, String> {
    let config = Arc::new(client::Config {
        nodelay: true,
        ..client::Config::default()
    });
    let mut handle = client::connect(config, addr, Client::pinned(fingerprint))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let auth = handle
        .authenticate_publickey("lab", PrivateKeyWithHashAlg::new(key.private.clone(), None))
        .await
        .map_err(|e| format!("authenticate: {e}"))?;
    if auth.success() {
        Ok(handle)
    } else {
        Err("key refused".into())
    }
}

/// How an exec ended when the daemon may die under it.
enum Sent {
    /// Not sent: the channel could not be opened.
    NotSent,
    /// Sent; `status` is `None` when the connection ended before the answer.
    Answered(ExecResult),
}

/// [`common::exec`] that reports a failure to send instead of panicking.
async fn try_exec(handle: &Handle<Client>, command: &str) -> Sent {
    let Ok(mut channel) = handle.channel_open_session().await else {
        return Sent::NotSent;
    };
    if channel.exec(true, command).await.is_err() {
        return Sent::NotSent;
    }
    let _ = channel.eof().await;
    let mut result = ExecResult::default();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while let Ok(Some(msg)) = tokio::time::timeout_at(deadline, channel.wait()).await {
        match msg {
            ChannelMsg::Data { data } => result.stdout.push_str(&String::from_utf8_lossy(&data)),
            ChannelMsg::ExtendedData { data, .. } => {
                result.stderr.push_str(&String::from_utf8_lossy(&data))
            }
            ChannelMsg::ExitStatus { exit_status } => result.status = Some(exit_status),
            _ => {}
        }
    }
    Sent::Answered(result)
}

/// Sends up to `share` submissions of `args` until the daemon at `addr`
/// goes away: each once fewer than [`BACKLOG`] experiments are queued or
/// running, or, given `burst_at`, all back to back from then on.
async fn submit_share(
    addr: std::net::SocketAddr,
    fingerprint: String,
    key: Arc<TestKey>,
    args: String,
    share: usize,
    burst_at: Option<tokio::time::Instant>,
) -> Submissions {
    let mut done = Submissions::default();
    let Ok(handle) = try_session(addr, fingerprint, &key).await else {
        done.interrupted = share > 0;
        return done;
    };
    if let Some(at) = burst_at {
        tokio::time::sleep_until(at).await;
    }
    while done.sent() < share {
        if burst_at.is_some() {
            done.submit(&handle, &args).await;
            if done.interrupted {
                return done;
            }
            continue;
        }
        let listed = match try_exec(&handle, "ls --json").await {
            Sent::Answered(out) if out.status == Some(0) => {
                serde_json::from_str::<Vec<serde_json::Value>>(&out.stdout).map(|v| v.len())
            }
            _ => {
                done.interrupted = true;
                return done;
            }
        };
        if listed.is_ok_and(|n| n >= BACKLOG) {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        done.submit(&handle, &args).await;
        if done.interrupted {
            return done;
        }
    }
    done
}

/// One process as `/proc` shows it.
#[derive(Debug)]
struct Process {
    pid: u32,
    ppid: u32,
    /// Real and effective uid.
    uids: [u32; 2],
    zombie: bool,
    cmdline: String,
}

/// Every process now.
fn processes() -> Vec<Process> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // After the command name, in parentheses: state, ppid, …
            let mut fields = stat.get(stat.rfind(')')? + 2..)?.split_whitespace();
            let zombie = fields.next()? == "Z";
            let ppid = fields.next()?.parse().ok()?;
            let status = std::fs::read_to_string(entry.path().join("status")).ok()?;
            let mut uid = status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))?
                .split_whitespace()
                .filter_map(|v| v.parse().ok());
            let uids = [uid.next()?, uid.next()?];
            let cmdline = std::fs::read(entry.path().join("cmdline"))
                .map(|raw| String::from_utf8_lossy(&raw).replace('\0', " "))
                .unwrap_or_default();
            Some(Process {
                pid,
                ppid,
                uids,
                zombie,
                cmdline: cmdline.trim_end().to_string(),
            })
        })
        .collect()
}

/// The processes below `root` (its children, theirs, …).
fn descendants(all: &[Process], root: u32) -> Vec<&Process> {
    let mut found: Vec<&Process> = Vec::new();
    let mut parents = vec![root];
    while let Some(parent) = parents.pop() {
        for p in all.iter().filter(|p| p.ppid == parent) {
            parents.push(p.pid);
            found.push(p);
        }
    }
    found
}

/// Collects the bench's children that have ended (supervisors of killed
/// daemons come to the bench, their subreaper), except `daemon`, which its
/// `Child` reaps.
fn reap_orphans(daemon: Option<u32>) {
    let me = std::process::id();
    for p in processes() {
        if p.ppid != me || !p.zombie || Some(p.pid) == daemon {
            continue;
        }
        let mut status = 0;
        // SAFETY: waitpid on one pid with WNOHANG only collects its exit status.
        #[allow(unsafe_code)]
        unsafe {
            libc::waitpid(p.pid as i32, &mut status, libc::WNOHANG);
        }
    }
}

/// Processes of the experiments' user that are commands, not supervisors.
fn running_commands(bench: &Bench) -> usize {
    processes()
        .iter()
        .filter(|p| p.uids.contains(&bench.uid) && !p.zombie && !p.cmdline.contains("__launcher"))
        .count()
}

/// labbench's cgroup directories of this instance that exist, v1 and v2.
fn instance_cgroups(bench: &Bench) -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    V1_CONTROLLERS
        .iter()
        .map(|c| root.join(c))
        .chain([root.to_path_buf(), root.join("unified")])
        .map(|mount| mount.join("labbench").join(&bench.instance))
        .filter(|dir| dir.is_dir())
        .collect()
}

/// The cgroups under `dir`, each with the pids it holds.
fn cgroup_children(dir: &Path) -> Vec<(String, String)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| {
            let procs = std::fs::read_to_string(e.path().join("cgroup.procs")).unwrap_or_default();
            (
                e.file_name().to_string_lossy().into_owned(),
                procs.split_whitespace().collect::<Vec<_>>().join(","),
            )
        })
        .collect()
}

/// An experiment as the last listing shows it.
#[derive(Debug)]
struct Record {
    id: u64,
    /// `queued`, `running`, `finished`, …
    state: String,
    /// How a finished one ended (`succeeded`, `lost`, …).
    outcome: Option<String>,
    /// Its transitions, `TO at TIME: REASON`.
    transitions: Vec<String>,
}

impl Record {
    fn from_json(v: &serde_json::Value) -> Option<Record> {
        Some(Record {
            id: v["id"].as_u64()?,
            state: v["state"]["state"].as_str()?.to_string(),
            outcome: v["state"]["outcome"].as_str().map(str::to_string),
            transitions: v["transitions"]
                .as_array()
                .map(|ts| {
                    ts.iter()
                        .map(|t| {
                            format!(
                                "{} at {}: {}",
                                t["to"].as_str().unwrap_or("?"),
                                t["at"],
                                t["reason"].as_str().unwrap_or("")
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    /// The reason of the last transition.
    fn reason(&self) -> &str {
        self.transitions
            .last()
            .and_then(|t| t.split_once(": "))
            .map_or("", |(_, reason)| reason)
    }
}

/// One life of the daemon, for the timeline kept with a failed run.
#[derive(Debug)]
struct Life {
    /// Since the bench began.
    started: Duration,
    pid: u32,
    /// `None` for the last, clean, life.
    killed_after: Option<Duration>,
    /// Whether its submissions were a burst just before the kill.
    burst: bool,
    submissions: Submissions,
    /// Commands of the experiments' user running when it was killed.
    running_at_kill: usize,
}

/// The lives of the daemon, then the checks (see the module's doc).
async fn torture() {
    let runs = env_count("LABBENCH_BENCH_RESTART_RUNS", 500);
    let kills = env_count("LABBENCH_BENCH_KILLS", 50);
    let mut rng = Rng::new();
    // Supervisors of a killed daemon are reparented to the nearest
    // subreaper: the bench plays init, which reaps them (this host's pid 1
    // does not).
    assert!(
        labbench::sys::process::become_subreaper(),
        "cannot become a subreaper"
    );
    let mut bench = Bench::new();
    println!(
        "(r) restarts: seed {} (LABBENCH_BENCH_SEED draws the same kills again), scratch {} (kept on failure)",
        rng.0,
        bench.dir.path().display()
    );
    let began = Instant::now();
    let mut lives: Vec<Life> = Vec::new();
    let mut sent = 0;
    for life in 0..=kills {
        // Each life sends at most twice an even share of what is left (the
        // backlog paces it), so that submissions go on to the last kills;
        // the last, clean, life sends the rest.
        let left = runs - sent;
        let share = if life == kills {
            left
        } else {
            (left.div_ceil(kills + 1 - life) * 2).min(left)
        };
        let server = bench.start(life);
        let started = began.elapsed();
        let delay = Duration::from_millis(rng.below(MAX_KILL_DELAY.as_millis() as u64));
        let kill_at = tokio::time::Instant::now() + delay;
        let burst = life < kills && rng.next() % BURST_EVERY == 0;
        let burst_at = burst.then(|| {
            let lead = Duration::from_millis(rng.below(BURST_LEAD.as_millis() as u64));
            kill_at.checked_sub(lead).unwrap_or(kill_at)
        });
        let submitter = tokio::spawn(submit_share(
            server.addr,
            server.host_fingerprint.clone(),
            bench.admin.clone(),
            bench.experiment(),
            share,
            burst_at,
        ));
        if life == kills {
            let submissions = submitter.await.expect("submitter");
            sent += submissions.sent();
            lives.push(Life {
                started,
                pid: server.pid(),
                killed_after: None,
                burst,
                submissions,
                running_at_kill: 0,
            });
            let violations = finish(&bench, server, &lives, began, runs, sent).await;
            write_timeline(&bench, &lives);
            if violations.is_empty() {
                // LABBENCH_BENCH_KEEP=1 keeps it all the same, to look into a run.
                bench
                    .dir
                    .disable_cleanup(std::env::var_os("LABBENCH_BENCH_KEEP").is_some());
                return;
            }
            for v in &violations {
                eprintln!("violation: {v}");
            }
            panic!(
                "{} violations; the data directory, ids file, daemon logs (serve-NN.log) and \
                 timeline.txt are kept in {}",
                violations.len(),
                bench.dir.path().display()
            );
        }
        tokio::time::sleep_until(kill_at).await;
        let running_at_kill = running_commands(&bench);
        let pid = server.pid();
        labbench::sys::process::kill(pid as i32, libc::SIGKILL);
        // Reaps it before the orphans below (it is the bench's own child).
        drop(server);
        let submissions = submitter.await.expect("submitter");
        sent += submissions.sent();
        reap_orphans(None);
        lives.push(Life {
            started,
            pid,
            killed_after: Some(delay),
            burst,
            submissions,
            running_at_kill,
        });
    }
}

/// Waits until the last life has run what is left, then checks and prints
/// the figures; returns the violations.
async fn finish(
    bench: &Bench,
    server: TestServer,
    lives: &[Life],
    began: Instant,
    runs: usize,
    sent: usize,
) -> Vec<String> {
    let handle = common::session(&server, &bench.admin).await;
    let mut violations: Vec<String> = Vec::new();
    let drain_began = Instant::now();
    loop {
        reap_orphans(Some(server.pid()));
        let out = common::exec(&handle, "ls --json", None).await;
        if out.stdout.trim() == "[]" {
            break;
        }
        if drain_began.elapsed() > DRAIN_TIMEOUT {
            violations.push(format!(
                "still queued or running after {DRAIN_TIMEOUT:?}: {}",
                out.stdout
            ));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (wall, drained) = (began.elapsed(), drain_began.elapsed());
    let listing = common::exec(&handle, "ls --all --json --limit 10000", None).await;
    assert_eq!(listing.status, Some(0), "{listing:?}");
    let records: BTreeMap<u64, Record> =
        serde_json::from_str::<Vec<serde_json::Value>>(&listing.stdout)
            .expect("ls --json")
            .iter()
            .filter_map(Record::from_json)
            .map(|r| (r.id, r))
            .collect();
    let returned: BTreeSet<u64> = lives
        .iter()
        .flat_map(|l| l.submissions.ids.iter().copied())
        .collect();
    let ran = ran_counts(&bench.ids_file);

    // No id was returned twice (one acknowledged, lost in a kill and given
    // again), and every returned id exists and ended.
    let returned_count: usize = lives.iter().map(|l| l.submissions.ids.len()).sum();
    if returned_count != returned.len() {
        let mut seen = BTreeSet::new();
        let twice: Vec<u64> = lives
            .iter()
            .flat_map(|l| l.submissions.ids.iter().copied())
            .filter(|id| !seen.insert(*id))
            .collect();
        violations.push(format!("ids returned by two submissions: {twice:?}"));
    }
    for id in &returned {
        match records.get(id) {
            None => violations.push(format!(
                "experiment {id}: its submission returned the id, but it does not exist"
            )),
            Some(r) if r.state != "finished" => violations.push(format!(
                "experiment {id}: not ended ({}): {:?}",
                r.state, r.transitions
            )),
            Some(_) => {}
        }
    }
    // None ran twice, none ran without a record, none succeeded without running.
    for (id, times) in &ran {
        if *times > 1 {
            violations.push(format!(
                "experiment {id} ran {times} times: {:?}",
                records.get(id).map(|r| &r.transitions)
            ));
        }
        if !records.contains_key(id) {
            violations.push(format!("experiment {id} ran but has no record"));
        }
    }
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    // Ends other than success, by outcome and reason: their ids.
    let mut reasons: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut lost_after_running = 0;
    for r in records.values() {
        let outcome = r.outcome.clone().unwrap_or_else(|| r.state.clone());
        *outcomes.entry(outcome.clone()).or_default() += 1;
        let times = ran.get(&r.id).copied().unwrap_or(0);
        if outcome == "succeeded" && times == 0 {
            violations.push(format!(
                "experiment {}: succeeded but never wrote its id: {:?}",
                r.id, r.transitions
            ));
        }
        if outcome != "succeeded" {
            reasons
                .entry(format!("{outcome}: {}", r.reason()))
                .or_default()
                .push(r.id);
            lost_after_running += usize::from(outcome == "lost" && times > 0);
        }
    }
    // Starts cut before their command ran, queued again (see output::journal).
    let queued_again = records
        .values()
        .filter(|r| r.transitions.iter().any(|t| t.contains("queued again")))
        .count();
    let unacknowledged: Vec<u64> = records
        .keys()
        .filter(|id| !returned.contains(id))
        .copied()
        .collect();

    // Slots kept by the running daemon: at most a few, each holding only
    // its idle supervisor. And no process of a killed daemon is left.
    tokio::time::sleep(Duration::from_secs(1)).await;
    reap_orphans(Some(server.pid()));
    let all = processes();
    let daemon_tree: BTreeSet<u32> = descendants(&all, server.pid())
        .iter()
        .map(|p| p.pid)
        .chain([server.pid()])
        .collect();
    let supervisors: BTreeSet<u32> = all
        .iter()
        .filter(|p| daemon_tree.contains(&p.pid) && p.uids.contains(&bench.uid))
        .filter(|p| p.cmdline.contains("__launcher"))
        .map(|p| p.pid)
        .collect();
    let slots = instance_cgroups(bench)
        .first()
        .map(|dir| cgroup_children(dir))
        .unwrap_or_default();
    if slots.len() > MAX_KEPT_SLOTS {
        violations.push(format!(
            "{} cgroups kept by an idle daemon (at most {MAX_KEPT_SLOTS}): {slots:?}",
            slots.len()
        ));
    }
    for (slot, pids) in &slots {
        let held: Vec<u32> = pids.split(',').filter_map(|p| p.parse().ok()).collect();
        if held.len() > 1 || held.iter().any(|p| !supervisors.contains(p)) {
            violations.push(format!(
                "cgroup {slot} of an idle daemon holds {pids}, not one idle supervisor ({supervisors:?})"
            ));
        }
    }
    let orphans: Vec<String> = descendants(&all, std::process::id())
        .iter()
        .filter(|p| !daemon_tree.contains(&p.pid))
        .map(|p| {
            format!(
                "{} ({}{})",
                p.pid,
                p.cmdline,
                if p.zombie { ", zombie" } else { "" }
            )
        })
        .collect();
    if !orphans.is_empty() {
        violations.push(format!(
            "processes of killed daemons left with nothing queued or running: {orphans:?}"
        ));
    }
    drop(handle);
    server.stop();

    // Once the daemon has stopped: nothing of it, in processes or cgroups.
    let mut left = Vec::new();
    for _ in 0..50 {
        reap_orphans(None);
        left = leftover_processes(bench);
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !left.is_empty() {
        violations.push(format!("processes left after the daemon stopped: {left:?}"));
    }
    let cgroups: Vec<String> = instance_cgroups(bench)
        .iter()
        .map(|dir| format!("{} {:?}", dir.display(), cgroup_children(dir)))
        .collect();
    if !cgroups.is_empty() {
        violations.push(format!(
            "cgroups left after the daemon stopped: {cgroups:?}"
        ));
    }

    let killed: Vec<&Life> = lives.iter().filter(|l| l.killed_after.is_some()).collect();
    let during_submits = killed.iter().filter(|l| l.submissions.interrupted).count();
    let bursts = killed.iter().filter(|l| l.burst).count();
    let during_runs = killed.iter().filter(|l| l.running_at_kill > 0).count();
    let cut: usize = lives.iter().map(|l| l.submissions.cut).sum();
    let refused: Vec<&String> = lives.iter().flat_map(|l| &l.submissions.refused).collect();
    let outcome_line = outcomes
        .iter()
        .map(|(o, n)| format!("{n} {o}"))
        .collect::<Vec<_>>()
        .join(", ");
    println!(
        "(r) restarts: {} kills (SIGKILL 0–{:.1} s after each start; {during_submits} while submitting, \
         {bursts} aimed at a burst of submissions, {during_runs} with experiments running), {sent} of {runs} \
         submissions sent, {} returned an id, {cut} cut by a kill, {} refused; {} experiments exist ({} without a returned id: {unacknowledged:?}): \
         {outcome_line}; {queued_again} queued again after a start cut short; \
         {lost_after_running} lost after writing their id; {} ran (ids in the file), \
         {} ran twice; {} kept supervisors in {} cgroups at the end, nothing left after the stop: {}; wall {:.1} s \
         (nothing queued or running {:.1} s after the last submission); {} violations",
        killed.len(),
        MAX_KILL_DELAY.as_secs_f64(),
        returned.len(),
        refused.len(),
        records.len(),
        unacknowledged.len(),
        ran.len(),
        ran.values().filter(|n| **n > 1).count(),
        supervisors.len(),
        slots.len(),
        if left.is_empty() && cgroups.is_empty() {
            "yes"
        } else {
            "no"
        },
        wall.as_secs_f64(),
        drained.as_secs_f64(),
        violations.len(),
    );
    if !reasons.is_empty() {
        println!("(r) restarts: other ends by reason: {reasons:?}");
    }
    if !refused.is_empty() {
        println!("(r) restarts: refused submissions: {refused:?}");
    }
    violations
}

/// How many times each id was written to the ids file.
fn ran_counts(ids_file: &Path) -> HashMap<u64, usize> {
    let text = std::fs::read_to_string(ids_file).expect("ids file");
    let mut counts = HashMap::new();
    for line in text.lines() {
        let id = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("ids file: not an id: {line:?}"));
        *counts.entry(id).or_default() += 1;
    }
    counts
}

/// Processes that must be gone once the last daemon stopped: the bench's
/// descendants (every supervisor and launcher comes to it), processes of
/// the experiments' user and any naming the data directory.
fn leftover_processes(bench: &Bench) -> Vec<String> {
    let all = processes();
    let data = bench.data.to_string_lossy();
    let below: BTreeSet<u32> = descendants(&all, std::process::id())
        .iter()
        .map(|p| p.pid)
        .collect();
    all.iter()
        .filter(|p| {
            below.contains(&p.pid)
                || p.uids.contains(&bench.uid)
                || (p.pid != std::process::id() && p.cmdline.contains(data.as_ref()))
        })
        .map(|p| {
            format!(
                "{} uid {:?} ({}{})",
                p.pid,
                p.uids,
                p.cmdline,
                if p.zombie { ", zombie" } else { "" }
            )
        })
        .collect()
}

/// The lives of the daemon, one a line, in `timeline.txt` next to its logs.
fn write_timeline(bench: &Bench, lives: &[Life]) {
    let text: String = lives
        .iter()
        .enumerate()
        .map(|(n, l)| {
            format!(
                "life {n:02} (serve-{n:02}.log): started at {:.3} s, pid {}, {}killed after {}, \
                 {} commands running then; ids returned {:?}, {} cut, refused {:?}\n",
                l.started.as_secs_f64(),
                l.pid,
                if l.burst { "burst, " } else { "" },
                l.killed_after.map_or("never (clean)".into(), |d| format!(
                    "{:.3} s",
                    d.as_secs_f64()
                )),
                l.running_at_kill,
                l.submissions.ids,
                l.submissions.cut,
                l.submissions.refused,
            )
        })
        .collect();
    let _ = std::fs::write(bench.dir.path().join("timeline.txt"), text);
}

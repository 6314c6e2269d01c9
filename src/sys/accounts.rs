//! Unix accounts as the C library's name service (NSS) knows them: the
//! local files, and LDAP, SSSD or extrausers where the host uses them.
//!
//! The C library's lookups are made one at a time, on one thread that
//! does nothing else: some name service modules are not safe to call from
//! several threads at once (libnss-extrausers corrupts the heap when two
//! threads read its files together). A lookup can also hang on a directory
//! service that does not answer, so the caller waits at most
//! [`LOOKUP_TIMEOUT`] and at most [`LOOKUPS_WAITING`] lookups wait.
//! Answers are kept for [`FRESH_FOR`] (an account that does not exist, for
//! [`ABSENT_FOR`], so one created while the daemon runs is seen soon).

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Longest an answer is trusted without asking again.
pub const FRESH_FOR: Duration = Duration::from_secs(30);
/// Longest "no such account" is trusted without asking again.
pub const ABSENT_FOR: Duration = Duration::from_secs(1);
/// Longest a lookup may take before the caller gives up on it.
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);
/// Most lookups waiting for the lookup thread; more are refused at once.
pub const LOOKUPS_WAITING: usize = 64;

/// One account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Its name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Home directory.
    pub home: PathBuf,
}

/// Answers kept, by what was asked, each until it expires.
pub(crate) struct Kept<K, V> {
    answers: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K: std::hash::Hash + Eq, V: Clone> Kept<K, V> {
    pub(crate) fn new() -> Kept<K, V> {
        Kept {
            answers: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn get(&self, key: &K) -> Option<V> {
        let answers = self.answers.lock().unwrap_or_else(|e| e.into_inner());
        let (expires, answer) = answers.get(key)?;
        (Instant::now() < *expires).then(|| answer.clone())
    }

    pub(crate) fn put(&self, key: K, answer: V, fresh_for: Duration) {
        let mut answers = self.answers.lock().unwrap_or_else(|e| e.into_inner());
        // Bounded: a host's accounts, plus what was asked in the last moments.
        if answers.len() > 4096 {
            let now = Instant::now();
            answers.retain(|_, (expires, _)| now < *expires);
        }
        answers.insert(key, (Instant::now() + fresh_for, answer));
    }
}

/// How long an answer about an account is kept.
fn fresh_for(answer: &Option<Account>) -> Duration {
    if answer.is_some() {
        FRESH_FOR
    } else {
        ABSENT_FOR
    }
}

fn by_name_kept() -> &'static Kept<String, Option<Account>> {
    static KEPT: std::sync::OnceLock<Kept<String, Option<Account>>> = std::sync::OnceLock::new();
    KEPT.get_or_init(Kept::new)
}

fn by_uid_kept() -> &'static Kept<u32, Option<Account>> {
    static KEPT: std::sync::OnceLock<Kept<u32, Option<Account>>> = std::sync::OnceLock::new();
    KEPT.get_or_init(Kept::new)
}

/// The account named `name`, `Ok(None)` if there is none.
pub fn by_name(name: &str) -> Result<Option<Account>, String> {
    if let Some(answer) = by_name_kept().get(&name.to_string()) {
        return Ok(answer);
    }
    let owned = name.to_string();
    let answer = ask_directory(move || lookup_name(&owned))
        .map_err(|e| format!("cannot look up the account {name}: {e}"))??;
    by_name_kept().put(name.to_string(), answer.clone(), fresh_for(&answer));
    Ok(answer)
}

/// The account of `uid`, `Ok(None)` if there is none.
pub fn by_uid(uid: u32) -> Result<Option<Account>, String> {
    if let Some(answer) = by_uid_kept().get(&uid) {
        return Ok(answer);
    }
    let answer = ask_directory(move || lookup_uid(uid))
        .map_err(|e| format!("cannot look up uid {uid}: {e}"))??;
    by_uid_kept().put(uid, answer.clone(), fresh_for(&answer));
    Ok(answer)
}

/// The groups of account `name` whose primary group is `gid` (that one
/// included).
pub fn groups_of(name: &str, gid: u32) -> Result<Vec<u32>, String> {
    static KEPT: std::sync::OnceLock<Kept<(String, u32), Vec<u32>>> = std::sync::OnceLock::new();
    let kept = KEPT.get_or_init(Kept::new);
    let key = (name.to_string(), gid);
    if let Some(groups) = kept.get(&key) {
        return Ok(groups);
    }
    let who = name.to_string();
    let groups = ask_directory(move || group_list(&who, gid))
        .map_err(|e| format!("cannot look up the groups of {name}: {e}"))?
        .ok_or_else(|| format!("cannot look up the groups of {name}"))?;
    kept.put(key, groups.clone(), FRESH_FOR);
    Ok(groups)
}

/// The lowest uid of a regular (not system) account: `UID_MIN` of
/// `/etc/login.defs`, 1000 where it does not say.
pub fn uid_min() -> u32 {
    std::fs::read_to_string("/etc/login.defs")
        .ok()
        .and_then(|text| login_defs_uid_min(&text))
        .unwrap_or(1000)
}

/// The highest uid of a regular account: `UID_MAX` of `/etc/login.defs`,
/// 60000 where it does not say.
pub fn uid_max() -> u32 {
    std::fs::read_to_string("/etc/login.defs")
        .ok()
        .and_then(|text| login_defs_value(&text, "UID_MAX"))
        .unwrap_or(60_000)
}

/// Whether `uid` is not a regular person's account: below `UID_MIN`
/// (root, services), above `UID_MAX` (dynamic users, containers' ranges),
/// or the kernel's overflow uid (`nobody`, which services run as too).
pub fn is_system_uid(uid: u32) -> bool {
    let overflow = std::fs::read_to_string("/proc/sys/kernel/overflowuid")
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(65_534);
    uid < uid_min() || uid > uid_max() || uid == overflow
}

/// `UID_MIN` in the text of a `login.defs`.
fn login_defs_uid_min(text: &str) -> Option<u32> {
    login_defs_value(text, "UID_MIN")
}

/// The number set for `key` in the text of a `login.defs`.
fn login_defs_value(text: &str, key: &str) -> Option<u32> {
    text.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next() == Some(key))
            .then(|| words.next()?.parse().ok())
            .flatten()
    })
}

/// Runs `lookup` on a thread of its own and waits at most `limit` for its
/// answer; a lookup that hangs is left behind.
pub fn within<T: Send + 'static>(
    limit: Duration,
    lookup: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    let (answer, answered) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("labbench-lookup".into())
        .spawn(move || {
            let _ = answer.send(lookup());
        })
        .map_err(|e| e.to_string())?;
    answered.recv_timeout(limit).map_err(|_| {
        format!(
            "no answer within {} s (is the directory service answering?)",
            limit.as_secs_f64()
        )
    })
}

/// A lookup for the lookup thread, and when its caller stops waiting.
struct Lookup {
    run: Box<dyn FnOnce() + Send>,
    wanted_until: Instant,
}

/// Runs `lookup` on the one thread that calls the C library's account
/// lookups, and waits at most [`LOOKUP_TIMEOUT`] for its answer. A lookup
/// whose caller has stopped waiting is skipped, so a directory service that
/// hangs leaves at most [`LOOKUPS_WAITING`] lookups behind, not a thread each.
fn ask_directory<T: Send + 'static>(
    lookup: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    static LOOKUPS: std::sync::OnceLock<Result<std::sync::mpsc::SyncSender<Lookup>, String>> =
        std::sync::OnceLock::new();
    let lookups = LOOKUPS
        .get_or_init(|| {
            let (lookups, waiting) = std::sync::mpsc::sync_channel::<Lookup>(LOOKUPS_WAITING);
            std::thread::Builder::new()
                .name("labbench-accounts".into())
                .spawn(move || {
                    for lookup in waiting {
                        if Instant::now() < lookup.wanted_until {
                            (lookup.run)();
                        }
                    }
                })
                .map(|_| lookups)
                .map_err(|e| format!("cannot start the lookup thread: {e}"))
        })
        .as_ref()
        .map_err(Clone::clone)?;
    let (answer, answered) = std::sync::mpsc::channel();
    let asked = lookups.try_send(Lookup {
        run: Box::new(move || {
            let _ = answer.send(lookup());
        }),
        wanted_until: Instant::now() + LOOKUP_TIMEOUT,
    });
    if asked.is_err() {
        return Err(format!(
            "{LOOKUPS_WAITING} lookups are waiting already (is the directory service answering?)"
        ));
    }
    answered.recv_timeout(LOOKUP_TIMEOUT).map_err(|_| {
        format!(
            "no answer within {} s (is the directory service answering?)",
            LOOKUP_TIMEOUT.as_secs_f64()
        )
    })
}

fn lookup_name(name: &str) -> Result<Option<Account>, String> {
    let Ok(c_name) = CString::new(name) else {
        return Ok(None);
    };
    lookup_passwd(Key::Name(&c_name))
}

fn lookup_uid(uid: u32) -> Result<Option<Account>, String> {
    lookup_passwd(Key::Uid(uid))
}

/// What a passwd lookup asks for.
#[derive(Clone, Copy)]
enum Key<'a> {
    Name(&'a CStr),
    Uid(u32),
}

/// Calls `getpwnam_r` or `getpwuid_r` with a buffer that grows while it is
/// too small (ERANGE); reads the entry it filled in. Only on the lookup
/// thread (see the module's text).
fn lookup_passwd(key: Key<'_>) -> Result<Option<Account>, String> {
    let mut buffer = vec![0u8; 1024];
    loop {
        let mut entry = std::mem::MaybeUninit::<libc::passwd>::uninit();
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: a name asked for is NUL-terminated; `entry`, `buffer`
        // (with its length) and `result` are valid for writes for the whole
        // call. A result that is not null points to `entry`, filled in,
        // whose strings point into `buffer`, NUL-terminated, and are copied
        // before `buffer` changes.
        #[allow(unsafe_code)]
        let (rc, found) = unsafe {
            let (out, buf, len) = (entry.as_mut_ptr(), buffer.as_mut_ptr().cast(), buffer.len());
            let rc = match key {
                Key::Name(name) => libc::getpwnam_r(name.as_ptr(), out, buf, len, &mut result),
                Key::Uid(uid) => libc::getpwuid_r(uid, out, buf, len, &mut result),
            };
            let found = result.as_ref().map(|entry| Account {
                name: CStr::from_ptr(entry.pw_name).to_string_lossy().into_owned(),
                uid: entry.pw_uid,
                gid: entry.pw_gid,
                home: PathBuf::from(CStr::from_ptr(entry.pw_dir).to_string_lossy().into_owned()),
            });
            (rc, found)
        };
        if rc == libc::ERANGE && buffer.len() < 1 << 20 {
            let larger = buffer.len() * 4;
            buffer.resize(larger, 0);
            continue;
        }
        if found.is_none() {
            // Not found is a null result with 0, ENOENT, ESRCH, EBADF or
            // EPERM, depending on the C library and the service.
            return match rc {
                0 | libc::ENOENT | libc::ESRCH | libc::EBADF | libc::EPERM => Ok(None),
                other => Err(std::io::Error::from_raw_os_error(other).to_string()),
            };
        }
        return Ok(found);
    }
}

/// All groups of `name` (primary `gid` included) from the C library's
/// lookup. Only on the lookup thread (see the module's text).
fn group_list(name: &str, gid: u32) -> Option<Vec<u32>> {
    let name = CString::new(name).ok()?;
    let mut groups: Vec<libc::gid_t> = vec![0; 64];
    for _ in 0..8 {
        let mut count = groups.len() as libc::c_int;
        // SAFETY: `name` is NUL-terminated; `groups` has room for `count`
        // entries, which getgrouplist respects and updates.
        #[allow(unsafe_code)]
        let rc = unsafe {
            libc::getgrouplist(
                name.as_ptr(),
                gid as libc::gid_t,
                groups.as_mut_ptr(),
                &mut count,
            )
        };
        let count = usize::try_from(count).unwrap_or(0);
        if rc >= 0 {
            groups.truncate(count);
            return Some(groups);
        }
        // Too small: `count` says how many there are.
        groups.resize(count.max(groups.len() * 2), 0);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_found_by_name_and_uid() {
        let root = by_name("root").expect("lookup").expect("root");
        assert_eq!((root.uid, root.gid), (0, 0));
        assert_eq!(by_uid(0).expect("lookup"), Some(root));
        assert_eq!(by_name("no-such-user-here").expect("lookup"), None);
        assert_eq!(by_uid(4_000_000_000).expect("lookup"), None);
        let groups = groups_of("root", 0).expect("root's groups");
        assert!(groups.contains(&0), "{groups:?}");
    }

    #[test]
    fn uid_min_comes_from_login_defs() {
        let text = "# UID_MIN 5\nMAIL_DIR /var/mail\nUID_MIN\t\t\t 1000\nUID_MAX 60000\n";
        assert_eq!(login_defs_uid_min(text), Some(1000));
        assert_eq!(login_defs_uid_min("UID_MAX 60000\n"), None);
        assert_eq!(login_defs_value("UID_MAX 60000\n", "UID_MAX"), Some(60000));
        assert!(uid_min() > 0);
        assert!(is_system_uid(0) && is_system_uid(65_534) && is_system_uid(4_000_000_000));
        assert!(!is_system_uid(uid_min()));
    }

    #[test]
    fn lookups_from_many_threads_at_once_are_made_one_at_a_time() {
        // Each name is new, so each is a lookup in the C library; with
        // libnss-extrausers among the sources, lookups made in parallel
        // abort the process.
        let askers: Vec<_> = (0..8)
            .map(|thread| {
                std::thread::spawn(move || {
                    for n in 0..400 {
                        let name = format!("lb-nobody-{thread}-{n}");
                        assert_eq!(by_name(&name), Ok(None));
                        let gid = 3_000_000 + n;
                        assert_eq!(groups_of(&name, gid).expect("groups"), vec![gid]);
                        assert_eq!(by_uid(3_000_000_000 + thread * 1000 + n), Ok(None));
                    }
                })
            })
            .collect();
        for asker in askers {
            asker.join().expect("lookups");
        }
    }

    #[test]
    fn a_lookup_that_hangs_is_given_up() {
        let quick = within(Duration::from_secs(5), || 7);
        assert_eq!(quick, Ok(7));
        let hung = within(Duration::from_millis(50), || {
            std::thread::sleep(Duration::from_secs(2));
            7
        });
        let err = hung.expect_err("given up");
        assert!(err.contains("no answer within 0.05 s"), "{err}");
    }
}

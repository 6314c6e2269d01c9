//! The kernel's files about processes and the host, each read and parsed
//! here alone: `/proc/PID/stat` ([`read_stat`], [`parse_stat`]), the
//! processes of a session (the `/proc` listing), the CPUs the host may have
//! (`/sys/devices/system/cpu/possible`), and the units these files count in.

/// Kernel clock ticks per second (the unit of CPU times in `/proc`).
pub fn clock_ticks_per_second() -> f64 {
    match rustix::param::clock_ticks_per_second() {
        0 => 100.0,
        ticks => ticks as f64,
    }
}

/// Size of a memory page in bytes (the unit of RSS in `/proc/PID/stat`).
pub fn page_size() -> u64 {
    u64::try_from(rustix::param::page_size())
        .ok()
        .filter(|s| *s > 0)
        .unwrap_or(4096)
}

/// CPUs the host may have, online or not (what the C library reports as
/// `_SC_NPROCESSORS_CONF`): the kernel keeps some per-CPU state for each.
pub fn possible_cpus() -> u64 {
    std::fs::read_to_string("/sys/devices/system/cpu/possible")
        .ok()
        .and_then(|list| count_cpu_list(&list))
        .or_else(|| {
            let online = std::thread::available_parallelism().ok()?;
            u64::try_from(online.get()).ok()
        })
        .unwrap_or(1)
        .max(1)
}

/// The number of CPUs in a kernel CPU list such as `0-3,8-11` or `0`.
fn count_cpu_list(list: &str) -> Option<u64> {
    list.trim().split(',').try_fold(0, |count, range| {
        let (first, last) = range.split_once('-').unwrap_or((range, range));
        let (first, last): (u64, u64) = (first.parse().ok()?, last.parse().ok()?);
        Some(count + last.checked_sub(first)? + 1)
    })
}

/// The fields of `/proc/PID/stat` labbench uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatFields<'a> {
    /// `comm`, raw.
    pub command: &'a [u8],
    /// Session id.
    pub session: u32,
    /// Kernel flags.
    pub flags: u64,
    /// User plus system CPU time, clock ticks.
    pub cpu_ticks: u64,
    /// Start time after boot, clock ticks (identifies a pid's incarnation).
    pub start_time: u64,
    /// Resident set, pages.
    pub rss_pages: u64,
}

/// Parses `/proc/PID/stat`; the command may contain spaces and parentheses.
pub fn parse_stat(stat: &[u8]) -> Option<StatFields<'_>> {
    let open = stat.iter().position(|&b| b == b'(')?;
    let close = stat.iter().rposition(|&b| b == b')')?;
    let command = stat.get(open + 1..close)?;
    // After ")": state(0) ppid pgrp session(3) tty tpgid flags(6) minflt cminflt
    // majflt cmajflt utime(11) stime(12) cutime cstime priority nice threads
    // itreal starttime(19) vsize rss(21).
    let mut numbers = [0u64; 22];
    let mut fields = stat.get(close + 2..)?.split(|&b| b == b' ');
    for (i, slot) in numbers.iter_mut().enumerate() {
        let raw = fields.next()?;
        if matches!(i, 3 | 6 | 11 | 12 | 19 | 21) {
            *slot = std::str::from_utf8(raw).ok()?.trim().parse().ok()?;
        }
    }
    Some(StatFields {
        command,
        session: numbers[3] as u32,
        flags: numbers[6],
        cpu_ticks: numbers[11] + numbers[12],
        start_time: numbers[19],
        rss_pages: numbers[21],
    })
}

/// The state letter of a `/proc/PID/stat` (`R`, `S`, `Z`...).
fn state_of(stat: &[u8]) -> Option<u8> {
    let close = stat.iter().rposition(|&b| b == b')')?;
    stat.get(close + 2).copied()
}

/// `/proc/PID/stat`, read into a 1 KiB buffer (two reads: the line, then
/// the end of the file; its size is unknown to `stat`, so a plain read of
/// the file takes six, growing its buffer from 32 bytes).
pub fn read_stat(pid: u32) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut file = std::fs::File::open(format!("/proc/{pid}/stat")).ok()?;
    let mut stat = vec![0u8; 1024];
    let mut len = 0;
    loop {
        if len == stat.len() {
            stat.resize(len * 2, 0);
        }
        match file.read(&mut stat[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    stat.truncate(len);
    Some(stat)
}

/// Start time (clock ticks after boot) of process `pid`, if it exists.
pub fn process_start_time(pid: u32) -> Option<u64> {
    parse_stat(&read_stat(pid)?).map(|s| s.start_time)
}

/// The session of process `pid`, if it exists.
pub fn session_of(pid: u32) -> Option<u32> {
    parse_stat(&read_stat(pid)?).map(|s| s.session)
}

/// Whether process `pid` is alive (not a zombie) and, when `start_time` is
/// not 0, is the same process that started then (pids are reused).
pub fn process_running(pid: u32, start_time: u64) -> bool {
    let Some(stat) = read_stat(pid) else {
        return false;
    };
    let same = start_time == 0 || parse_stat(&stat).is_some_and(|s| s.start_time == start_time);
    same && !matches!(state_of(&stat), Some(b'Z') | Some(b'X') | None)
}

/// Resident memory of every process in session `sid`, bytes (the
/// watchdog's measure of an experiment when no cgroup confines it).
pub fn session_rss(sid: u32) -> u64 {
    let page = page_size();
    let mut total = 0;
    for_each_in_session(sid, |_, rss_pages| total += rss_pages * page);
    total
}

/// Calls `each(pid, resident pages)` for every process in session `sid`.
pub fn for_each_in_session(sid: u32, mut each: impl FnMut(u32, u64)) {
    for_each_process(|pid, _| {
        let Some(stat) = read_stat(pid) else {
            return;
        };
        if let Some(fields) = parse_stat(&stat)
            && fields.session == sid
        {
            each(pid, fields.rss_pages);
        }
    });
}

/// Calls `each(pid, its /proc entry)` for every process there is.
pub fn for_each_process(mut each: impl FnMut(u32, &std::fs::DirEntry)) {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        if let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        {
            each(pid, &entry);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_plausible() {
        assert!(clock_ticks_per_second() >= 1.0);
        assert!(page_size() >= 4096);
        assert!(possible_cpus() >= 1);
    }

    #[test]
    fn cpu_lists_are_counted() {
        assert_eq!(count_cpu_list("0\n"), Some(1));
        assert_eq!(count_cpu_list("0-7\n"), Some(8));
        assert_eq!(count_cpu_list("0-3,8-11"), Some(8));
        assert_eq!(count_cpu_list("0,2,4-5"), Some(4));
        assert_eq!(count_cpu_list("3-1"), None);
        assert_eq!(count_cpu_list(""), None);
    }

    #[test]
    fn parses_stat_with_awkward_command() {
        let stat = b"4242 (my (odd) prog) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 9876 123456789 2048 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        let f = parse_stat(stat).expect("parses");
        assert_eq!(f.command, b"my (odd) prog");
        assert_eq!(f.cpu_ticks, 300);
        assert_eq!(f.start_time, 9876);
        assert_eq!(f.rss_pages, 2048);
        assert_eq!(f.flags, 4194560);
        assert_eq!(f.session, 4242);
    }

    #[test]
    fn the_state_follows_the_last_parenthesis() {
        assert_eq!(state_of(b"7 (a) b) Z 1"), Some(b'Z'));
        assert_eq!(state_of(b"7 (a)"), None);
    }

    #[test]
    fn garbage_stat_is_rejected() {
        assert!(parse_stat(b"").is_none());
        assert!(parse_stat(b"12 (x").is_none());
        assert!(parse_stat(b"12 (x) S 1 2").is_none());
    }

    #[test]
    fn this_process_is_running_in_its_session() {
        let me = std::process::id();
        let started = process_start_time(me).expect("start time");
        assert!(process_running(me, started) && process_running(me, 0));
        assert!(!process_running(me, started + 1));
        let session = session_of(me).expect("session");
        let mut seen = false;
        for_each_in_session(session, |pid, rss| seen |= pid == me && rss > 0);
        assert!(seen && session_rss(session) > 0);
    }
}

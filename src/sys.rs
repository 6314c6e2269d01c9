//! Small facts about the operating system that need a libc call.

/// Kernel clock ticks per second (the unit of CPU times in `/proc`).
pub fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a configuration value; no memory is shared.
    #[allow(unsafe_code)]
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// Size of a memory page in bytes (the unit of RSS in `/proc/PID/stat`).
pub fn page_size() -> u64 {
    // SAFETY: sysconf only reads a configuration value; no memory is shared.
    #[allow(unsafe_code)]
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).ok().filter(|s| *s > 0).unwrap_or(4096)
}

/// One account from `/etc/passwd`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Home directory.
    pub home: std::path::PathBuf,
}

/// Looks up a Unix account by name in `/etc/passwd`.
pub fn passwd_entry(name: &str) -> Option<PasswdEntry> {
    let text = std::fs::read_to_string("/etc/passwd").ok()?;
    text.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.len() < 6 || fields[0] != name {
            return None;
        }
        Some(PasswdEntry {
            uid: fields[2].parse().ok()?,
            gid: fields[3].parse().ok()?,
            home: std::path::PathBuf::from(fields[5]),
        })
    })
}

/// Raises the soft limit of open files to the hard limit; returns the limit in force.
pub fn raise_open_file_limit() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    #[allow(unsafe_code)]
    let got = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    if got != 0 {
        return 1024;
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max.min(1 << 20),
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct we pass.
        #[allow(unsafe_code)]
        let set = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) };
        if set == 0 {
            return raised.rlim_cur as usize;
        }
    }
    limit.rlim_cur as usize
}

/// Free and total bytes of the file system holding `path`.
pub fn filesystem_space(path: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: `stat` is a plain C struct that statvfs fills; an all-zero value is valid.
    #[allow(unsafe_code)]
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the duration of the call.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) };
    if rc != 0 {
        return None;
    }
    let block = stat.f_frsize;
    Some((stat.f_bavail * block, stat.f_blocks * block))
}

#[cfg(test)]
mod tests {
    #[test]
    fn root_is_in_the_password_file() {
        let root = super::passwd_entry("root").expect("root");
        assert_eq!(root.uid, 0);
        assert!(super::passwd_entry("no-such-user-here").is_none());
    }

    #[test]
    fn values_are_plausible() {
        assert!(super::clock_ticks_per_second() >= 1.0);
        assert!(super::page_size() >= 4096);
    }
}

//! Files and file systems: free space, handing a file to a user, whether
//! an identity may enter a directory, and the kernel's random bytes.

use std::os::fd::AsFd;
use std::path::Path;

use rustix::fs::{Gid, Uid};

/// Free and total bytes of a file system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Space {
    /// Bytes an unprivileged user could still write.
    pub free: u64,
    /// Bytes in all.
    pub total: u64,
}

/// Free and total bytes of the file system holding `path`.
pub fn space(path: &Path) -> Option<Space> {
    let stat = rustix::fs::statvfs(path).ok()?;
    Some(Space {
        free: stat.f_bavail.saturating_mul(stat.f_frsize),
        total: stat.f_blocks.saturating_mul(stat.f_frsize),
    })
}

/// Bytes an unprivileged user could still write on the file system of `path`.
pub fn free_bytes(path: &Path) -> Option<u64> {
    space(path).map(|space| space.free)
}

/// Gives the open file `file` to user `uid` and group `gid`.
pub fn change_owner(file: impl AsFd, uid: u32, gid: u32) -> std::io::Result<()> {
    rustix::fs::fchown(file, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))?;
    Ok(())
}

/// Whether the Unix identity `uid`, `gid`, `groups` may enter and list
/// directory `dir`, as the kernel decides for that identity (modes, ACLs,
/// every directory on the way). As root the question is asked on a thread
/// of its own that takes on the identity (its own credentials only: the
/// raw system calls, unlike the C library's, change the calling thread
/// alone) and then ends; otherwise it is answered for this process.
pub fn may_enter_as(dir: &Path, uid: u32, gid: u32, groups: &[u32]) -> bool {
    use rustix::fs::Access;
    let dir = dir.to_path_buf();
    let can_enter = move || rustix::fs::access(&dir, Access::READ_OK | Access::EXEC_OK).is_ok();
    if !super::process::is_root() {
        return can_enter();
    }
    let groups: Vec<Gid> = groups.iter().map(|g| Gid::from_raw(*g)).collect();
    let (uid, gid) = (Uid::from_raw(uid), Gid::from_raw(gid));
    let asked = std::thread::Builder::new()
        .name("labbench-access".into())
        .spawn(move || {
            let became = rustix::thread::set_thread_groups(&groups).is_ok()
                && rustix::thread::set_thread_res_gid(gid, gid, gid).is_ok()
                && rustix::thread::set_thread_res_uid(uid, uid, uid).is_ok();
            became && can_enter()
        });
    asked.ok().and_then(|t| t.join().ok()).unwrap_or(false)
}

/// `bytes` random bytes from the kernel, as lowercase hex.
pub fn random_hex(bytes: usize) -> std::io::Result<String> {
    use std::io::Read;
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn access_is_decided_for_the_identity_asked_about() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let closed = dir.path().join("closed");
        std::fs::create_dir(&closed).expect("mkdir");
        std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        let me = std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m));
        assert!(super::may_enter_as(&closed, 0, 0, &[0]) || me.is_ok_and(|u| u != 0));
        assert!(!super::may_enter_as(&dir.path().join("missing"), 0, 0, &[]));
        if crate::sys::process::is_root() {
            // Root's own checks pass everything; another identity's do not.
            assert!(!super::may_enter_as(&closed, 65534, 65534, &[65534]));
            assert!(super::may_enter_as(
                std::path::Path::new("/tmp"),
                65534,
                65534,
                &[]
            ));
            // The daemon's own credentials are untouched.
            assert!(super::may_enter_as(&closed, 0, 0, &[0]));
        }
    }

    #[test]
    fn free_space_is_known_for_existing_paths_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(super::free_bytes(dir.path()).is_some_and(|b| b > 0));
        assert_eq!(super::free_bytes(&dir.path().join("missing")), None);
        let space = super::space(dir.path()).expect("space");
        assert!(space.total >= space.free && space.total > 0);
    }

    #[test]
    fn a_file_can_be_given_to_its_owner() {
        let file = tempfile::tempfile().expect("file");
        let meta = file.metadata().expect("metadata");
        use std::os::unix::fs::MetadataExt;
        super::change_owner(&file, meta.uid(), meta.gid()).expect("fchown");
        assert_eq!(super::random_hex(4).expect("random").len(), 8);
    }
}

//! The operating system as labbench uses it, by topic: [`process`]
//! (forking, signals, sessions, identity), [`fd`] (pipes, polling,
//! inherited descriptors), [`fs`] (free space, owners, access),
//! [`procfs`] (the kernel's files about processes, each read in one
//! place) and [`accounts`] (the C library's name service).
//!
//! System calls go through rustix's safe wrappers; `unsafe` is left where
//! none exists (fork, `_exit`, signal dispositions, descriptors taken or
//! replaced by number, the C library's account lookups), and a function
//! whose caller must keep a promise is unsafe to call, its promise in a
//! `# Safety` section. Must not use anything of labbench above it.

pub mod accounts;
pub mod fd;
pub mod fs;
pub mod process;
pub mod procfs;

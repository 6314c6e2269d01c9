//! labbench: a workbench for a shared compute host, reached with `ssh lab@host`.
//!
//! Layers, outermost first: [`ssh`] (the embedded russh server) serves [`tui`]
//! (the interactive interface) and [`cli`] (commands); both call the one
//! service, [`lab`], which checks every action (authorization and
//! validation) and acts through [`store`] (sled); [`sched`] decides, as a pure
//! function, which queued experiments start; [`exec`] runs them (the runner,
//! launcher, supervisors, cgroups and logs); [`monitor`] samples `/proc`,
//! sysinfo and GPUs and publishes host snapshots and peak series. [`model`]
//! holds the plain domain types, [`config`] the configuration, [`units`]
//! formats quantities for people, [`sys`] wraps the few libc calls, and
//! [`server`] wires `labbench serve` together.
//!
//! `vendor/sled/` is sled 0.34.7 with one patch (a flush writes on the
//! thread that flushes); `vendor/README.md` says why and how to check it
//! against the published crate.

pub mod cli;
pub mod config;
pub mod describe;
pub mod exec;
pub mod exit;
pub mod lab;
pub mod model;
pub mod monitor;
pub mod output;
pub mod runner;
pub mod sched;
pub mod server;
pub mod ssh;
pub mod store;
pub mod sys;
pub mod tui;
pub mod units;

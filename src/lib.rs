//! labbench: a workbench for a shared compute host, reached with `ssh lab@host`.
//!
//! Layers, outermost first; each calls only the ones below it:
//!
//! - Front ends: [`ssh`] (the embedded russh server) serves [`tui`] (the
//!   interactive interface, one component per tab) and [`cli`] (commands).
//!   Both call the one service and nothing under it.
//! - [`runner`]: starts what the scheduler allows, watches and stops
//!   experiments, and records their ends; it holds the service only as a
//!   [`lab::Engine`] and runs processes through [`exec`], and captures
//!   experiments' provenance through [`provenance`] (a helper process that
//!   reads as the experiment's owner, never as root).
//! - [`guard`]: the login-node guard, beside the runner: holds what capped
//!   Unix users run outside the queue to their caps, through the service's
//!   limits and [`exec`]'s per-user cgroups.
//! - [`lab`], the service: checks every action (authorization with the
//!   caller's current role, validation) and acts through [`store`] (sled),
//!   [`sched`] (which queued experiments start, a pure function), [`output`]
//!   (experiment logs, journals and their readers) and [`monitor`] (samples
//!   of `/proc`, sysinfo and GPUs; host snapshots and peak series).
//! - [`exec`]: confines and runs processes (launcher, supervisors, cgroups,
//!   the pool of kept supervisors); it knows nothing of the service.
//! - Used by all: [`model`] (the plain domain types, every type the store
//!   keeps), [`sys`] (the few system calls rustix does not wrap safely, by
//!   topic), [`units`] (quantities for people), [`exit`] (commands' exit
//!   statuses), [`config`]; [`describe`] words experiments for both front
//!   ends; [`server`] wires `labbench serve` together.
//!
//! `vendor/sled/` is sled 0.34.7 with one patch (a flush writes on the
//! thread that flushes); `vendor/README.md` says why and how to check it
//! against the published crate.

pub mod cli;
pub mod config;
pub mod describe;
pub mod exec;
pub mod exit;
pub mod guard;
pub mod lab;
pub mod model;
pub mod monitor;
pub mod output;
pub mod provenance;
pub mod report;
pub mod runner;
pub mod sched;
pub mod server;
pub mod ssh;
pub mod store;
pub mod sys;
pub mod tui;
pub mod units;

//! labbench: a workbench for a shared compute host, reached with `ssh lab@host`.
//!
//! Layers, outermost first: [`ssh`] serves [`tui`] (interactive) and [`cli`]
//! (commands); both call the one service, [`lab`], which checks every action
//! and acts through [`store`]; [`monitor`] publishes host snapshots.

pub mod cli;
pub mod config;
pub mod exec;
pub mod lab;
pub mod model;
pub mod monitor;
pub mod sched;
pub mod server;
pub mod ssh;
pub mod store;
pub mod sys;
pub mod tui;
pub mod units;

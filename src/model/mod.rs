//! Domain types: plain data with serde, no storage or I/O.
//!
//! Owns what a lab user, a role and a registered key are, and the rules for
//! valid names and keys. Must not touch the store, the network or the screen.

mod experiment;
mod gpu;
mod key;
mod user;

pub use experiment::{
    CommandLine, EXPERIMENT_COLUMNS, Experiment, ExperimentSpec, MAX_DURATION_SECS, Outcome,
    ResourceUse, Resources, State, Stop, Transition, end_status, is_reserved_env, parse_duration,
    parse_size, signal_name,
};
pub use gpu::{HostGpu, cuda_visible};
pub use key::{KeyError, PROOF_NAMESPACE, PublicKeyInfo};
pub use user::{NameError, Role, User, validate_user_name};

//! Connection and session limits, so that no one can take what everyone
//! shares: counted with guards that release on drop.
//!
//! - A connection that has not logged in holds a *startup* slot: at most
//!   [`LimitSettings::max_startups`] at once, and
//!   [`LimitSettings::max_startups_per_source`] from one address.
//! - Sources are penalised as OpenSSH's `PerSourcePenalties` do: each
//!   connection that ends without logging in, or is refused for too many
//!   at once from its source, adds [`NOAUTH_PENALTY`] (one that outstays
//!   the login grace, [`GRACE_PENALTY`]), the penalty runs
//!   down in real time, and while it is over [`PENALTY_ENFORCED_ABOVE`] the
//!   source's new connections are refused at once. Logged-in connections
//!   are never penalised, so scripts may connect as often as they like; a
//!   login refused for a user's or key's limit is not either; and a source
//!   someone logged in from in the last [`TRUSTED_FOR`] is not refused (a
//!   jump host, a shared NAT, the host itself: a stranger's junk there must
//!   not lock out the members who use it).
//! - A source is an address, except that every loopback address counts as
//!   one (127.0.0.0/8 and ::1: a local user could bind many) and an IPv6
//!   address counts by its /64 network.
//! - Once logged in, a connection holds a *connection* slot: at most
//!   [`LimitSettings::max_connections`], per user and per key too.
//! - Each session (a shell or a command) holds a *session* slot: at most
//!   [`LimitSettings::max_sessions`], and per user.
//! - The last [`LimitSettings::admin_reserve`] connection and session slots
//!   are for admins only, so an admin can always get in to act.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Penalty for a connection that ended without logging in.
pub const NOAUTH_PENALTY: Duration = Duration::from_secs(1);
/// Penalty for a connection that outstayed the login grace.
pub const GRACE_PENALTY: Duration = Duration::from_secs(10);
/// Penalty above which a source's new connections are refused.
pub const PENALTY_ENFORCED_ABOVE: Duration = Duration::from_secs(15);
/// Longest penalty a source can accumulate.
pub const MAX_PENALTY: Duration = Duration::from_secs(600);
/// Most sources with a penalty tracked at once (the oldest are forgotten).
const MAX_PENALISED_SOURCES: usize = 65_536;
/// How long a source someone logged in from is not refused for penalties.
pub const TRUSTED_FOR: Duration = Duration::from_secs(600);

/// What limits count by: `address` as a source (see the module's text).
pub fn source_of(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(v4) if v4.is_loopback() => IpAddr::from([127, 0, 0, 1]),
        IpAddr::V6(v6) if v6.is_loopback() => IpAddr::from([127, 0, 0, 1]),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => source_of(IpAddr::V4(v4)),
            None => {
                let mut network = v6.segments();
                network[4..].fill(0);
                IpAddr::from(network)
            }
        },
        v4 => v4,
    }
}

/// How many of each a server allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitSettings {
    /// Connections not logged in yet, in all.
    pub max_startups: usize,
    /// Connections not logged in yet, from one address.
    pub max_startups_per_source: usize,
    /// Whether sources whose connections end without logging in are penalised.
    pub penalize_sources: bool,
    /// Logged-in connections, in all.
    pub max_connections: usize,
    /// Logged-in connections of one user.
    pub max_connections_per_user: usize,
    /// Logged-in connections with one key.
    pub max_connections_per_key: usize,
    /// Sessions (shells and commands), in all.
    pub max_sessions: usize,
    /// Sessions of one user.
    pub max_sessions_per_user: usize,
    /// Connections and sessions (of the totals) only admins may take.
    pub admin_reserve: usize,
}

/// Why a connection or session was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The source is penalised for connections that ended without logging in.
    #[error("source {0} is penalised for connections that did not log in")]
    Penalised(IpAddr),
    /// Too many connections are logging in at once, in all or from the source.
    #[error("too many connections logging in at once ({0})")]
    Startups(&'static str),
    /// A limit on logged-in connections or sessions.
    #[error("{0}")]
    Limit(String),
}

impl Refusal {
    /// What the refused client is told before the connection closes (the
    /// words OpenSSH sends in its place).
    pub fn banner(&self) -> &'static [u8] {
        match self {
            Refusal::Penalised(_) => b"Not allowed at this time\r\n",
            Refusal::Startups(_) | Refusal::Limit(_) => b"Exceeded MaxStartups\r\n",
        }
    }
}

#[derive(Debug, Default)]
struct Counts {
    startups: usize,
    startups_by_source: HashMap<IpAddr, usize>,
    /// Penalty of each source and when it was last updated.
    penalties: HashMap<IpAddr, (Duration, Instant)>,
    /// When someone last logged in from each source.
    logins: HashMap<IpAddr, Instant>,
    connections: usize,
    connections_by_user: HashMap<String, usize>,
    connections_by_key: HashMap<String, usize>,
    sessions: usize,
    sessions_by_user: HashMap<String, usize>,
}

/// Refuses when `who` holds `held` of at most `max` (setting `key`).
fn room(held: usize, max: usize, key: &str, who: &str) -> Result<(), Refusal> {
    if held < max {
        return Ok(());
    }
    Err(Refusal::Limit(format!(
        "{who} holds {held}, the most server.{key} allows (admins keep a reserve of the totals)"
    )))
}

fn count(map: &HashMap<String, usize>, key: &str) -> usize {
    map.get(key).copied().unwrap_or(0)
}

fn take_one<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, key: K) {
    *map.entry(key).or_insert(0) += 1;
}

fn give_back<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, key: &K) {
    if let Some(count) = map.get_mut(key) {
        *count = count.saturating_sub(1);
        if *count == 0 {
            map.remove(key);
        }
    }
}

/// The server's counters.
#[derive(Debug)]
pub struct ConnectionLimits {
    counts: Mutex<Counts>,
    settings: LimitSettings,
}

/// Held by a connection until it logs in (see [`StartupSlot::logged_in`]);
/// dropped before, it penalises its source.
#[derive(Debug)]
pub struct StartupSlot {
    limits: Arc<ConnectionLimits>,
    source: IpAddr,
    /// Outstayed the login grace (a heavier penalty).
    overstayed: bool,
    /// Refused for a limit of its user or key: no penalty.
    excused: bool,
    done: bool,
}

/// Held by a logged-in connection.
#[derive(Debug)]
pub struct ConnectionSlot {
    limits: Arc<ConnectionLimits>,
    user: String,
    key: String,
}

/// Held by a session.
#[derive(Debug)]
pub struct SessionSlot {
    limits: Arc<ConnectionLimits>,
    user: String,
}

impl ConnectionLimits {
    /// Limits with `settings`.
    pub fn new(settings: LimitSettings) -> Arc<Self> {
        Arc::new(ConnectionLimits {
            counts: Mutex::new(Counts::default()),
            settings,
        })
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        // The counts stay consistent whatever panicked while the lock was held.
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits a new connection from `source` until it logs in, or says why not.
    pub fn admit(self: &Arc<Self>, address: IpAddr) -> Result<StartupSlot, Refusal> {
        let source = source_of(address);
        let mut counts = self.counts();
        let trusted = counts
            .logins
            .get(&source)
            .is_some_and(|at| at.elapsed() < TRUSTED_FOR);
        if self.settings.penalize_sources
            && !trusted
            && penalty_now(&mut counts, source) > PENALTY_ENFORCED_ABOVE
        {
            return Err(Refusal::Penalised(source));
        }
        if counts.startups >= self.settings.max_startups {
            return Err(Refusal::Startups("server.max_startups"));
        }
        if counts.startups_by_source.get(&source).copied().unwrap_or(0)
            >= self.settings.max_startups_per_source
        {
            // Hammering: as costly as a connection that never logged in.
            if self.settings.penalize_sources {
                penalise(&mut counts, source, NOAUTH_PENALTY);
            }
            return Err(Refusal::Startups("server.max_startups_per_source"));
        }
        counts.startups += 1;
        take_one(&mut counts.startups_by_source, source);
        Ok(StartupSlot {
            limits: Arc::clone(self),
            source,
            overstayed: false,
            excused: false,
            done: false,
        })
    }

    /// A logged-in connection of `user` (with key `key`), or why not.
    pub fn connect(
        self: &Arc<Self>,
        user: &str,
        key: &str,
        admin: bool,
    ) -> Result<ConnectionSlot, Refusal> {
        let s = &self.settings;
        let mut counts = self.counts();
        let c = &*counts;
        room(
            c.connections,
            self.total(s.max_connections, admin),
            "max_connections",
            "the server",
        )?;
        room(
            count(&c.connections_by_user, user),
            s.max_connections_per_user,
            "max_connections_per_user",
            user,
        )?;
        room(
            count(&c.connections_by_key, key),
            s.max_connections_per_key,
            "max_connections_per_key",
            key,
        )?;
        counts.connections += 1;
        take_one(&mut counts.connections_by_user, user.to_string());
        take_one(&mut counts.connections_by_key, key.to_string());
        Ok(ConnectionSlot {
            limits: Arc::clone(self),
            user: user.to_string(),
            key: key.to_string(),
        })
    }

    /// A session of `user`, or why not.
    pub fn open_session(self: &Arc<Self>, user: &str, admin: bool) -> Result<SessionSlot, Refusal> {
        let s = &self.settings;
        let mut counts = self.counts();
        let c = &*counts;
        room(
            c.sessions,
            self.total(s.max_sessions, admin),
            "max_sessions",
            "the server",
        )?;
        room(
            count(&c.sessions_by_user, user),
            s.max_sessions_per_user,
            "max_sessions_per_user",
            user,
        )?;
        counts.sessions += 1;
        take_one(&mut counts.sessions_by_user, user.to_string());
        Ok(SessionSlot {
            limits: Arc::clone(self),
            user: user.to_string(),
        })
    }

    /// How many of `max` a caller may hold in all: all for admins, less the
    /// admins' reserve for others.
    fn total(&self, max: usize, admin: bool) -> usize {
        if admin {
            max
        } else {
            max.saturating_sub(self.settings.admin_reserve)
        }
    }

    /// The penalty `source` has now (tests, diagnostics).
    pub fn penalty(&self, address: IpAddr) -> Duration {
        penalty_now(&mut self.counts(), source_of(address))
    }
}

/// `source`'s penalty, run down to now.
fn penalty_now(counts: &mut Counts, source: IpAddr) -> Duration {
    let Some((penalty, at)) = counts.penalties.get_mut(&source) else {
        return Duration::ZERO;
    };
    let now = Instant::now();
    *penalty = penalty.saturating_sub(now.duration_since(*at));
    *at = now;
    let left = *penalty;
    if left.is_zero() {
        counts.penalties.remove(&source);
    }
    left
}

/// Adds `added` to `source`'s penalty (at most [`MAX_PENALTY`]).
fn penalise(counts: &mut Counts, source: IpAddr, added: Duration) {
    let now_penalty = penalty_now(counts, source);
    if counts.penalties.len() >= MAX_PENALISED_SOURCES && !counts.penalties.contains_key(&source) {
        // Forget the source nearest to being let in again.
        let lightest = counts
            .penalties
            .iter()
            .min_by_key(|(_, (penalty, _))| *penalty)
            .map(|(source, _)| *source);
        if let Some(lightest) = lightest {
            counts.penalties.remove(&lightest);
        }
    }
    counts.penalties.insert(
        source,
        ((now_penalty + added).min(MAX_PENALTY), Instant::now()),
    );
}

impl StartupSlot {
    /// The connection outstayed the login grace: its end weighs more.
    pub fn overstayed(&mut self) {
        self.overstayed = true;
    }

    /// A login was refused for a limit of the user or key, not for who
    /// they are: the end of this connection costs its source nothing.
    pub fn excuse(&mut self) {
        self.excused = true;
    }

    /// The connection logged in: the slot is given back without penalty,
    /// and its source is trusted a while.
    pub fn logged_in(mut self) {
        self.done = true;
        self.give_back();
        let mut counts = self.limits.counts();
        if counts.logins.len() >= MAX_PENALISED_SOURCES {
            counts.logins.retain(|_, at| at.elapsed() < TRUSTED_FOR);
        }
        if counts.logins.len() < MAX_PENALISED_SOURCES {
            counts.logins.insert(self.source, Instant::now());
        }
    }

    fn give_back(&self) {
        let mut counts = self.limits.counts();
        counts.startups = counts.startups.saturating_sub(1);
        give_back(&mut counts.startups_by_source, &self.source);
    }
}

impl Drop for StartupSlot {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        self.give_back();
        if !self.limits.settings.penalize_sources || self.excused {
            return;
        }
        let added = if self.overstayed {
            GRACE_PENALTY
        } else {
            NOAUTH_PENALTY
        };
        penalise(&mut self.limits.counts(), self.source, added);
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut counts = self.limits.counts();
        counts.connections = counts.connections.saturating_sub(1);
        give_back(&mut counts.connections_by_user, &self.user);
        give_back(&mut counts.connections_by_key, &self.key);
    }
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        let mut counts = self.limits.counts();
        counts.sessions = counts.sessions.saturating_sub(1);
        give_back(&mut counts.sessions_by_user, &self.user);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> LimitSettings {
        LimitSettings {
            max_startups: 4,
            max_startups_per_source: 2,
            penalize_sources: true,
            max_connections: 4,
            max_connections_per_user: 2,
            max_connections_per_key: 2,
            max_sessions: 4,
            max_sessions_per_user: 2,
            admin_reserve: 1,
        }
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn startups_are_limited_in_all_and_per_source() {
        let limits = ConnectionLimits::new(settings());
        let a = limits.admit(ip(1)).expect("first");
        let _b = limits.admit(ip(1)).expect("second");
        assert_eq!(
            limits.admit(ip(1)).map(|_| ()),
            Err(Refusal::Startups("server.max_startups_per_source"))
        );
        let _c = limits.admit(ip(2)).expect("another source");
        let _d = limits.admit(ip(3)).expect("fourth");
        assert_eq!(
            limits.admit(ip(4)).map(|_| ()),
            Err(Refusal::Startups("server.max_startups"))
        );
        a.logged_in();
        assert!(limits.admit(ip(1)).is_ok());
    }

    #[test]
    fn sources_that_never_log_in_are_refused_for_a_while() {
        let limits = ConnectionLimits::new(settings());
        for _ in 0..16 {
            drop(limits.admit(ip(1)).expect("not yet penalised"));
        }
        assert!(limits.penalty(ip(1)) > PENALTY_ENFORCED_ABOVE);
        assert_eq!(
            limits.admit(ip(1)).map(|_| ()),
            Err(Refusal::Penalised(ip(1)))
        );
        assert_eq!(
            Refusal::Penalised(ip(1)).banner(),
            b"Not allowed at this time\r\n"
        );
        // Others are not, and logging in is never penalised.
        for _ in 0..20 {
            limits.admit(ip(2)).expect("logs in").logged_in();
        }
        assert_eq!(limits.penalty(ip(2)), Duration::ZERO);
        let mut slow = limits.admit(ip(3)).expect("admitted");
        slow.overstayed();
        drop(slow);
        assert!(limits.penalty(ip(3)) > NOAUTH_PENALTY);
    }

    #[test]
    fn loopback_counts_as_one_source_and_ipv6_by_its_network() {
        assert_eq!(
            source_of(IpAddr::from([127, 0, 0, 9])),
            source_of(IpAddr::from([127, 1, 2, 3]))
        );
        assert_eq!(
            source_of("::1".parse().expect("v6")),
            source_of(IpAddr::from([127, 0, 0, 1]))
        );
        assert_eq!(
            source_of("2001:db8:1:2:aaaa::1".parse().expect("v6")),
            source_of("2001:db8:1:2:bbbb::9".parse().expect("v6"))
        );
        assert_ne!(
            source_of(IpAddr::from([10, 0, 0, 1])),
            source_of(IpAddr::from([10, 0, 0, 2]))
        );
    }

    #[test]
    fn a_source_someone_logs_in_from_is_not_refused_for_strangers() {
        let limits = ConnectionLimits::new(settings());
        limits.admit(ip(5)).expect("member").logged_in();
        for _ in 0..30 {
            drop(limits.admit(ip(5)).expect("trusted a while"));
        }
        assert!(limits.penalty(ip(5)) > PENALTY_ENFORCED_ABOVE);
        assert!(limits.admit(ip(5)).is_ok());
        // A login refused for a user's limit costs nothing.
        for _ in 0..30 {
            let mut over = limits.admit(ip(6)).expect("admitted");
            over.excuse();
        }
        assert_eq!(limits.penalty(ip(6)), Duration::ZERO);
    }

    #[test]
    fn users_are_limited_and_admins_keep_a_reserve() {
        let limits = ConnectionLimits::new(settings());
        let _m1 = limits.connect("mike", "k1", false).expect("first");
        let _m2 = limits.connect("mike", "k2", false).expect("second key");
        assert!(matches!(
            limits.connect("mike", "k3", false),
            Err(Refusal::Limit(why)) if why.contains("max_connections_per_user")
        ));
        let _mary = limits.connect("mary", "k4", false).expect("mary");
        // Three of four taken: the last is the admins'.
        assert!(matches!(
            limits.connect("bob", "k5", false),
            Err(Refusal::Limit(why)) if why.contains("server.max_connections ")
        ));
        let admin = limits.connect("root", "k6", true).expect("admin");
        drop(admin);

        let s1 = limits.open_session("mike", false).expect("session");
        let _s2 = limits.open_session("mike", false).expect("session");
        assert!(limits.open_session("mike", false).is_err());
        let _s3 = limits.open_session("mary", false).expect("mary");
        assert!(limits.open_session("mary", false).is_err(), "the reserve");
        let admin_session = limits.open_session("root", true).expect("admin");
        drop((s1, admin_session));
        assert!(limits.open_session("mike", false).is_ok());
    }
}

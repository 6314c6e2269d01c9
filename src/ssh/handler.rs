//! One SSH connection: authentication by key, then per-channel routing.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use ratatui::layout::Size;
use russh::server::{Auth, Msg, PublicKeyOffer, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId, ChannelOpenFailure, ChannelWriteHalf, MethodKind, MethodSet, Pty};
use tokio::sync::{mpsc, watch};

use super::channel_io::ChannelOutput;
use super::limits::{ConnectionLimits, ConnectionSlot, SessionSlot};
use crate::cli::{CommandOutput, LabCommand, StdinSource, exit, parse_exec_line, run_command};
use crate::config::Config;
use crate::lab::{Lab, Principal, SessionKind};
use crate::model::PublicKeyInfo;
use crate::tui::{TuiInput, TuiSettings, run_tui_session};

/// Most environment variables kept per channel (the rest are refused).
const MAX_ENV_VARS: usize = 64;
/// Input chunks (of at most one SSH packet, 32 KiB) buffered per channel.
const INPUT_QUEUE: usize = 64;
/// Largest pty accepted, columns × rows; bigger requests are clamped.
const MAX_PTY: (u32, u32) = (500, 300);

/// What every connection shares: the service, the configuration, the limits.
pub struct ServerShared {
    /// The service.
    pub lab: Lab,
    /// The running configuration.
    pub config: Arc<Config>,
    /// Connection and session counters.
    pub limits: Arc<ConnectionLimits>,
}

/// Where a channel's input goes once its program started.
enum ChannelInput {
    /// Nothing reads input (yet).
    None,
    /// The interactive interface's key queue.
    Tui(mpsc::Sender<Bytes>),
    /// A command's standard input; dropped at EOF. The flag is raised (and
    /// the sender dropped) when input arrives faster than the command reads.
    Stdin(mpsc::Sender<Bytes>, Arc<AtomicBool>),
}

/// State of one session channel.
struct ChannelState {
    writer: Option<ChannelWriteHalf<Msg>>,
    pty: Option<(String, Size)>,
    size: watch::Sender<Size>,
    env: Vec<(String, String)>,
    input: ChannelInput,
    /// The client sent EOF (possibly before the program started).
    eof: bool,
    closed: watch::Sender<bool>,
    /// Released when the program ends (it moves into the program's task).
    slot: Option<SessionSlot>,
}

/// What a program started on a channel gets: its output, its caller, its pty.
struct ProgramStart {
    output: ChannelOutput,
    principal: Principal,
    /// Marks the channel finished (and frees its session slot) when dropped.
    done: ProgramDone,
    pty: Option<(String, Size)>,
}

/// The russh handler of one client connection.
pub struct ConnectionHandler {
    shared: Arc<ServerShared>,
    peer: Option<SocketAddr>,
    principal: Option<Principal>,
    /// Who authenticated, once someone has (the accept loop watches it).
    authenticated: watch::Sender<Option<Principal>>,
    /// The logged-in connection's slot.
    connection_slot: Option<ConnectionSlot>,
    /// A login was refused for a limit of its user or key (see [`Self::limit_refused`]).
    limit_refused: Arc<AtomicBool>,
    channels: HashMap<ChannelId, ChannelState>,
    /// Channels whose program ended; their state is dropped at the next callback.
    finished_tx: mpsc::UnboundedSender<ChannelId>,
    finished_rx: mpsc::UnboundedReceiver<ChannelId>,
}

/// Held by a program's task: on drop the channel is reported finished and
/// its server-wide session slot released.
struct ProgramDone {
    channel: ChannelId,
    finished: mpsc::UnboundedSender<ChannelId>,
    _slot: Option<SessionSlot>,
}

impl Drop for ProgramDone {
    fn drop(&mut self) {
        let _ = self.finished.send(self.channel);
    }
}

impl ConnectionHandler {
    /// A handler for a new connection from `peer`.
    pub fn new(shared: Arc<ServerShared>, peer: Option<SocketAddr>) -> Self {
        let (finished_tx, finished_rx) = mpsc::unbounded_channel();
        ConnectionHandler {
            shared,
            peer,
            principal: None,
            authenticated: watch::Sender::new(None),
            connection_slot: None,
            limit_refused: Arc::default(),
            channels: HashMap::new(),
            finished_tx,
            finished_rx,
        }
    }

    /// Raised when a login is refused for a limit of its user or key (not
    /// for who they are): the connection's end then costs its source nothing.
    pub fn limit_refused(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.limit_refused)
    }

    /// Who the client authenticated as, once it has.
    pub fn authenticated(&self) -> watch::Receiver<Option<Principal>> {
        self.authenticated.subscribe()
    }

    fn peer(&self) -> String {
        self.peer
            .map(|p| p.to_string())
            .unwrap_or_else(|| "unknown peer".into())
    }

    /// Checks user name and key; logs and returns `None` when refused.
    fn check_key(
        &self,
        user: &str,
        key: &russh::keys::PublicKey,
    ) -> Option<(PublicKeyInfo, Principal)> {
        let expected = &self.shared.config.server.ssh_user;
        let info = match PublicKeyInfo::from_key(key) {
            Ok(info) => info,
            Err(e) => {
                tracing::warn!(peer = %self.peer(), "refused key: {e}");
                return None;
            }
        };
        if user != expected {
            tracing::warn!(
                peer = %self.peer(), key = %info.fingerprint,
                "refused SSH user name {user:?}: connect as {expected}@host"
            );
            return None;
        }
        match self.shared.lab.authenticate(&info) {
            Ok(Some(principal)) => Some((info, principal)),
            Ok(None) => {
                tracing::warn!(peer = %self.peer(), key = %info.fingerprint, "refused unknown key {}", info.fingerprint);
                None
            }
            Err(e) => {
                tracing::error!(peer = %self.peer(), "key lookup failed: {e}");
                None
            }
        }
    }

    fn publickey_only() -> Auth {
        Auth::Reject {
            proceed_with_methods: Some(MethodSet::from(&[MethodKind::PublicKey][..])),
            partial_success: false,
        }
    }

    /// Takes what a program on `channel` needs, or `None` if the channel is unknown or busy.
    fn start_program(&mut self, channel: ChannelId, input: ChannelInput) -> Option<ProgramStart> {
        let principal = self.principal.clone()?;
        let finished = self.finished_tx.clone();
        let state = self.channels.get_mut(&channel)?;
        let writer = state.writer.take()?;
        state.input = input;
        let output = ChannelOutput::new(writer, state.closed.subscribe(), state.pty.is_some());
        Some(ProgramStart {
            output,
            principal,
            done: ProgramDone {
                channel,
                finished,
                _slot: state.slot.take(),
            },
            pty: state.pty.clone(),
        })
    }
}

impl russh::server::Handler for ConnectionHandler {
    type Error = russh::Error;

    async fn auth_none(&mut self, _user: &str) -> Result<Auth, Self::Error> {
        Ok(Self::publickey_only())
    }

    async fn auth_password(&mut self, user: &str, _password: &str) -> Result<Auth, Self::Error> {
        tracing::warn!(peer = %self.peer(), "refused password authentication for {user:?}");
        Ok(Self::publickey_only())
    }

    async fn auth_keyboard_interactive<'a>(
        &'a mut self,
        user: &str,
        _submethods: &str,
        _response: Option<russh::server::Response<'a>>,
    ) -> Result<Auth, Self::Error> {
        tracing::warn!(peer = %self.peer(), "refused keyboard-interactive authentication for {user:?}");
        Ok(Self::publickey_only())
    }

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(match self.check_key(user, offer.public_key) {
            Some(_) => Auth::Accept,
            None => Self::publickey_only(),
        })
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        let Some((info, principal)) = self.check_key(user, key.public_key) else {
            return Ok(Self::publickey_only());
        };
        let slot = match self.shared.limits.connect(
            &principal.user,
            &info.fingerprint,
            principal.is_admin(),
        ) {
            Ok(slot) => slot,
            Err(why) => {
                tracing::warn!(peer = %self.peer(), user = %principal.user, "refused: {why}");
                self.limit_refused.store(true, Ordering::Release);
                return Ok(Auth::reject());
            }
        };
        tracing::info!(peer = %self.peer(), user = %principal.user, key = %info.fingerprint, "authenticated");
        self.connection_slot = Some(slot);
        self.authenticated.send_replace(Some(principal.clone()));
        self.principal = Some(principal);
        Ok(Auth::Accept)
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: russh::server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        // Forget channels whose programs ended (the client may not have closed them yet).
        while let Ok(done) = self.finished_rx.try_recv() {
            self.channels.remove(&done);
        }
        let per_connection = self.shared.config.server.max_channels_per_connection as usize;
        if self.channels.len() >= per_connection {
            tracing::warn!(peer = %self.peer(), "refused session: {per_connection} already open on this connection");
            reply.reject(ChannelOpenFailure::ResourceShortage).await;
            return Ok(());
        }
        let Some(principal) = &self.principal else {
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        };
        let slot = match self
            .shared
            .limits
            .open_session(&principal.user, principal.is_admin())
        {
            Ok(slot) => slot,
            Err(why) => {
                tracing::warn!(peer = %self.peer(), user = %principal.user, "refused session: {why}");
                reply.reject(ChannelOpenFailure::ResourceShortage).await;
                return Ok(());
            }
        };
        let id = channel.id();
        // The read half is dropped: input arrives through the handler callbacks,
        // and an unread channel queue would stall the connection.
        let (_read, writer) = channel.split();
        self.channels.insert(
            id,
            ChannelState {
                writer: Some(writer),
                pty: None,
                size: watch::Sender::new(crate::tui::FALLBACK_SIZE),
                env: Vec::new(),
                input: ChannelInput::None,
                eof: false,
                closed: watch::Sender::new(false),
                slot: Some(slot),
            },
        );
        reply.accept().await;
        Ok(())
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        term: &str,
        col_width: u32,
        row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(state) = self.channels.get_mut(&channel) else {
            return session.channel_failure(channel);
        };
        let size = clamp_size(col_width, row_height);
        state.pty = Some((term.chars().take(64).collect(), size));
        state.size.send_replace(size);
        session.channel_success(channel)
    }

    async fn window_change_request(
        &mut self,
        channel: ChannelId,
        col_width: u32,
        row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(state) = self.channels.get_mut(&channel) {
            state.size.send_replace(clamp_size(col_width, row_height));
        }
        Ok(())
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        match self.channels.get_mut(&channel) {
            Some(state) if state.env.len() < MAX_ENV_VARS && name.len() + value.len() < 4096 => {
                state.env.push((name.to_string(), value.to_string()));
                session.channel_success(channel)
            }
            _ => session.channel_failure(channel),
        }
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let (keys_tx, keys_rx) = mpsc::channel(INPUT_QUEUE);
        let Some(ProgramStart {
            output,
            principal,
            pty,
            done,
        }) = self.start_program(channel, ChannelInput::Tui(keys_tx))
        else {
            return session.channel_failure(channel);
        };
        session.channel_success(channel)?;
        let lab = self.shared.lab.clone();
        if pty.is_none() {
            let message = CommandOutput::error(
                exit::USAGE,
                "labbench: the interactive interface needs a terminal: use `ssh -t lab@host`, or run a command such as `ssh lab@host help`",
            );
            tokio::spawn(async move {
                let _done = done;
                output.finish_command(message).await;
            });
            return Ok(());
        }
        let Some(state) = self.channels.get(&channel) else {
            return Ok(());
        };
        let input = TuiInput {
            keys: keys_rx,
            size: state.size.subscribe(),
        };
        let server = &self.shared.config;
        let settings = TuiSettings {
            refresh: Duration::from_millis(server.tui.refresh_ms),
            idle_timeout: (server.server.idle_timeout_secs > 0)
                .then(|| Duration::from_secs(server.server.idle_timeout_secs)),
        };
        tokio::spawn(async move {
            let _done = done;
            let registration = lab.sessions().register(&principal.user, SessionKind::Shell);
            let mut output = output;
            let status =
                run_tui_session(lab.clone(), principal, input, &mut output, settings).await;
            drop(registration);
            output.exit(status).await;
        });
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let (stdin_tx, stdin_rx) = mpsc::channel(INPUT_QUEUE);
        let overflow = Arc::new(AtomicBool::new(false));
        let Some(ProgramStart {
            output,
            principal,
            done,
            ..
        }) = self.start_program(
            channel,
            ChannelInput::Stdin(stdin_tx, Arc::clone(&overflow)),
        )
        else {
            return session.channel_failure(channel);
        };
        // EOF may have come before the exec request: then stdin is already complete.
        if let Some(state) = self.channels.get_mut(&channel)
            && state.eof
        {
            state.input = ChannelInput::None;
        }
        session.channel_success(channel)?;
        let limit = self.shared.config.server.max_exec_command_bytes as usize;
        let parsed = if data.len() > limit {
            Err(CommandOutput::error(
                exit::USAGE,
                format!(
                    "error: command is {} bytes long; the limit is {limit} bytes (server.max_exec_command_bytes)",
                    data.len()
                ),
            ))
        } else {
            match std::str::from_utf8(data) {
                Ok(line) => parse_exec_line(line),
                Err(_) => Err(CommandOutput::error(
                    exit::USAGE,
                    "error: command is not valid UTF-8",
                )),
            }
        };
        let lab = self.shared.lab.clone();
        let max_stdin = self.shared.config.server.max_stdin_bytes as usize;
        let peer = self.peer();
        let parsed = match parsed {
            Ok(command) if command.answers_at_once() => {
                // Run here: the reply (output, exit status, EOF, close) then
                // leaves in one write with the channel's success. The
                // connection reads nothing else meanwhile (these commands do
                // little; elsewhere they would hold a runtime worker as long).
                let mut no_stdin = StdinSource::NotRead;
                let result =
                    run_exec(&lab, &principal, &peer, command, &mut no_stdin, max_stdin).await;
                let result = announced(&lab, &principal, output.pty(), result);
                match reply_in_session(session, channel, output.pty(), result)? {
                    SessionReply::Queued => {
                        drop(done);
                        return Ok(());
                    }
                    // Written by the channel's writer, with back-pressure.
                    SessionReply::Rest(rest) => Err(rest),
                }
            }
            other => other,
        };
        tokio::spawn(async move {
            let _done = done;
            let result = match parsed {
                Err(out) => out,
                Ok(command) if command.streams() => {
                    // Written as it is produced: logs can be large and -f can
                    // last hours; a long listing is never held whole.
                    let _registration = lab.sessions().register(&principal.user, SessionKind::Exec);
                    tracing::info!(peer = %peer, user = %principal.user, "exec {}", command.log_summary());
                    let mut output = output;
                    let above = announced(&lab, &principal, output.pty(), CommandOutput::default());
                    if !above.stderr.is_empty() {
                        let _ = crate::cli::StreamSink::err(&mut output, above.stderr).await;
                    }
                    let status = match lab.whoami(&principal) {
                        Ok(caller) => command
                            .stream(&lab, &caller, &mut output)
                            .await
                            .unwrap_or(exit::OK),
                        Err(e) => {
                            let out = CommandOutput::from(e);
                            let _ = crate::cli::StreamSink::err(&mut output, out.stderr).await;
                            out.status
                        }
                    };
                    output.exit(status).await;
                    return;
                }
                Ok(command) => {
                    let mut stdin = StdinSource::Channel(stdin_rx, overflow);
                    run_exec(&lab, &principal, &peer, command, &mut stdin, max_stdin).await
                }
            };
            let result = announced(&lab, &principal, output.pty(), result);
            output.finish_command(result).await;
        });
        Ok(())
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        tracing::info!(peer = %self.peer(), "refused subsystem {name:?}");
        session.channel_failure(channel)
    }

    async fn data(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(state) = self.channels.get_mut(&channel) else {
            return Ok(());
        };
        // Never block the connection on a slow consumer.
        match &state.input {
            ChannelInput::Tui(tx) => {
                // Keys typed faster than the screen can take them are dropped.
                if tx.try_send(Bytes::copy_from_slice(data)).is_err() {
                    tracing::debug!(peer = %self.peer(), "keys dropped: session is not keeping up");
                }
            }
            ChannelInput::Stdin(tx, overflow) => {
                // Standard input is never silently truncated: the command is told.
                if tx.try_send(Bytes::copy_from_slice(data)).is_err() {
                    overflow.store(true, Ordering::Release);
                    state.input = ChannelInput::None;
                }
            }
            ChannelInput::None => {}
        }
        Ok(())
    }

    async fn channel_eof(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(state) = self.channels.get_mut(&channel) {
            state.eof = true;
            if matches!(state.input, ChannelInput::Stdin(..)) {
                state.input = ChannelInput::None;
            }
        }
        Ok(())
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(state) = self.channels.remove(&channel) {
            state.closed.send_replace(true);
        }
        Ok(())
    }
}

impl Drop for ConnectionHandler {
    fn drop(&mut self) {
        for (_, state) in self.channels.drain() {
            state.closed.send_replace(true);
        }
    }
}

/// Runs an exec'd command for `principal`, counted among their sessions
/// while it runs.
async fn run_exec(
    lab: &Lab,
    principal: &Principal,
    peer: &str,
    command: LabCommand,
    stdin: &mut StdinSource,
    max_stdin: usize,
) -> CommandOutput {
    let _registration = lab.sessions().register(&principal.user, SessionKind::Exec);
    tracing::info!(peer = %peer, user = %principal.user, "exec {}", command.log_summary());
    run_command(lab, principal, command, stdin, max_stdin).await
}

/// Most reply bytes [`reply_in_session`] queues in the session.
const SESSION_REPLY_MAX: usize = 32 * 1024;

/// What [`reply_in_session`] left to the back-pressured writer.
enum SessionReply {
    /// All of it is queued: output, exit status, EOF and close.
    Queued,
    /// This remains to be sent.
    Rest(CommandOutput),
}

/// Queues a finished command's reply (standard output and error, exit
/// status, EOF, close) on `channel` in the session, to leave with the
/// handler's next flush. A reply over [`SESSION_REPLY_MAX`] is left whole;
/// when russh holds some output back (the client's window is full, or a key
/// exchange is under way), the exit status and the rest are left, so that
/// they follow the output instead of overtaking it.
fn reply_in_session(
    session: &mut Session,
    channel: ChannelId,
    pty: bool,
    output: CommandOutput,
) -> Result<SessionReply, russh::Error> {
    // With a pty, each `\n` may become two bytes.
    let most = (output.stdout.len() + output.stderr.len()) * if pty { 2 } else { 1 };
    if most > SESSION_REPLY_MAX {
        return Ok(SessionReply::Rest(output));
    }
    let stdout = super::channel_io::as_sent(output.stdout, pty);
    let stderr = super::channel_io::as_sent(output.stderr, pty);
    if !stdout.is_empty() {
        session.data(channel, stdout)?;
    }
    if !stderr.is_empty() {
        session.extended_data(channel, super::channel_io::STDERR, stderr)?;
    }
    if session.has_pending_data(channel) {
        // russh sends the writer's messages only once pending data is out.
        return Ok(SessionReply::Rest(CommandOutput {
            status: output.status,
            ..CommandOutput::default()
        }));
    }
    session.exit_status_request(channel, output.status)?;
    session.eof(channel)?;
    session.close(channel)?;
    Ok(SessionReply::Queued)
}

/// `out` with the announcement above it on standard error, when the
/// command runs in a terminal (`ssh -t`): people see it, and scripts,
/// which run without one and read standard output, never do.
fn announced(lab: &Lab, principal: &Principal, pty: bool, mut out: CommandOutput) -> CommandOutput {
    if !pty {
        return out;
    }
    if let Ok(Some(a)) = lab.announcement(principal) {
        let mut above =
            format!("announcement: {}\n", crate::units::printable(&a.text)).into_bytes();
        above.append(&mut out.stderr);
        out.stderr = above;
    }
    out
}

/// A pty size from the client, bounded to something sane.
fn clamp_size(cols: u32, rows: u32) -> Size {
    Size::new(cols.min(MAX_PTY.0) as u16, rows.min(MAX_PTY.1) as u16)
}

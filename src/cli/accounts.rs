//! The account commands: `whoami`, `users`, `user …` and `key …`.

use serde::Serialize;

use super::commands::UserAction;
use super::output::{CommandOutput, exit, table};
use crate::lab::{KeyOffer, Lab, Principal, UnixMapping};
use crate::model::{KeyRecord, Role, User};
use crate::units::minute_time;

#[derive(Serialize)]
struct WhoamiJson<'a> {
    user: &'a str,
    role: Role,
    unix_user: Option<&'a str>,
    key_fingerprint: Option<&'a str>,
}

pub(super) fn whoami(p: &Principal, json: bool) -> CommandOutput {
    if json {
        return CommandOutput::json(&WhoamiJson {
            user: &p.user,
            role: p.role,
            unix_user: p.unix_user.as_deref(),
            key_fingerprint: p.key_fingerprint.as_deref(),
        });
    }
    let key = p
        .key_fingerprint
        .as_deref()
        .unwrap_or("(local operator, no key)");
    CommandOutput::ok(format!(
        "{} ({}), unix user {}, key {}\n",
        p.user,
        p.role,
        p.unix_user.as_deref().unwrap_or("(none)"),
        key
    ))
}

pub(super) fn users(lab: &Lab, p: &Principal, json: bool) -> CommandOutput {
    let users = match lab.list_users(p) {
        Ok(u) => u,
        Err(e) => return e.into(),
    };
    if json {
        return CommandOutput::json(&users);
    }
    let rows: Vec<Vec<String>> = users
        .iter()
        .map(|u| {
            vec![
                u.name.clone(),
                u.role.to_string(),
                u.unix_user.clone().unwrap_or_else(|| "-".into()),
                u.keys.to_string(),
                minute_time(u.created_at),
                if u.disabled { "disabled" } else { "" }.into(),
            ]
        })
        .collect();
    CommandOutput::ok(table(
        &["NAME", "ROLE", "UNIX USER", "KEYS", "CREATED", "STATE"],
        &rows,
    ))
}

/// Runs a `user …` action; `--json` prints the user as it now is (`user rm`:
/// `{"removed": NAME, "cancelled": [IDS]}`).
pub(super) fn user_action(
    lab: &Lab,
    p: &Principal,
    action: UserAction,
    json: bool,
) -> CommandOutput {
    let changed = |u: User, text: String| {
        if json {
            CommandOutput::json(&u)
        } else {
            CommandOutput::ok(text)
        }
    };
    let result = match action {
        UserAction::Add { name, role, unix } => {
            let mapping = UnixMapping {
                account: (!unix.no_unix_user).then(|| unix.unix_user.unwrap_or(name.clone())),
                allow_system_account: unix.allow_system_account,
                allow_shared: unix.allow_shared_unix_user,
            };
            lab.add_user(p, &name, role, &mapping).map(|u| {
                let text = format!(
                    "added user {} ({}, {}); register a key with: key add {} < key.pub\n",
                    u.name,
                    u.role,
                    unix_words(u.unix_user.as_deref()),
                    u.name
                );
                changed(u, text)
            })
        }
        UserAction::SetUnix {
            name,
            unix_user,
            none,
            allow_system_account,
            allow_shared_unix_user,
        } => {
            let mapping = UnixMapping {
                account: if none { None } else { unix_user },
                allow_system_account,
                allow_shared: allow_shared_unix_user,
            };
            lab.set_unix_user(p, &name, &mapping).map(|u| {
                let text = format!(
                    "{} now has {}\n",
                    u.name,
                    unix_words(u.unix_user.as_deref())
                );
                changed(u, text)
            })
        }
        UserAction::SetRole { name, role } => lab.set_role(p, &name, role).map(|u| {
            let text = format!("{} is now {}\n", u.name, u.role);
            changed(u, text)
        }),
        UserAction::Rm { name } => lab.remove_user(p, &name).map(|cancelled| {
            if json {
                return CommandOutput::json(&serde_json::json!({
                    "removed": name, "cancelled": cancelled
                }));
            }
            let ids: Vec<String> = cancelled.iter().map(u64::to_string).collect();
            CommandOutput::ok(match ids.len() {
                0 => format!("removed user {name} and their keys\n"),
                _ => format!(
                    "removed user {name} and their keys; cancelled their queued experiments {}\n",
                    ids.join(" ")
                ),
            })
        }),
        UserAction::Disable { name } => set_disabled(lab, p, name, true, json),
        UserAction::Enable { name } => set_disabled(lab, p, name, false, json),
    };
    result.unwrap_or_else(Into::into)
}

/// `user disable|enable NAME`.
fn set_disabled(
    lab: &Lab,
    p: &Principal,
    name: String,
    disabled: bool,
    json: bool,
) -> Result<CommandOutput, crate::lab::LabError> {
    lab.set_disabled(p, &name, disabled).map(|()| {
                let word = if disabled { "disabled" } else { "enabled" };
                if json {
                    return CommandOutput::json(&serde_json::json!({"user": name, "disabled": disabled}));
                }
                CommandOutput::ok(match disabled {
                    true => format!("{name} is disabled: no login, sessions end, queued experiments held (user enable {name} restores)\n"),
                    false => format!("{name} is {word} again\n"),
                })
            })
}

/// "unix user alice", or "no unix user (cannot run experiments)".
fn unix_words(account: Option<&str>) -> String {
    match account {
        Some(account) => format!("unix user {account}"),
        None => "no unix user (cannot run experiments)".into(),
    }
}

/// Adds every key line in `text`; all are checked before any is added.
pub(super) fn add_keys(
    lab: &Lab,
    p: &Principal,
    name: &str,
    text: &str,
    json: bool,
) -> CommandOutput {
    let offers = match key_offers(text) {
        Ok(offers) if offers.is_empty() => {
            return CommandOutput::error(
                exit::USAGE,
                "error: no key given: pass it as an argument or on standard input (key add NAME < key.pub)",
            );
        }
        Ok(offers) => offers,
        Err(e) => return CommandOutput::error(exit::USAGE, format!("error: {e}")),
    };
    match lab.add_keys(p, name, &offers) {
        Ok(records) if json => {
            CommandOutput::json(&records.iter().map(key_json).collect::<Vec<_>>())
        }
        Ok(records) => CommandOutput::ok(
            records
                .iter()
                .map(|r| {
                    format!(
                        "added {} key {} to {name}\n",
                        r.key.algorithm, r.key.fingerprint
                    )
                })
                .collect::<String>(),
        ),
        Err(e) => e.into(),
    }
}

/// Public key lines, each optionally followed by its armored signature
/// (`-----BEGIN SSH SIGNATURE-----` … `-----END SSH SIGNATURE-----`).
fn key_offers(text: &str) -> Result<Vec<KeyOffer>, String> {
    const BEGIN: &str = "-----BEGIN SSH SIGNATURE-----";
    const END: &str = "-----END SSH SIGNATURE-----";
    let mut offers: Vec<KeyOffer> = Vec::new();
    let mut signature: Option<String> = None;
    for line in text.lines().map(str::trim) {
        if let Some(armored) = &mut signature {
            armored.push_str(line);
            armored.push('\n');
            if line == END {
                let proof = signature.take();
                match offers.last_mut() {
                    Some(offer) if offer.proof.is_none() => offer.proof = proof,
                    _ => return Err("a signature must follow the key it proves".into()),
                }
            }
            continue;
        }
        if line == BEGIN {
            signature = Some(format!("{BEGIN}\n"));
        } else if !line.is_empty() && !line.starts_with('#') {
            offers.push(KeyOffer {
                line: line.to_string(),
                proof: None,
            });
        }
    }
    if signature.is_some() {
        return Err(format!("a signature has no {END} line"));
    }
    Ok(offers)
}

#[derive(Serialize)]
struct KeyJson<'a> {
    user: &'a str,
    fingerprint: &'a str,
    algorithm: &'a str,
    comment: &'a str,
    added_at: i64,
    added_by: &'a str,
}

fn key_json(r: &KeyRecord) -> KeyJson<'_> {
    KeyJson {
        user: &r.user,
        fingerprint: &r.key.fingerprint,
        algorithm: &r.key.algorithm,
        comment: &r.key.comment,
        added_at: r.added_at,
        added_by: &r.added_by,
    }
}

pub(super) fn keys(lab: &Lab, p: &Principal, name: Option<&str>, json: bool) -> CommandOutput {
    let records: Vec<KeyRecord> = match lab.list_keys(p, name) {
        Ok(k) => k,
        Err(e) => return e.into(),
    };
    if json {
        return CommandOutput::json(&records.iter().map(key_json).collect::<Vec<_>>());
    }
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            vec![
                r.user.clone(),
                r.key.fingerprint.clone(),
                r.key.algorithm.clone(),
                r.key.comment.clone(),
                minute_time(r.added_at),
            ]
        })
        .collect();
    CommandOutput::ok(table(
        &["USER", "FINGERPRINT", "TYPE", "COMMENT", "ADDED"],
        &rows,
    ))
}

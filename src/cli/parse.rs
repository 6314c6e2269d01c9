//! Parsing a command line sent over SSH (or given to `labbench CMD`) into a
//! [`LabCommand`], with usage errors as the user sees them.

use clap::Parser;

use super::commands::LabCommand;
use super::output::{CommandOutput, exit};

/// The parser for commands sent over SSH.
#[derive(Debug, Parser)]
#[command(
    name = "labbench",
    bin_name = "ssh lab@host",
    disable_version_flag = true,
    about = "labbench: a shared compute host's workbench. Commands:"
)]
struct ExecLine {
    #[command(subcommand)]
    command: LabCommand,
}

/// Every command a user can run, as typed after `ssh lab@host` (`"user add"`,
/// `"ls"`; `help` left out), with its parser: for checks over all commands
/// (the authorization matrix, `--json` everywhere).
pub fn command_leaves() -> Vec<(String, clap::Command)> {
    use clap::CommandFactory;
    fn walk(c: &clap::Command, path: &str, out: &mut Vec<(String, clap::Command)>) {
        let subs: Vec<_> = c
            .get_subcommands()
            .filter(|s| s.get_name() != "help")
            .collect();
        if subs.is_empty() {
            out.push((path.to_string(), c.clone()));
        }
        for sub in subs {
            let path = format!("{path} {}", sub.get_name());
            walk(sub, path.trim(), out);
        }
    }
    let mut parser = ExecLine::command();
    parser.build();
    let mut leaves = Vec::new();
    walk(&parser, "", &mut leaves);
    leaves
}

/// Parses an exec command line. `Err` carries the output to send instead
/// (help text with status 0, or a usage error with status 2).
pub fn parse_exec_line(line: &str) -> Result<LabCommand, CommandOutput> {
    let argv = shell_words::split(line).map_err(|e| {
        CommandOutput::error(
            exit::USAGE,
            format!("error: cannot split command line: {e}\nhint: check quotes; run 'help' to list commands"),
        )
    })?;
    if argv.is_empty() {
        return Err(CommandOutput::error(
            exit::USAGE,
            "error: empty command\nhint: run 'help' to list commands, or 'ssh -t lab@host' for the interactive interface",
        ));
    }
    parse_exec_argv(argv)
}

/// Parses an already split command (`["submit", "--mem", "8G", …]`), as
/// `parse_exec_line` does after splitting: the interface's forms use it so
/// they accept and refuse exactly what the commands do.
pub fn parse_exec_argv(argv: Vec<String>) -> Result<LabCommand, CommandOutput> {
    use clap::{CommandFactory, FromArgMatches};
    // Building the parser (every command, flag and help text) cost more than
    // parsing a submission with it: it is built once and reused.
    static PARSER: std::sync::OnceLock<std::sync::Mutex<clap::Command>> =
        std::sync::OnceLock::new();
    let parser = PARSER.get_or_init(|| std::sync::Mutex::new(ExecLine::command()));
    // The lock is held only while parsing; errors are rendered after.
    let name = argv.first().cloned().unwrap_or_default();
    let (parsed, usage) = {
        let mut parser = parser.lock().unwrap_or_else(|e| e.into_inner());
        let argv = std::iter::once("labbench".to_string()).chain(argv);
        let matches = parser.try_get_matches_from_mut(argv);
        let parsed = matches.and_then(|mut m| {
            ExecLine::from_arg_matches_mut(&mut m).map_err(|e| e.format(&mut parser))
        });
        // A usage error about one command shows how that command is used.
        let usage = match &parsed {
            Err(_) => parser
                .find_subcommand_mut(&name)
                .map(|c| c.render_usage().to_string()),
            Ok(_) => None,
        };
        (parsed, usage)
    };
    parsed
        .map(|line| line.command)
        .map_err(|e| usage_error_output(&e, usage.as_deref()))
}

/// Turns a clap error into output: help on stdout (0), or a short usage
/// error (2), with `usage` (the command's synopsis) when given.
fn usage_error_output(e: &clap::Error, usage: Option<&str>) -> CommandOutput {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let mut out = CommandOutput::ok(e.render().to_string());
            if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                out.stderr = std::mem::take(&mut out.stdout);
                out.status = exit::USAGE;
            }
            out
        }
        _ => {
            let rendered = e.render().to_string();
            let mut lines = rendered.lines();
            let first = lines.next().unwrap_or("error: invalid command line");
            let tip = lines
                .map(str::trim)
                .find(|l| l.starts_with("tip:"))
                .map(|t| format!("\n{t}"))
                .unwrap_or_default();
            let usage = usage
                .map(|u| format!("\n{}", u.trim_end()))
                .unwrap_or_default();
            CommandOutput::error(
                exit::USAGE,
                format!(
                    "{first}{tip}{usage}\nhint: run 'help' to list commands, 'help COMMAND' for one"
                ),
            )
        }
    }
}

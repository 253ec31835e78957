//! `kvdb completions SHELL` and `kvdb man`: shell completion scripts and manual pages,
//! generated from the same clap definitions the binary parses, so they never drift from it.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::Cli;

/// Prints the completion script of `shell` on stdout.
pub fn completions(shell: Shell) -> ExitCode {
    let mut command = Cli::command();
    let mut out = std::io::stdout().lock();
    clap_complete::generate(shell, &mut command, "kvdb", &mut out);
    finish(out.flush(), "write the completion script")
}

/// Prints the manual page of `kvdb` (roff) on stdout, or with `dir` writes one page per
/// command and subcommand there (`kvdb.1`, `kvdb-admin.1`, `kvdb-admin-drain.1`, ...).
pub fn man(dir: Option<&Path>) -> ExitCode {
    let command = Cli::command();
    match dir {
        Some(dir) => {
            let written =
                std::fs::create_dir_all(dir).and_then(|()| clap_mangen::generate_to(command, dir));
            finish(written, &format!("write manual pages to {}", dir.display()))
        }
        None => {
            let mut out = std::io::stdout().lock();
            let written = clap_mangen::Man::new(command)
                .render(&mut out)
                .and_then(|()| out.flush());
            finish(written, "write the manual page")
        }
    }
}

fn finish(result: std::io::Result<()>, what: &str) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kvdb: cannot {what}: {e}");
            ExitCode::FAILURE
        }
    }
}

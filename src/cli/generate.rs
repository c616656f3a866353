//! `containerspec generate`: man pages and shell completions, generated from the command
//! definition itself, so that they never disagree with `--help`.

use std::path::PathBuf;

use clap::{Args, CommandFactory, Subcommand};

use super::{Cli, CliError};

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  containerspec generate man --dir /usr/local/share/man/man1\n  \
containerspec generate completions bash > /etc/bash_completion.d/containerspec"
)]
pub struct GenerateArgs {
    #[command(subcommand)]
    pub what: Generated,
}

#[derive(Debug, Subcommand)]
pub enum Generated {
    /// Man pages (roff): containerspec(1) on stdout, or with --dir one page per command
    /// (containerspec.1, containerspec-check-bundle.1, ...) written there
    Man {
        /// Write every page into this directory instead of the main page to stdout
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Completions for a shell, on stdout
    Completions {
        /// bash, zsh, fish, elvish or powershell
        shell: clap_complete::Shell,
    },
}

pub fn run(args: &GenerateArgs) -> Result<u8, CliError> {
    let mut cmd = Cli::command();
    match &args.what {
        Generated::Completions { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(*shell, &mut cmd, "containerspec", &mut out);
            super::print_text(&String::from_utf8_lossy(&out))?;
        }
        Generated::Man { dir: None } => {
            let mut out = Vec::new();
            clap_mangen::Man::new(cmd).render(&mut out)?;
            super::print_text(&String::from_utf8_lossy(&out))?;
        }
        Generated::Man { dir: Some(dir) } => {
            let write = |name: &str, page: clap::Command| -> Result<(), CliError> {
                let mut out = Vec::new();
                clap_mangen::Man::new(page).title(name).render(&mut out)?;
                let path = dir.join(format!("{name}.1"));
                std::fs::write(&path, out).map_err(|e| CliError::Target {
                    path: path.display().to_string(),
                    message: format!("cannot write the man page: {e}"),
                })
            };
            cmd.build();
            for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
                let name = format!("containerspec-{}", sub.get_name());
                write(&name, sub.clone())?;
            }
            write("containerspec", cmd.clone())?;
        }
    }
    Ok(0)
}

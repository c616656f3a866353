//! The `containerspec` command: parse the arguments, set up logging, dispatch, and turn
//! the outcome into an exit status (0 success, 1 a negative verdict, 2 an error in the
//! input or the invocation).

use std::process::ExitCode;

use clap::Parser;

use containerspec::cli::{Cli, run};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version are not errors.
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    cli.init_logging();
    match run(&cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            use std::io::Write;
            // Nothing to do if stderr is gone too; the status still says it failed.
            let _ = writeln!(std::io::stderr(), "containerspec: {e}");
            ExitCode::from(2)
        }
    }
}

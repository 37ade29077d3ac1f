//! Thin binary: parse the command line and hand over to the library.
//! Everything that matters lives in `m365_gateway` so tests drive the same code.

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = <m365_gateway::cli::Cli as clap::Parser>::parse();
    m365_gateway::cli::run(cli)
}

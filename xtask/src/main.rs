//! `cargo xtask`: see the crate README.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = xtask::cli::Cli::parse();
    if let xtask::cli::Command::Ablate { args } = &cli.command {
        return xtask::ablate::forward(args);
    }
    match xtask::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Every message already includes its cause.
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

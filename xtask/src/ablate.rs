//! `cargo xtask ablate ...`: runs the ablation grid by forwarding every argument to
//! `cargo run --release -p gaussad -- ablate ...` (the engine lives in the gaussad crate, so
//! xtask stays light: it does not build the backbone).
//!
//! The child keeps the caller's working directory (relative `--dataset` / `--out` paths mean
//! what they say) and finds the workspace through `--manifest-path`; its exit status becomes
//! xtask's.

use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::process::{Command, ExitCode};

/// The arguments given to cargo: `run --release --manifest-path ROOT/Cargo.toml -p gaussad --
/// ablate ARGS...`.
pub fn cargo_args(workspace_root: &Path, args: &[OsString]) -> Vec<OsString> {
    let mut out: Vec<OsString> = ["run", "--release", "--manifest-path"].iter().map(OsString::from).collect();
    out.push(workspace_root.join("Cargo.toml").into_os_string());
    out.extend(["-p", "gaussad", "--", "ablate"].iter().map(OsString::from));
    out.extend(args.iter().cloned());
    out
}

/// The cargo to run: `$CARGO` (set when xtask itself runs under cargo), else `cargo`.
pub fn cargo_program() -> OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"))
}

/// The child process, ready to spawn.
pub fn command(cargo: &OsStr, workspace_root: &Path, args: &[OsString]) -> Command {
    let mut cmd = Command::new(cargo);
    cmd.args(cargo_args(workspace_root, args));
    cmd
}

/// Exit code of a finished child: its own code (clamped to 1..=255 for failures), 1 when it
/// was killed by a signal.
pub fn exit_code(status: std::process::ExitStatus) -> ExitCode {
    match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(c) => ExitCode::from(u8::try_from(c).ok().filter(|&c| c != 0).unwrap_or(1)),
        None => ExitCode::FAILURE,
    }
}

/// Runs the forwarded command and returns its exit status.
pub fn forward(args: &[OsString]) -> ExitCode {
    let cargo = cargo_program();
    let root = crate::cli::workspace_root();
    match command(&cargo, &root, args).status() {
        Ok(status) => exit_code(status),
        Err(e) => {
            eprintln!("error: cannot run {}: {e}", Path::new(&cargo).display());
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn arguments_are_forwarded_verbatim_after_the_subcommand() {
        let got = cargo_args(Path::new("/ws"), &os(&["--dataset", "d", "--shard", "1/2", "--help"]));
        let want = os(&[
            "run", "--release", "--manifest-path", "/ws/Cargo.toml", "-p", "gaussad", "--", "ablate", "--dataset", "d",
            "--shard", "1/2", "--help",
        ]);
        assert_eq!(got, want);
    }

    #[test]
    fn merge_is_forwarded_too() {
        let got = cargo_args(Path::new("/ws"), &os(&["merge", "--out", "m", "a", "b"]));
        assert_eq!(&got[6..], os(&["--", "ablate", "merge", "--out", "m", "a", "b"]).as_slice());
    }

    #[test]
    fn the_command_runs_the_given_cargo() {
        let cmd = command(OsStr::new("/x/cargo"), Path::new("/ws"), &os(&["--out", "o"]));
        assert_eq!(cmd.get_program(), "/x/cargo");
        let args: Vec<&OsStr> = cmd.get_args().collect();
        assert_eq!(args.first().copied(), Some(OsStr::new("run")));
        assert_eq!(args.last().copied(), Some(OsStr::new("o")));
        assert!(cmd.get_current_dir().is_none(), "the caller's working directory is kept");
    }

    #[cfg(unix)]
    #[test]
    fn exit_status_is_propagated() {
        let status = |code: &str| Command::new("sh").args(["-c", &format!("exit {code}")]).status().unwrap();
        assert_eq!(exit_code(status("0")), ExitCode::SUCCESS);
        assert_eq!(exit_code(status("3")), ExitCode::from(3));
        assert_eq!(exit_code(status("1")), ExitCode::FAILURE);
    }
}

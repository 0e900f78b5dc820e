//! `gaussad`: the command-line tool. All logic lives in the library crate of the same name.

fn main() -> std::process::ExitCode {
    match gaussad::cli::run(std::env::args_os()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

//! The `phiprobe` binary: parse, run, map the outcome to a documented exit code.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = phiprobe::cli::Cli::parse();
    match phiprobe::cli::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            // A closed pipe (e.g. `| head`) is not an error.
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::from(phiprobe::exit::PASS);
            }
            eprintln!("error: {e:#}");
            ExitCode::from(phiprobe::exit::ERROR)
        }
    }
}

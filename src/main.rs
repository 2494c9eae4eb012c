//! The `phiprobe` binary: parse, run, map the outcome to a documented exit code.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = phiprobe::cli::Cli::parse();
    // Panic messages may quote data; print only where it happened.
    std::panic::set_hook(Box::new(|info| {
        // `println!` panics when stdout is a closed pipe (`| head`): not an error, stop quietly.
        let payload = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if payload.contains("failed printing to stdout") && payload.contains("Broken pipe") {
            std::process::exit(i32::from(phiprobe::exit::PASS));
        }
        // A guarded third-party parser's panic becomes an error naming the file.
        if phiprobe::data::load::parser_guarded() {
            return;
        }
        let at = info
            .location()
            .map_or_else(String::new, |l| format!(" at {}:{}", l.file(), l.line()));
        eprintln!("phiprobe panicked{at}");
    }));
    // A panic is a bug in phiprobe, never an answer: report it and exit 2 (no conclusion), not
    // with the runtime's 101.
    let outcome = std::panic::catch_unwind(|| phiprobe::cli::run(cli));
    match outcome {
        Ok(Ok(code)) => ExitCode::from(code),
        Ok(Err(e)) => {
            // A closed pipe (e.g. `| head`) is not an error.
            if phiprobe::cli::is_broken_pipe(&e) {
                return ExitCode::from(phiprobe::exit::PASS);
            }
            // Every error leaves through one chokepoint: foreign parsers' words are reduced to
            // the kind of problem and its position, never a value of the input.
            eprintln!("error: {}", phiprobe::redact::final_message(&e));
            ExitCode::from(phiprobe::exit::ERROR)
        }
        Err(_) => {
            eprintln!(
                "error: internal error in phiprobe; nothing was concluded and no report was written. Please report it with the command line."
            );
            ExitCode::from(phiprobe::exit::ERROR)
        }
    }
}

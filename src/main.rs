//! The `herald` binary: parse the command line, set up logging, run, map the outcome to an
//! exit code (0 ok, 1 bad config or usage, 2 finished but some source failed, 75 try
//! again later: `bounces read` when the store cannot be used).

use std::process::ExitCode;

use clap::Parser;
use herald::app::{self, Outcome};
use herald::cli::Cli;

fn main() -> ExitCode {
    // `bounces read` is an MTA's pipe: whatever goes wrong, it answers 75 (try again
    // later), never a code that makes the MTA bounce the mail back.
    let piped = std::env::args().skip(1).any(|a| a == "bounces");
    let failed = if piped { 75 } else { 1 };
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(failed)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    herald::telemetry::init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("herald: cannot start the async runtime: {e}");
            return ExitCode::from(failed);
        }
    };
    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        runtime.block_on(app::run(cli))
    }));
    let Ok(ran) = ran else {
        return ExitCode::from(if piped { 75 } else { 101 });
    };
    match ran {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::Partial) => ExitCode::from(2),
        Ok(Outcome::TempFail) => ExitCode::from(75),
        Err(e) => {
            // The error and its causes on one line (anyhow's alternate form).
            eprintln!("herald: {e:#}");
            ExitCode::from(failed)
        }
    }
}

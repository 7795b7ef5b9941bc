//! `switchboard`: the operator's command line. Sets up the broker and database, runs the stages
//! (all in one process, for small installs), manages agents, evaluates the classifier, and runs
//! the quick-start demo. Exit codes are `cli::exit` (and `switchboard --help`).

mod cli;

use clap::Parser;
use cli::exit;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // `--help` and `--version` come this way too, to standard output, and succeed.
            let _ = e.print();
            return exit::exit_code(if e.use_stderr() { exit::USAGE } else { exit::OK });
        }
    };
    switchboard::runtime::telemetry::init_with_default(cli.default_log_filter());
    let result = cli::run(cli).await;
    switchboard::runtime::telemetry::shutdown().await;
    match result {
        Ok(()) => exit::exit_code(exit::OK),
        Err(e) => {
            // The whole cause chain: the last line usually says what to do.
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            exit::exit_code(exit::code_of(&e))
        }
    }
}

//! `switchboard`: the operator's command line. Sets up the broker and database, runs the stages
//! (all in one process, for small installs), manages agents, evaluates the classifier, and runs
//! the quick-start demo.

mod cli;

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    switchboard::runtime::telemetry::init_with_default(cli.default_log_filter());
    let result = cli::run(cli).await;
    switchboard::runtime::telemetry::shutdown().await;
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The whole cause chain: the last line usually says what to do.
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = trailvault::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("trailvault: cannot start the async runtime: {e}");
            return std::process::ExitCode::from(trailvault::cli::EXIT_FAILED);
        }
    };
    let code = runtime.block_on(trailvault::cli::run(cli));
    // Blocking tasks (a DNS lookup, a file read) must not hold the exit past a grace.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    std::process::ExitCode::from(code)
}

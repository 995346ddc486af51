use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = trailvault::cli::Cli::parse();
    quiet_library_backtraces();
    let mut builder = if std::env::var_os("TRAILVAULT_CURRENT_THREAD").is_some() {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    let runtime = match builder.enable_all().build() {
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

/// `RUST_BACKTRACE=1` (set for panics, as on many build machines) also makes every error
/// value that captures a `std::backtrace::Backtrace` walk the stack: azure_core builds one
/// for each absent optional header it looks up, several per request, which was an eighth
/// of a sync's instructions. Panics keep their backtraces; library errors capture one only
/// when `RUST_LIB_BACKTRACE` asks for it. Set before the runtime starts any thread.
fn quiet_library_backtraces() {
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        std::env::set_var("RUST_LIB_BACKTRACE", "0");
    }
}

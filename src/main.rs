use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = trailvault::cli::Cli::parse();
    quiet_library_backtraces();
    // One thread: a sync waits on the two services, not on the CPU (about a millisecond of
    // work per file), and with no second worker to hand tasks to, the futex and epoll
    // wake-ups between threads go away: 10-15% less CPU per file, measured side by side
    // on the emulators (README, Benchmark). Blocking calls (DNS, files) keep their pool.
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
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

//! Progress of a long job: a bar on a terminal, periodic log lines otherwise.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub trait Progress: Send + Sync {
    /// Adds to the totals (a job may learn them in parts).
    fn begin(&self, files: u64, bytes: u64);
    fn advance(&self, files: u64, bytes: u64);
    fn finish(&self);
}

/// A bar on stderr when it is a terminal, log lines every 10 s otherwise.
pub fn for_stderr(what: &'static str) -> Arc<dyn Progress> {
    if std::io::stderr().is_terminal() {
        Arc::new(BarProgress::new())
    } else {
        Arc::new(LogProgress::new(what, Duration::from_secs(10)))
    }
}

pub struct NoProgress;

impl Progress for NoProgress {
    fn begin(&self, _: u64, _: u64) {}
    fn advance(&self, _: u64, _: u64) {}
    fn finish(&self) {}
}

/// The bar, and (total, done) file counts shown in its message.
pub struct BarProgress(indicatif::ProgressBar, (AtomicU64, AtomicU64));

impl BarProgress {
    fn show(&self) {
        let (total, done) = (self.1 .0.load(Ordering::Relaxed), self.1 .1.load(Ordering::Relaxed));
        self.0.set_message(format!("{done}/{total} files"));
    }

    fn new() -> Self {
        let bar = indicatif::ProgressBar::new(0);
        let style = indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        bar.set_style(style);
        Self(bar, Default::default())
    }
}

impl Progress for BarProgress {
    fn begin(&self, files: u64, bytes: u64) {
        self.0.inc_length(bytes);
        self.1 .0.fetch_add(files, Ordering::Relaxed);
        self.show();
    }
    fn advance(&self, files: u64, bytes: u64) {
        self.0.inc(bytes);
        self.1 .1.fetch_add(files, Ordering::Relaxed);
        self.show();
    }
    fn finish(&self) {
        self.0.finish();
    }
}

pub struct LogProgress {
    what: &'static str,
    every: Duration,
    started: Instant,
    last: Mutex<Instant>,
    total: (AtomicU64, AtomicU64),
    done: (AtomicU64, AtomicU64),
}

impl LogProgress {
    pub fn new(what: &'static str, every: Duration) -> Self {
        Self {
            what,
            every,
            started: Instant::now(),
            last: Mutex::new(Instant::now()),
            total: Default::default(),
            done: Default::default(),
        }
    }

    fn log(&self) {
        let (files, bytes) = (self.done.0.load(Ordering::Relaxed), self.done.1.load(Ordering::Relaxed));
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        tracing::info!(
            job = self.what,
            files,
            total_files = self.total.0.load(Ordering::Relaxed),
            bytes,
            total_bytes = self.total.1.load(Ordering::Relaxed),
            bytes_per_second = (bytes as f64 / secs) as u64,
            "progress"
        );
    }
}

impl Progress for LogProgress {
    fn begin(&self, files: u64, bytes: u64) {
        self.total.0.fetch_add(files, Ordering::Relaxed);
        self.total.1.fetch_add(bytes, Ordering::Relaxed);
    }
    fn advance(&self, files: u64, bytes: u64) {
        self.done.0.fetch_add(files, Ordering::Relaxed);
        self.done.1.fetch_add(bytes, Ordering::Relaxed);
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if last.elapsed() >= self.every {
            *last = Instant::now();
            drop(last);
            self.log();
        }
    }
    fn finish(&self) {
        self.log();
    }
}

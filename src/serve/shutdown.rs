//! Shutdown signals shared by the servers.

/// Resolves on SIGTERM (Kubernetes, Container Apps) or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// The signal that asked a one-shot command to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    Term,
    Interrupt,
}

impl StopSignal {
    /// 128 + the signal number, as a shell reports a process the signal ended.
    pub fn exit_code(self) -> u8 {
        match self {
            StopSignal::Term => 143,
            StopSignal::Interrupt => 130,
        }
    }
}

/// Stops a one-shot command on SIGTERM or SIGINT: `token` is cancelled (no new work
/// starts; work in flight finishes, records are written, the lock is released), and the
/// process ends anyway after `grace`, or at once on a second signal. Installing the
/// handlers is also what makes the signals reach PID 1 in a container, which the kernel
/// otherwise spares from every signal it has no handler for.
pub struct SignalStop {
    pub token: tokio_util::sync::CancellationToken,
    received: std::sync::Arc<std::sync::OnceLock<StopSignal>>,
}

impl SignalStop {
    pub fn install(grace: std::time::Duration) -> Self {
        let token = tokio_util::sync::CancellationToken::new();
        let received = std::sync::Arc::new(std::sync::OnceLock::new());
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let streams = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()));
            if let (Ok(mut term), Ok(mut int)) = streams {
                let (token, received) = (token.clone(), received.clone());
                tokio::spawn(async move {
                    let mut first = true;
                    loop {
                        let which = tokio::select! {
                            _ = term.recv() => StopSignal::Term,
                            _ = int.recv() => StopSignal::Interrupt,
                        };
                        if !first {
                            tracing::warn!(signal = ?which, "second signal: stopping now");
                            std::process::exit(i32::from(which.exit_code()));
                        }
                        first = false;
                        let _ = received.set(which);
                        tracing::warn!(
                            signal = ?which,
                            grace_seconds = grace.as_secs_f32(),
                            "stopping: no new work starts; work in flight finishes within the grace"
                        );
                        token.cancel();
                        tokio::spawn(async move {
                            tokio::time::sleep(grace).await;
                            tracing::error!(signal = ?which, "shutdown grace over: stopping with work unfinished");
                            std::process::exit(i32::from(which.exit_code()));
                        });
                    }
                });
            } else {
                tracing::warn!("cannot install the SIGTERM/SIGINT handlers; a stop signal ends the process at once");
            }
        }
        SignalStop { token, received }
    }

    /// The signal received, if any.
    pub fn received(&self) -> Option<StopSignal> {
        self.received.get().copied()
    }
}

//! The signals that stop a command in order, the second of which stops it at once.

/// What ends a command: SIGINT and SIGTERM, installed once so that a second signal is seen as
/// well as the first, and, when asked, the end of standard input.
#[derive(Debug)]
pub struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
    /// Completes when standard input reaches its end; `None` when not watched, or once seen.
    stdin_closed: Option<tokio::sync::oneshot::Receiver<()>>,
}

/// The name [`Signals::next`] gives the end of standard input.
const STDIN_CLOSED: &str = "the end of standard input";

impl Signals {
    /// Installs the handlers (from then on these signals no longer end the process by
    /// themselves); with `watch_stdin`, a thread also reads standard input to its end, so that
    /// a parent holding the pipe's other end takes the process down with it, however it ends.
    ///
    /// # Errors
    /// The OS error when a handler or the thread cannot be installed.
    pub fn install(watch_stdin: bool) -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        let stdin_closed = if watch_stdin {
            let (closed, receiver) = tokio::sync::oneshot::channel();
            std::thread::Builder::new().name("tailguard-stdin".into()).spawn(move || {
                // Whatever is written is discarded; an error ends the wait as the end does.
                let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
                let _ = closed.send(());
            })?;
            Some(receiver)
        } else {
            None
        };
        Ok(Self {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
            stdin_closed,
        })
    }

    /// The next signal's name, or [`STDIN_CLOSED`] for the end of standard input, which counts
    /// only as the first: once the process is stopping, only a second signal cuts that short
    /// (a supervisor ended by the Ctrl-C that also reached this process closes the pipe).
    pub async fn next(&mut self) -> &'static str {
        let stdin_closed = async {
            match self.stdin_closed.as_mut() {
                Some(receiver) => {
                    let _ = receiver.await;
                }
                None => std::future::pending().await,
            }
        };
        let name = tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
            () = stdin_closed => STDIN_CLOSED,
        };
        self.stdin_closed = None;
        name
    }
}

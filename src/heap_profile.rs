//! A heap profile on demand (`--features heap-profile` only): the profile is written when the
//! process ends, or at once on SIGUSR1 — so a long-running controller can be profiled at a
//! moment of its life (a fleet settled) rather than only at its peak or its shutdown.
//!
//! The file is `dhat-heap-<pid>.json` in the working directory. Its `eb` figures ("at t-end")
//! are then the bytes live at the signal, by allocation site; after it the process runs on
//! unprofiled.

use std::sync::Mutex;

static PROFILER: Mutex<Option<dhat::Profiler>> = Mutex::new(None);

/// Ends profiling (and writes the file) when dropped, unless a signal already did.
pub struct Guard(());

impl Drop for Guard {
    fn drop(&mut self) {
        write_now();
    }
}

/// Starts profiling every allocation from now on.
pub fn start() -> Guard {
    let profiler = dhat::Profiler::builder().file_name(format!("dhat-heap-{}.json", std::process::id())).build();
    if let Ok(mut slot) = PROFILER.lock() {
        *slot = Some(profiler);
    }
    Guard(())
}

/// Writes the profile now, if it is still running; later calls do nothing.
pub fn write_now() {
    let profiler = PROFILER.lock().ok().and_then(|mut slot| slot.take());
    drop(profiler);
}

/// Writes the profile on the first SIGUSR1.
pub fn on_signal() {
    #[cfg(unix)]
    tokio::spawn(async {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut usr1) = signal(SignalKind::user_defined1()) {
            usr1.recv().await;
            tracing::info!("writing the heap profile");
            // Writing walks every live allocation: off the runtime's worker threads.
            let _ = tokio::task::spawn_blocking(write_now).await;
        }
    });
}

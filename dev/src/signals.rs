//! Ctrl-C and SIGTERM for the demo and benchmarks: instead of dying with
//! namespaces and pins left behind, the program sees a flag, stops at the next
//! step and lets its guards clean up.
use std::sync::{
    OnceLock,
    atomic::{AtomicBool, Ordering},
};

static STOP: AtomicBool = AtomicBool::new(false);
static INSTALLED: OnceLock<()> = OnceLock::new();

extern "C" fn on_signal(_: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    STOP.store(true, Ordering::Release);
}

/// Turns the first SIGINT or SIGTERM into [`interrupted`] returning true; a
/// second one has the default effect (what it leaves is swept by the next run,
/// see [`crate::names::sweep_stale`]). A handler, not a blocked mask:
/// children (which reset handlers on exec) still die of the signals as usual.
pub fn install() {
    INSTALLED.get_or_init(|| {
        for sig in [libc::SIGINT, libc::SIGTERM] {
            // SAFETY: installs a handler that only stores to an atomic.
            unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = on_signal as *const () as usize;
                sa.sa_flags = libc::SA_RESETHAND | libc::SA_RESTART;
                libc::sigemptyset(&mut sa.sa_mask);
                libc::sigaction(sig, &sa, std::ptr::null_mut());
            }
        }
    });
}

/// True once SIGINT or SIGTERM arrived.
pub fn interrupted() -> bool {
    STOP.load(Ordering::Acquire)
}

/// Fails with "interrupted" once a signal arrived: `signals::check()?` between steps.
pub fn check() -> crate::error::Result<()> {
    if interrupted() {
        return Err(crate::error::DevError::Interrupted);
    }
    Ok(())
}

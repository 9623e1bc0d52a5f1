//! Stage processes never outlive the runner, and a cancelled run stops its stages cleanly.
//!
//! Three mechanisms, each for a different way the runner can end:
//! - **SIGTERM / SIGINT / SIGHUP** (`kill`, `timeout`, a batch scheduler's time limit, Ctrl-C):
//!   [`install_cancel_handlers`] turns the signal into a flag ([`cancel_signal`]); the scheduler
//!   starts nothing new, and each running stage's process group gets the same signal, then
//!   SIGKILL after [`grace`]. A second signal ends the runner at once (and the next mechanism
//!   takes the stages with it).
//! - **SIGKILL of the runner** (nothing of ours runs): every stage process is started with
//!   `PR_SET_PDEATHSIG = SIGKILL` ([`tie_to_parent`]), so the kernel kills it when its parent dies.
//! - **The key's lock** is passed down to the stage's process tree (the lock file's descriptor
//!   is inherited), so even a stage that escaped both of the above keeps the key locked until it
//!   ends: a rerun waits for it instead of computing the same entry a second time beside it.

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Seconds a stage gets between the forwarded signal and SIGKILL (`UDA_KILL_GRACE_S`, default
/// 10): enough for a training stage to finish the step it is in and flush its log.
pub const GRACE_ENV: &str = "UDA_KILL_GRACE_S";

fn received() -> &'static Arc<AtomicUsize> {
    static RECEIVED: OnceLock<Arc<AtomicUsize>> = OnceLock::new();
    RECEIVED.get_or_init(|| Arc::new(AtomicUsize::new(0)))
}

/// The signals that cancel a run.
pub const CANCEL_SIGNALS: [i32; 3] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP];

/// Makes SIGTERM, SIGINT and SIGHUP cancel the run instead of ending the process: the first one
/// sets [`cancel_signal`]; a second one ends the process at once (exit status 1).
pub fn install_cancel_handlers() -> std::io::Result<()> {
    let second = Arc::new(AtomicBool::new(false));
    for sig in CANCEL_SIGNALS {
        // Registered first, so it sees the flag as it was before this signal arrived.
        signal_hook::flag::register_conditional_shutdown(sig, 1, Arc::clone(&second))?;
        signal_hook::flag::register(sig, Arc::clone(&second))?;
        signal_hook::flag::register_usize(sig, Arc::clone(received()), sig as usize)?;
    }
    Ok(())
}

/// Ignores the cancel signals in this process (the `__stage-exec` trampoline: the stage in its
/// process group gets the same signal and the trampoline must live on to report how it ended).
pub fn ignore_cancel_signals() -> std::io::Result<()> {
    let sink = Arc::new(AtomicBool::new(false));
    for sig in CANCEL_SIGNALS {
        signal_hook::flag::register(sig, Arc::clone(&sink))?;
    }
    Ok(())
}

/// The signal that cancelled this run, if any.
pub fn cancel_signal() -> Option<i32> {
    match received().load(Ordering::SeqCst) {
        0 => None,
        s => Some(s as i32),
    }
}

/// The name of a signal number, for messages.
pub fn signal_name(sig: i32) -> String {
    match sig {
        libc::SIGTERM => "SIGTERM".into(),
        libc::SIGINT => "SIGINT".into(),
        libc::SIGHUP => "SIGHUP".into(),
        libc::SIGKILL => "SIGKILL".into(),
        s => format!("signal {s}"),
    }
}

/// How long a stage may take to end after the forwarded signal.
pub fn grace() -> Duration {
    grace_from(std::env::var(GRACE_ENV).ok().as_deref())
}

fn grace_from(setting: Option<&str>) -> Duration {
    let secs = setting
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .unwrap_or(10.0);
    Duration::from_secs_f64(secs)
}

/// Makes the command's process be killed by the kernel when the thread that starts it ends (the
/// runner's job thread lives exactly as long as the stage), and inherit the descriptor
/// `keep_open` (the key's lock) across `exec`.
pub fn tie_to_parent(cmd: &mut Command, keep_open: Option<i32>) {
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs between fork and exec and only makes async-signal-safe system
    // calls (prctl, getppid, fcntl) on plain integers; it allocates nothing and takes no lock.
    #[allow(unsafe_code)]
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect: then nobody would kill us.
            if libc::getppid() != parent {
                return Err(std::io::Error::other(
                    "the runner ended while starting the stage",
                ));
            }
            if let Some(fd) = keep_open {
                let flags = libc::fcntl(fd, libc::F_GETFD);
                if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
}

/// Sends `sig` to the process group `pgid` (a stage started by [`tie_to_parent`]); a group that
/// is gone already is not an error.
pub fn signal_group(pgid: u32, sig: i32) {
    // SAFETY: kill(2) with a negative pid only sends a signal; no memory is involved.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(-(pgid as libc::pid_t), sig);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grace_is_read_from_the_setting_and_nonsense_falls_back() {
        assert_eq!(grace_from(Some("0.25")), Duration::from_millis(250));
        assert_eq!(grace_from(Some(" 3 ")), Duration::from_secs(3));
        assert_eq!(grace_from(Some("-3")), Duration::from_secs(10));
        assert_eq!(grace_from(Some("soon")), Duration::from_secs(10));
        assert_eq!(grace_from(None), Duration::from_secs(10));
    }

    #[test]
    fn a_tied_child_is_in_its_own_group_and_dies_with_its_group() {
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        cmd.process_group(0);
        tie_to_parent(&mut cmd, None);
        let mut child = cmd.spawn().unwrap();
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", child.id())).unwrap();
        // Field 5 of /proc/PID/stat is the process group.
        let pgrp: u32 = stat
            .rsplit(')')
            .next()
            .unwrap()
            .split_whitespace()
            .nth(2)
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(pgrp, child.id(), "the child leads its own process group");
        signal_group(child.id(), libc::SIGTERM);
        let status = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGTERM));
    }
}

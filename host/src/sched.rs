//! Asks the kernel to let request threads cut in on background work.
//!
//! The gateway's background threads (the request log's writer, above all)
//! run in bursts of a few milliseconds on the same cores as the threads
//! serving requests. Linux's EEVDF scheduler protects a running thread's
//! time slice (0.75 ms and up) from threads that wake up, so a request
//! arriving during a burst waited for the burst's slice to end: with the
//! store on, 1-2 ms at the 99th percentile, which is the whole tail (see
//! the README's benchmark section). A thread that asks for a short slice
//! (kernel 6.12 and later: `sched_attr.sched_runtime` for normal threads)
//! cancels that protection when it wakes and runs at once; it costs
//! nothing when nothing else wants the core. Older kernels ignore the
//! request, and it is only a request: no privilege, no policy change.
//!
//! Short slices did not remove that wait in practice (measured with the
//! store on: c=1 p99 still 2-3x nginx's, and the request thread's
//! run-queue wait twice what it is with the store off), so the store's
//! writer also runs at the idle policy ([`run_when_idle`]): the kernel
//! always preempts an idle-policy thread for a normal one that wakes, and
//! never the other way round. See `store` for how the writer still keeps
//! up when requests leave no idle time.

/// The slice request threads ask for: the kernel's minimum, 0.1 ms.
pub const REQUEST_SLICE_NS: u64 = 100_000;

/// Asks for [`REQUEST_SLICE_NS`] slices for the calling thread. Returns
/// whether the kernel took the request (false on other systems).
pub fn prefer_short_slices() -> bool {
    imp::set_slice(REQUEST_SLICE_NS)
}

/// Moves the calling thread to the idle scheduling policy (`SCHED_IDLE`):
/// it runs on what normal threads leave. Returns whether the kernel took
/// it (false on other systems). One way only: without privilege a thread
/// cannot come back from it, which is why the store's writer is given CPU
/// by back-pressure rather than by raising its priority.
pub fn run_when_idle() -> bool {
    imp::set_idle()
}

#[cfg(target_os = "linux")]
mod imp {
    /// `sched_setscheduler(SCHED_IDLE)` on the calling thread.
    #[allow(unsafe_code)]
    pub fn set_idle() -> bool {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: `param` is a valid sched_param; pid 0 is the calling thread.
        unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) == 0 }
    }

    /// `sched_setattr` on the calling thread: normal policy, its current
    /// nice value, and `slice_ns` as the requested slice.
    #[allow(unsafe_code)]
    pub fn set_slice(slice_ns: u64) -> bool {
        // SAFETY: getpriority and sched_setattr only read their arguments;
        // `attr` is a valid, fully initialized sched_attr of the size
        // given in its `size` field; pid 0 is the calling thread.
        unsafe {
            *libc::__errno_location() = 0;
            let nice = libc::getpriority(libc::PRIO_PROCESS, 0);
            if nice == -1 && *libc::__errno_location() != 0 {
                return false;
            }
            let attr = libc::sched_attr {
                size: std::mem::size_of::<libc::sched_attr>() as u32,
                sched_policy: libc::SCHED_OTHER as u32,
                sched_flags: 0,
                sched_nice: nice,
                sched_priority: 0,
                sched_runtime: slice_ns,
                sched_deadline: 0,
                sched_period: 0,
            };
            libc::syscall(
                libc::SYS_sched_setattr,
                0,
                &attr as *const libc::sched_attr,
                0,
            ) == 0
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    pub fn set_slice(_slice_ns: u64) -> bool {
        false
    }

    pub fn set_idle() -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn asking_keeps_the_thread_normal_and_its_nice_value() {
        std::thread::spawn(|| {
            let before = nice();
            // Taken or ignored depending on the kernel; never an error that matters.
            let _ = super::prefer_short_slices();
            assert_eq!(nice(), before);
        })
        .join()
        .unwrap();
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn an_idle_thread_is_idle_and_others_are_not() {
        std::thread::spawn(|| {
            assert!(super::run_when_idle());
            assert_eq!(policy(), libc::SCHED_IDLE);
        })
        .join()
        .unwrap();
        // Only the thread that asked.
        std::thread::spawn(|| assert_eq!(policy(), libc::SCHED_OTHER))
            .join()
            .unwrap();
    }

    #[cfg(target_os = "linux")]
    #[allow(unsafe_code)]
    fn policy() -> i32 {
        // SAFETY: reads the calling thread's policy.
        unsafe { libc::sched_getscheduler(0) }
    }

    #[cfg(target_os = "linux")]
    #[allow(unsafe_code)]
    fn nice() -> i32 {
        // SAFETY: reads the calling thread's nice value.
        unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) }
    }

    #[cfg(not(target_os = "linux"))]
    fn nice() -> i32 {
        0
    }
}

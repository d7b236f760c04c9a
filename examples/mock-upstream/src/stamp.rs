//! Send-time stamps in streamed text, for the benchmark's stream probe.
//!
//! With `--stamp`, every streamed text delta ends in a placeholder that is
//! overwritten with the monotonic clock (µs) the moment its frame is handed
//! to hyper to write, after the inter-delta sleep. A client on the same machine reads the clock when the
//! delta arrives: the difference is the delta's transit, and how much it
//! grows from one delta to the next is the gap that everything between the
//! mock and the client added, free of the mock's own timer jitter (a late
//! tick delays the stamp as much as the delta).

/// `#T` and 16 digits. Fixed width, so stamping never resizes a frame;
/// ASCII that no JSON encoder escapes, so it survives re-encoding proxies.
pub const PLACEHOLDER: &str = "#T################";
const DIGITS: usize = 16;

/// Microseconds on `CLOCK_MONOTONIC`, the clock every process on the
/// machine shares (`std::time::Instant` reads it too, but keeps it opaque).
#[allow(unsafe_code)]
pub fn monotonic_us() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the call's duration.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    assert_eq!(rc, 0, "CLOCK_MONOTONIC is always available on Linux");
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1_000
}

/// Overwrites every placeholder in `frame` with `now_us`; `None` when it
/// holds none (the frame is sent as it is).
pub fn fill(frame: &[u8], now_us: u64) -> Option<Vec<u8>> {
    let marker = PLACEHOLDER.as_bytes();
    let mut at = find(frame, marker, 0)?;
    let digits = format!("{now_us:0DIGITS$}");
    let mut out = frame.to_vec();
    loop {
        out[at + 2..at + marker.len()].copy_from_slice(&digits.as_bytes()[..DIGITS]);
        match find(frame, marker, at + marker.len()) {
            Some(next) => at = next,
            None => return Some(out),
        }
    }
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_the_time_and_nothing_else_changes() {
        let frame = format!("data: {{\"content\":\"hi{PLACEHOLDER}\"}}\n\n");
        let filled = String::from_utf8(fill(frame.as_bytes(), 1234).unwrap()).unwrap();
        assert_eq!(filled, "data: {\"content\":\"hi#T0000000000001234\"}\n\n");
        assert_eq!(fill(b"data: [DONE]\n\n", 1), None);
    }

    #[test]
    fn the_clock_moves_forward() {
        let a = monotonic_us();
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(monotonic_us() >= a + 2_000);
    }
}

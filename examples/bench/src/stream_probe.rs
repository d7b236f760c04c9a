//! Measures streamed answers: time to the first SSE `data:` byte and the
//! gaps between successive reads, per request, over plain blocking sockets
//! (no runtime between the wire and the clock).
//!
//! ```text
//! stream-probe REQUESTS STAGGER_MS TARGET...     TARGET = ADDR,PATH,BODY_FILE,KEY
//! ```
//!
//! Each of the REQUESTS rounds streams from every target at once, target
//! `i` starting `i * STAGGER_MS` after the first: the streams of one round
//! share the machine's weather (these VMs stall in phases), so a proxy's
//! figures can be compared with the direct stream's of the same round,
//! while the stagger keeps their requests and chunks from arriving together.
//!
//! Prints a JSON array, one object per target in order, each field a list
//! over requests: `{"ttfb_us", "max_gap_us", "max_added_gap_us", "events",
//! "stamps"}` (see [`Seen`]). `max_added_gap_us` needs the mock's
//! `--stamp`; without it `stamps` is 0.

use std::io::{Read, Write};

// The mock's stamp format and clock, shared rather than copied; the probe
// only reads stamps, so the writing half is unused here.
#[path = "../../mock-upstream/src/stamp.rs"]
#[allow(dead_code)]
mod stamp;
use std::net::TcpStream;
use std::time::{Duration, Instant};

struct Target {
    addr: String,
    path: String,
    body: Vec<u8>,
    key: String,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: stream-probe REQUESTS STAGGER_MS ADDR,PATH,BODY_FILE,KEY...");
        std::process::exit(2);
    }
    let requests: usize = args[1].parse().expect("REQUESTS is a number");
    let stagger = Duration::from_millis(args[2].parse().expect("STAGGER_MS is a number"));
    let targets: Vec<Target> = args[3..]
        .iter()
        .map(|spec| {
            let parts: Vec<&str> = spec.split(',').collect();
            assert_eq!(
                parts.len(),
                4,
                "a target is ADDR,PATH,BODY_FILE,KEY: {spec}"
            );
            Target {
                addr: parts[0].into(),
                path: parts[1].into(),
                body: std::fs::read(parts[2]).expect("reading a body file"),
                key: parts[3].into(),
            }
        })
        .collect();
    let mut results: Vec<Vec<Seen>> = targets.iter().map(|_| Vec::new()).collect();
    for _ in 0..requests {
        let round: Vec<Seen> = std::thread::scope(|scope| {
            let handles: Vec<_> = targets
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    scope.spawn(move || {
                        std::thread::sleep(stagger * i as u32);
                        one(&t.addr, &t.path, &t.body, &t.key)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a probe thread"))
                .collect()
        });
        for (all, seen) in results.iter_mut().zip(round) {
            all.push(seen);
        }
    }
    let objects: Vec<String> = results
        .iter()
        .map(|all| {
            let list = |field: fn(&Seen) -> u64| {
                all.iter().map(|s| field(s).to_string()).collect::<Vec<_>>().join(",")
            };
            format!(
                "{{\"ttfb_us\":[{}],\"max_gap_us\":[{}],\"max_added_gap_us\":[{}],\"events\":[{}],\"stamps\":[{}]}}",
                list(|s| s.ttfb_us),
                list(|s| s.max_gap_us),
                list(|s| s.max_added_gap_us),
                list(|s| s.events),
                list(|s| s.stamps)
            )
        })
        .collect();
    println!("[{}]", objects.join(","));
}

/// What one streamed request showed.
struct Seen {
    /// µs from sending the request to the first `data:` byte.
    ttfb_us: u64,
    /// Largest µs between two reads that carried data.
    max_gap_us: u64,
    /// Largest growth, from one stamped delta to the next, of the time the
    /// delta spent between the mock's send and this read: the gap that
    /// the path (kernel, proxy, this client) added, without the mock's own
    /// timer jitter. See `stamp.rs` in mock-upstream.
    max_added_gap_us: u64,
    /// `data:` lines seen.
    events: u64,
    /// Stamped deltas seen.
    stamps: u64,
}

fn one(addr: &str, path: &str, body: &[u8], key: &str) -> Seen {
    let mut stream = TcpStream::connect(addr).expect("connecting");
    stream.set_nodelay(true).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\nx-api-key: {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let started = Instant::now();
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut seen = Seen {
        ttfb_us: 0,
        max_gap_us: 0,
        max_added_gap_us: 0,
        events: 0,
        stamps: 0,
    };
    let (mut first, mut last, mut last_transit) = (None, None::<Instant>, None::<u64>);
    // Unscanned tails, one per marker: each keeps fewer bytes than a whole
    // marker, so a marker split across reads is found once, and only once.
    let (mut data_carry, mut stamp_carry) = (Vec::new(), Vec::new());
    loop {
        let n = stream.read(&mut buf).expect("reading");
        if n == 0 {
            break;
        }
        let (now, now_us) = (Instant::now(), stamp::monotonic_us());
        data_carry.extend_from_slice(&buf[..n]);
        let found = count(&data_carry, b"data:");
        keep_tail(&mut data_carry, b"data:".len() - 1);
        if found > 0 {
            seen.events += found as u64;
            first.get_or_insert(now);
            if let Some(prev) = last {
                seen.max_gap_us = seen
                    .max_gap_us
                    .max(now.duration_since(prev).as_micros() as u64);
            }
            last = Some(now);
        }
        stamp_carry.extend_from_slice(&buf[..n]);
        for sent_us in stamps(&stamp_carry) {
            seen.stamps += 1;
            let transit = now_us.saturating_sub(sent_us);
            if let Some(prev) = last_transit {
                seen.max_added_gap_us = seen.max_added_gap_us.max(transit.saturating_sub(prev));
            }
            last_transit = Some(transit);
        }
        keep_tail(&mut stamp_carry, stamp::PLACEHOLDER.len() - 1);
    }
    seen.ttfb_us = first.map_or(0, |f| f.duration_since(started).as_micros() as u64);
    seen
}

fn keep_tail(carry: &mut Vec<u8>, keep: usize) {
    let drop = carry.len().saturating_sub(keep);
    carry.drain(..drop);
}

/// The send times of the complete stamps in `hay` (`#T` and 16 digits).
fn stamps(hay: &[u8]) -> Vec<u64> {
    let width = stamp::PLACEHOLDER.len();
    hay.windows(width)
        .filter(|w| w.starts_with(b"#T") && w[2..].iter().all(u8::is_ascii_digit))
        .map(|w| std::str::from_utf8(&w[2..]).unwrap().parse().unwrap())
        .collect()
}

fn count(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).filter(|w| *w == needle).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// However the reads split the text, each stamp is read once, whole.
    #[test]
    fn a_stamp_split_across_reads_is_read_once() {
        let text = b"data: {\"content\":\"a#T0000000000000012\"}\n\ndata: {\"content\":\"b#T0000000000000345\"}\n\n";
        for cut in 0..=text.len() {
            let (mut carry, mut found) = (Vec::new(), Vec::new());
            for part in [&text[..cut], &text[cut..]] {
                carry.extend_from_slice(part);
                found.extend(stamps(&carry));
                keep_tail(&mut carry, stamp::PLACEHOLDER.len() - 1);
            }
            assert_eq!(found, [12, 345], "split at {cut}");
        }
    }
}

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
//! Prints a JSON array, one object per target in order:
//! `{"ttfb_us": [...], "max_gap_us": [...], "events": [...]}`.

use std::io::{Read, Write};
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
    let mut results = vec![(Vec::new(), Vec::new(), Vec::new()); targets.len()];
    for _ in 0..requests {
        let round: Vec<(u64, u64, u64)> = std::thread::scope(|scope| {
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
        for ((ttfb, gap, events), (t, g, e)) in results.iter_mut().zip(round) {
            ttfb.push(t);
            gap.push(g);
            events.push(e);
        }
    }
    let list = |v: &[u64]| v.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
    let objects: Vec<String> = results
        .iter()
        .map(|(ttfb, gap, events)| {
            format!(
                "{{\"ttfb_us\":[{}],\"max_gap_us\":[{}],\"events\":[{}]}}",
                list(ttfb),
                list(gap),
                list(events)
            )
        })
        .collect();
    println!("[{}]", objects.join(","));
}

/// One request: (µs to the first `data:` byte, largest µs between reads
/// carrying data, number of `data:` lines seen).
fn one(addr: &str, path: &str, body: &[u8], key: &str) -> (u64, u64, u64) {
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
    let (mut first, mut last, mut max_gap, mut events) = (None, None::<Instant>, 0u64, 0u64);
    let mut carry = Vec::new();
    loop {
        let n = stream.read(&mut buf).expect("reading");
        if n == 0 {
            break;
        }
        let now = Instant::now();
        carry.extend_from_slice(&buf[..n]);
        let found = count(&carry, b"data:");
        if found > 0 {
            events += found as u64;
            first.get_or_insert(now);
            if let Some(prev) = last {
                max_gap = max_gap.max(now.duration_since(prev).as_micros() as u64);
            }
            last = Some(now);
            // Keep a tail in case a marker straddles reads.
            let keep = carry.len().min(4);
            carry.drain(..carry.len() - keep);
        }
    }
    let ttfb = first.map_or(0, |f| f.duration_since(started).as_micros() as u64);
    (ttfb, max_gap, events)
}

fn count(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).filter(|w| *w == needle).count()
}

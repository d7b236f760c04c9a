//! Measures streamed answers: time to the first SSE `data:` byte and the
//! gaps between successive reads, per request, over plain blocking sockets
//! (no runtime between the wire and the clock).
//!
//! ```text
//! stream-probe ADDR PATH BODY_FILE KEY REQUESTS
//! ```
//!
//! Prints one JSON object: `{"ttfb_us": [...], "max_gap_us": [...], "events": [...]}`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 6 {
        eprintln!("usage: stream-probe ADDR PATH BODY_FILE KEY REQUESTS");
        std::process::exit(2);
    }
    let (addr, path, key) = (&args[1], &args[2], &args[4]);
    let body = std::fs::read(&args[3]).expect("reading the body file");
    let requests: usize = args[5].parse().expect("REQUESTS is a number");
    let (mut ttfb, mut max_gap, mut events) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..requests {
        let (t, g, e) = one(addr, path, &body, key);
        ttfb.push(t);
        max_gap.push(g);
        events.push(e);
    }
    let list = |v: &[u64]| v.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
    println!(
        "{{\"ttfb_us\":[{}],\"max_gap_us\":[{}],\"events\":[{}]}}",
        list(&ttfb),
        list(&max_gap),
        list(&events)
    );
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

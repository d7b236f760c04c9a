//! Where log lines go: stderr, gathered in memory and written in one
//! `write` per [`FLUSH_EVERY`] instead of one per line.
//!
//! Every request logs a line, and on a busy core the `write` system call
//! per line cost more than formatting it (a tenth of a core at 12k
//! requests/s). Lines are appended to a buffer under a mutex; a small
//! thread writes the buffer out every [`FLUSH_EVERY`]. Warnings and errors
//! are written at once (with everything before them, so the order holds),
//! as is a buffer that reaches [`FLUSH_AT`]. [`flush`] runs at exit and in
//! the panic hook. What a `kill -9` can lose: the last tenth of a second of
//! info lines (the request log in the store keeps the same requests).

use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tracing::field::{Field, Visit};
use tracing::{Level, Metadata};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FormatFields, MakeWriter};

/// How long an info line may wait: a person tailing the log does not notice.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// A buffer this full is written at once, which bounds its memory.
pub const FLUSH_AT: usize = 64 * 1024;

static PENDING: Mutex<Vec<u8>> = Mutex::new(Vec::new());

/// Set when the subscriber writes plain text without colours: request
/// lines can then be written straight to the buffer (see [`info_line`]).
static PLAIN_TEXT: AtomicBool = AtomicBool::new(false);

/// Says that the installed subscriber formats plain text without colours.
pub fn set_plain_text(plain: bool) {
    PLAIN_TEXT.store(plain, Ordering::Relaxed);
}

/// Whether the installed subscriber writes plain text without colours, so
/// that [`info_line`] can stand in for a `tracing::info!` event. The caller
/// still checks, with `tracing::enabled!`, that the event's level is on.
pub fn plain_text() -> bool {
    PLAIN_TEXT.load(Ordering::Relaxed)
}

/// Appends one info line, formatted as the text subscriber would format
/// an event in span `span` with target `target` and the already formatted
/// `fields` (message first). For the line every request writes: going
/// through the subscriber (dispatch, span lookup, a visitor per field) cost
/// more than a tenth of a request's CPU time at c=64.
pub fn info_line(span: &str, target: &str, fields: &str) {
    use std::fmt::Write as _;
    let mut line = String::with_capacity(64 + span.len() + target.len() + fields.len());
    write_timestamp(&mut line, std::time::SystemTime::now());
    let _ = writeln!(line, "  INFO {span}: {target}: {fields}");
    let _ = LineWriter { urgent: false }.write_all(line.as_bytes());
}

/// `2026-11-22T13:05:44.862851Z`, as tracing-subscriber's default timer.
fn write_timestamp(out: &mut String, now: std::time::SystemTime) {
    use std::fmt::Write as _;
    let since = now
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since.as_secs();
    let (days, rest) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60,
        since.subsec_micros()
    );
}

/// The `MakeWriter` for `tracing_subscriber::fmt().with_writer(..)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogOutput;

/// Starts the thread that writes buffered lines out. Call once.
pub fn start_flusher() {
    std::thread::Builder::new()
        .name("llmgate-log".into())
        .spawn(|| {
            loop {
                std::thread::sleep(FLUSH_EVERY);
                flush();
            }
        })
        .expect("spawning the log thread");
}

/// Writes out every buffered line now.
pub fn flush() {
    let mut pending = PENDING.lock().unwrap_or_else(|e| e.into_inner());
    write_out(&mut pending);
}

/// Writes `pending` to stderr while its lock is held, so lines keep their order.
fn write_out(pending: &mut Vec<u8>) {
    if pending.is_empty() {
        return;
    }
    // Nowhere to report a failed log write; the lines are dropped either way.
    let _ = std::io::stderr().write_all(pending);
    pending.clear();
    if pending.capacity() > FLUSH_AT * 2 {
        pending.shrink_to(FLUSH_AT);
    }
}

/// Warnings and errors are written at once.
fn is_urgent(level: &Level) -> bool {
    *level <= Level::WARN
}

/// One event's writer: `urgent` for warnings and errors.
#[derive(Debug)]
pub struct LineWriter {
    urgent: bool,
}

impl Write for LineWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let mut pending = PENDING.lock().unwrap_or_else(|e| e.into_inner());
        pending.extend_from_slice(bytes);
        if self.urgent || pending.len() >= FLUSH_AT {
            write_out(&mut pending);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogOutput {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> LineWriter {
        LineWriter { urgent: true }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> LineWriter {
        LineWriter {
            urgent: is_urgent(meta.level()),
        }
    }
}

/// Text-format fields as `name=value`, like tracing-subscriber's default
/// (strings quoted and escaped, the message bare), without its per-field
/// styling layers: with twenty fields on every request's line, those were
/// half of what the line cost, colours or not.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlainFields;

impl<'writer> FormatFields<'writer> for PlainFields {
    fn format_fields<R: RecordFields>(
        &self,
        writer: Writer<'writer>,
        fields: R,
    ) -> std::fmt::Result {
        let mut visitor = PlainVisitor {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct PlainVisitor<'a> {
    writer: Writer<'a>,
    first: bool,
    result: std::fmt::Result,
}

impl PlainVisitor<'_> {
    fn write(&mut self, field: &Field, value: std::fmt::Arguments<'_>) {
        if self.result.is_err() {
            return;
        }
        let separator = if std::mem::replace(&mut self.first, false) {
            ""
        } else {
            " "
        };
        let name = field.name();
        self.result = if name == "message" {
            write!(self.writer, "{separator}{value}")
        } else {
            let name = name.strip_prefix("r#").unwrap_or(name);
            write!(self.writer, "{separator}{name}={value}")
        };
    }
}

impl Visit for PlainVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.write(field, format_args!("{value}"));
        } else {
            // Quoted and escaped: values can come from clients (model names).
            self.write(field, format_args!("{value:?}"));
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.write(field, format_args!("{value}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.write(field, format_args!("{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.write(field, format_args!("{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.write(field, format_args!("{value:?}"));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.write(field, format_args!("{value:?}"));
    }
}

/// What a text subscriber without time or colours prints for the events
/// `emit` makes: with [`PlainFields`] when `plain`, else the default fields.
#[cfg(test)]
pub(crate) fn format_events(plain: bool, emit: impl FnOnce()) -> String {
    use std::sync::Arc;
    use tracing_subscriber::layer::SubscriberExt;
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);
    impl Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let out = Captured::default();
    let writer = out.clone();
    let layer = tracing_subscriber::fmt::layer()
        .without_time()
        .with_ansi(false)
        .with_writer(move || writer.clone());
    if plain {
        let subscriber = tracing_subscriber::registry().with(layer.fmt_fields(PlainFields));
        tracing::subscriber::with_default(subscriber, emit);
    } else {
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, emit);
    }
    String::from_utf8(out.0.lock().unwrap().clone()).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_lines_wait_and_a_warning_takes_them_along() {
        LineWriter { urgent: false }
            .write_all(b"an info line\n")
            .unwrap();
        assert!(PENDING.lock().unwrap().ends_with(b"an info line\n"));
        LineWriter { urgent: true }
            .write_all(b"a warning\n")
            .unwrap();
        assert!(PENDING.lock().unwrap().is_empty());
    }

    #[test]
    fn plain_fields_look_like_the_default_ones() {
        let lines = |plain: bool| {
            format_events(plain, || {
                let span = tracing::info_span!("request", id = "abc");
                let _entered = span.enter();
                let absent: Option<&str> = None;
                tracing::info!(
                    r#type = "chat",
                    model = "a \"quoted\"\nname",
                    shown = %"display",
                    count = 3u64,
                    signed = -2i64,
                    ok = true,
                    ms = 0.25,
                    whole = 2.0,
                    absent,
                    present = Some("x"),
                    "request"
                );
            })
        };
        let plain = lines(true);
        assert_eq!(plain, lines(false));
        assert!(plain.contains(r#"model="a \"quoted\"\nname""#), "{plain}");
    }

    #[test]
    fn timestamps_match_the_default_timer() {
        use std::time::{Duration, UNIX_EPOCH};
        for (secs, micros, want) in [
            (0, 0, "1970-01-01T00:00:00.000000Z"),
            (951_782_400, 5, "2000-02-29T00:00:00.000005Z"),
            (1_795_352_860, 122_042, "2026-11-22T13:07:40.122042Z"),
            (4_107_542_399, 999_999, "2100-02-28T23:59:59.999999Z"),
        ] {
            let mut out = String::new();
            write_timestamp(
                &mut out,
                UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_micros(micros),
            );
            assert_eq!(out, want);
        }
    }

    #[test]
    fn warnings_and_errors_are_urgent() {
        for (level, urgent) in [
            (Level::ERROR, true),
            (Level::WARN, true),
            (Level::INFO, false),
            (Level::DEBUG, false),
        ] {
            assert_eq!(is_urgent(&level), urgent, "{level}");
        }
    }
}

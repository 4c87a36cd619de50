//! One JSON object a line, written straight into the line buffer.
//!
//! The same lines as tracing-subscriber's JSON format with `flatten_event(true)`,
//! `with_current_span(false)` and no target (`{"timestamp":…,"level":…,"message":…,
//! field: value…}`), without its per-event costs: a timestamp string allocated, and every
//! key, quote and value passed through serde_json and then checked again as UTF-8 on its
//! way into the buffer, and the timestamp formatted through `fmt` digit by digit. That
//! was about a third of what `/gtg` cost. An event inside a span (the service opens none;
//! a library may) is handed to tracing-subscriber's own formatter, which lists the spans.

use std::fmt::{self, Write as _};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{Format, Json, JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent};
use tracing_subscriber::registry::LookupSpan;

/// The event format of JSON logs.
#[derive(Debug)]
pub struct JsonLines {
    /// For events inside spans.
    in_spans: Format<Json>,
}

impl JsonLines {
    pub fn new() -> Self {
        Self {
            in_spans: tracing_subscriber::fmt::format()
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_target(false),
        }
    }
}

impl Default for JsonLines {
    fn default() -> Self {
        Self::new()
    }
}

impl<S> FormatEvent<S, JsonFields> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        if event.parent().is_some() || (event.is_contextual() && ctx.lookup_current().is_some()) {
            return self.in_spans.format_event(ctx, writer, event);
        }
        writer.write_str("{\"timestamp\":\"")?;
        writer.write_str(Timestamp::of(SystemTime::now()).as_str())?;
        writer.write_str("\",\"level\":\"")?;
        writer.write_str(event.metadata().level().as_str())?;
        writer.write_char('"')?;
        let mut fields = FieldWriter {
            writer: &mut writer,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        writer.write_str("}\n")
    }
}

/// UTC in RFC 3339 with microseconds, `2026-11-22T12:00:00.123456Z`, as
/// tracing-subscriber writes it.
struct Timestamp([u8; 27]);

impl Timestamp {
    fn of(time: SystemTime) -> Self {
        // Before 1970 only on a clock gone wrong: written as the epoch.
        let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
        let seconds = since_epoch.as_secs();
        let (year, month, day) = civil_from_days(seconds / 86_400);
        let of_day = seconds % 86_400;
        let mut digits = [0u8; 27];
        let mut put = |at: usize, width: usize, mut value: u64| {
            for slot in digits[at..at + width].iter_mut().rev() {
                *slot = b'0' + (value % 10) as u8;
                value /= 10;
            }
        };
        put(0, 4, year);
        put(5, 2, month);
        put(8, 2, day);
        put(11, 2, of_day / 3600);
        put(14, 2, of_day / 60 % 60);
        put(17, 2, of_day % 60);
        put(20, 6, u64::from(since_epoch.subsec_micros()));
        for (at, separator) in [
            (4, b'-'),
            (7, b'-'),
            (10, b'T'),
            (13, b':'),
            (16, b':'),
            (19, b'.'),
            (26, b'Z'),
        ] {
            digits[at] = separator;
        }
        Self(digits)
    }

    fn as_str(&self) -> &str {
        // Digits and separators only: always ASCII.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// Year, month and day of the proleptic Gregorian calendar `days` after 1970-01-01
/// (Howard Hinnant's `civil_from_days`, for days that are not negative).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Writes each field as `,"name":value`, as serde_json would write it.
struct FieldWriter<'w, 'b> {
    writer: &'w mut Writer<'b>,
    result: fmt::Result,
}

impl FieldWriter<'_, '_> {
    fn entry(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_ok() {
            self.result = (|| {
                self.writer.write_str(",\"")?;
                write_escaped(self.writer, field.name())?;
                self.writer.write_str("\":")?;
                value(self.writer)
            })();
        }
    }
}

impl Visit for FieldWriter<'_, '_> {
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.entry(field, |w| w.write_str(if value { "true" } else { "false" }));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.entry(field, |w| write!(w, "{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.entry(field, |w| write!(w, "{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // JSON has no NaN or infinity: serde_json writes null. Debug, like serde_json,
        // keeps a whole number a float (`2.0`) and writes exponents (`1e21`).
        self.entry(field, |w| {
            if value.is_finite() {
                write!(w, "{value:?}")
            } else {
                w.write_str("null")
            }
        });
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.entry(field, |w| {
            w.write_char('"')?;
            write_escaped(w, value)?;
            w.write_char('"')
        });
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.entry(field, |w| {
            w.write_char('"')?;
            write!(Escaping(w), "{value:?}")?;
            w.write_char('"')
        });
    }
}

/// A `fmt::Write` that escapes what passes through it for a JSON string.
struct Escaping<'w, W: fmt::Write>(&'w mut W);

impl<W: fmt::Write> fmt::Write for Escaping<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write_escaped(self.0, s)
    }
}

/// `s` as the inside of a JSON string (RFC 8259): quotes, backslashes and control
/// characters escaped, everything else as it is.
fn write_escaped(out: &mut impl fmt::Write, s: &str) -> fmt::Result {
    let mut plain_from = 0;
    for (at, byte) in s.bytes().enumerate() {
        let escaped = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        out.write_str(&s[plain_from..at])?;
        if escaped.is_empty() {
            write!(out, "\\u{byte:04x}")?;
        } else {
            out.write_str(escaped)?;
        }
        plain_from = at + 1;
    }
    out.write_str(&s[plain_from..])
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use serde_json::Value;
    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    /// Collects what a subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;

        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    impl Captured {
        fn lines(&self) -> Vec<Value> {
            let bytes = self.0.lock().expect("lock").clone();
            String::from_utf8(bytes)
                .expect("UTF-8")
                .lines()
                .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
                .collect()
        }
    }

    /// Events with every kind of field, including strings that need escaping.
    fn emit_events() {
        let error = io::Error::other("disk \"full\"\n");
        tracing::info!(
            method = "GET",
            route = "/candidate/{name}",
            status = 200u16,
            latency_ms = 0.015,
            request_id = "a\"b\\c\u{1}d\te\u{7f}é李",
            "request"
        );
        tracing::warn!(error = %error, debug = ?Some("x"), ok = true, delta = -3i64, "store call failed");
        tracing::error!(nan = f64::NAN, big = 1e21, whole = 2.0, "odd numbers");
        tracing::info!("a message with \"quotes\" and a\nnewline");
    }

    fn capture(json_lines: bool) -> Vec<Value> {
        let captured = Captured::default();
        let builder = tracing_subscriber::fmt()
            .with_writer(captured.clone())
            .with_target(false)
            .json()
            .flatten_event(true)
            .with_current_span(false);
        if json_lines {
            tracing::subscriber::with_default(
                builder.event_format(JsonLines::new()).finish(),
                emit_events,
            );
        } else {
            tracing::subscriber::with_default(builder.finish(), emit_events);
        }
        captured.lines()
    }

    #[test]
    fn lines_are_the_same_json_as_tracing_subscribers_own_format() {
        let ours = capture(true);
        let theirs = capture(false);
        assert_eq!(ours.len(), 4);
        assert_eq!(ours.len(), theirs.len());
        for (mut ours, mut theirs) in ours.into_iter().zip(theirs) {
            for line in [&ours, &theirs] {
                let timestamp = line["timestamp"].as_str().expect("timestamp");
                assert_eq!(
                    timestamp.len(),
                    "2026-11-22T12:00:00.123456Z".len(),
                    "{timestamp}"
                );
                assert!(timestamp.ends_with('Z'), "{timestamp}");
            }
            ours["timestamp"] = Value::Null;
            theirs["timestamp"] = Value::Null;
            assert_eq!(ours, theirs);
        }
    }

    #[test]
    fn field_order_is_level_message_then_the_fields() {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(captured.clone())
            .json()
            .event_format(JsonLines::new())
            .finish();
        tracing::subscriber::with_default(subscriber, || tracing::info!(status = 200, "request"));
        let text = String::from_utf8(captured.0.lock().expect("lock").clone()).expect("UTF-8");
        let after_timestamp = &text[text.find("\",\"level\"").expect("level")..];
        assert_eq!(
            after_timestamp,
            "\",\"level\":\"INFO\",\"message\":\"request\",\"status\":200}\n"
        );
    }

    #[test]
    fn timestamps_are_rfc_3339_utc_with_microseconds() {
        use std::time::Duration;
        // Every day from 1970 to 2100 at a varying time of day, leap days included.
        for day in 0..47_847u64 {
            let at = UNIX_EPOCH
                + Duration::from_secs(day * 86_400 + day * 7919 % 86_400)
                + Duration::from_nanos(day * 104_729 % 1_000_000_000);
            let expected = time::OffsetDateTime::from(at);
            let expected = format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
                expected.year(),
                u8::from(expected.month()),
                expected.day(),
                expected.hour(),
                expected.minute(),
                expected.second(),
                expected.microsecond()
            );
            assert_eq!(Timestamp::of(at).as_str(), expected);
        }
    }

    #[test]
    fn escaping_follows_rfc_8259() {
        let mut out = String::new();
        write_escaped(&mut out, "plain é \" \\ \n \u{0} \u{1f} \u{7f}").expect("write");
        assert_eq!(out, "plain é \\\" \\\\ \\n \\u0000 \\u001f \u{7f}");
    }

    #[test]
    fn events_inside_a_span_keep_their_span_list() {
        let captured = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(captured.clone())
            .json()
            .event_format(JsonLines::new())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("invoke", operation = "GetItem");
            let _entered = span.enter();
            tracing::warn!("retrying");
        });
        let lines = captured.lines();
        assert_eq!(lines[0]["message"], "retrying");
        assert_eq!(lines[0]["spans"][0]["name"], "invoke");
    }
}

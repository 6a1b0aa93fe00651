//! The traffic generator: sends a paced stream of datagrams from a lab socket, server
//! side, so its timing does not depend on the browser.

use std::sync::Arc;
use std::time::{Duration, Instant};

use socklab_analysis::seqhdr::{self, SeqHeader};
use socklab_protocol::flow::{Amount, GeneratorPace, GeneratorPayload, GeneratorSpec};
use socklab_protocol::{Endpoint, ErrorCode, GeneratorId, SocketId};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::error::CommandError;
use crate::log::{EventLog, Record};
use crate::timer::sleep_until;
use crate::udp::{SendRequest, check_size};

/// The fastest a generator may send, datagrams per second.
pub const MAX_RATE: f64 = 100_000.0;
/// The most datagrams one generator may send.
pub const MAX_COUNT: u64 = 1_000_000;
/// The longest a generator may run.
pub const MAX_DURATION: Duration = Duration::from_secs(600);
/// The most generators running at once in one session.
pub const MAX_RUNNING: usize = 8;

/// A generator's pace, checked: how many datagrams, how fast.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pace {
    /// Datagrams per second.
    pub rate: f64,
    /// How many datagrams.
    pub count: u64,
    /// The time between two datagrams.
    pub interval: Duration,
}

impl Pace {
    /// Checks a `generate` command's numbers. Every one comes from a client, so each is
    /// checked in floating point before it becomes an integer or a `Duration` (whose
    /// conversions panic on values out of range): a refusal names the field.
    pub fn check(spec: &GeneratorSpec) -> Result<Pace, CommandError> {
        let rate = match spec.pace {
            GeneratorPace::IntervalMs(ms)
                if ms.is_finite() && ms > 0.0 && ms < 1000.0 / MAX_RATE =>
            {
                return Err(CommandError::new(
                    ErrorCode::LimitExceeded,
                    format!(
                        "interval_ms is {ms}; the shortest interval is {} ms ({MAX_RATE} datagrams/s)",
                        1000.0 / MAX_RATE
                    ),
                ));
            }
            GeneratorPace::IntervalMs(ms) if ms.is_finite() && ms > 0.0 => {
                if ms > MAX_DURATION.as_secs_f64() * 1000.0 {
                    return Err(CommandError::new(
                        ErrorCode::LimitExceeded,
                        format!(
                            "interval_ms is {ms}; a generator runs at most {} s, so the interval is at most {} ms",
                            MAX_DURATION.as_secs(),
                            MAX_DURATION.as_millis()
                        ),
                    ));
                }
                1000.0 / ms
            }
            GeneratorPace::IntervalMs(ms) => {
                return Err(CommandError::bad_request(format!(
                    "interval_ms must be a positive number of milliseconds, not {ms}"
                )));
            }
            GeneratorPace::Rate(rate) => rate,
        };
        if !rate.is_finite() || rate <= 0.0 {
            return Err(CommandError::bad_request(format!(
                "the rate must be a positive number of datagrams per second, not {rate}"
            )));
        }
        if rate > MAX_RATE {
            return Err(CommandError::new(
                ErrorCode::LimitExceeded,
                format!("{rate} datagrams/s is over the generator's limit of {MAX_RATE}"),
            ));
        }
        // The interval may not be longer than a whole run.
        let min_rate = 1.0 / MAX_DURATION.as_secs_f64();
        if rate < min_rate {
            return Err(CommandError::bad_request(format!(
                "the rate is {rate} datagrams/s; a generator sends at least one datagram every {} s ({min_rate:.5}/s)",
                MAX_DURATION.as_secs()
            )));
        }
        let count = match spec.amount {
            Amount::Count(n) => n,
            Amount::DurationMs(ms) => {
                if ms > MAX_DURATION.as_millis() as u64 {
                    return Err(CommandError::new(
                        ErrorCode::LimitExceeded,
                        format!(
                            "duration_ms is {ms}; a generator runs at most {} ms",
                            MAX_DURATION.as_millis()
                        ),
                    ));
                }
                // At most 600 s × 100,000/s: exact in f64, and within u64.
                ((ms as f64 / 1000.0) * rate).ceil() as u64
            }
        };
        if count == 0 {
            return Err(CommandError::bad_request(
                "a generator must send at least one datagram",
            ));
        }
        // The last datagram leaves (count - 1) intervals after the first.
        let seconds = (count - 1) as f64 / rate;
        if count > MAX_COUNT || seconds > MAX_DURATION.as_secs_f64() {
            return Err(CommandError::new(
                ErrorCode::LimitExceeded,
                format!(
                    "{count} datagrams at {rate}/s is over the generator's limits ({MAX_COUNT} datagrams, {} s)",
                    MAX_DURATION.as_secs()
                ),
            ));
        }
        // At most MAX_DURATION (the rate's floor), well inside what a Duration holds.
        let interval = Duration::try_from_secs_f64(1.0 / rate).map_err(|_| {
            CommandError::bad_request(format!("the rate {rate} gives no usable interval"))
        })?;
        Ok(Pace {
            rate,
            count,
            interval,
        })
    }
}

/// A `generate` command, checked: its pace and the payload after the header.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    /// How many datagrams, how fast.
    pub pace: Pace,
    /// The sequence header's length (0 without it).
    pub header_len: usize,
    /// The payload after the header, already sized.
    pub body: Vec<u8>,
}

impl Checked {
    /// The length of every datagram it sends.
    pub fn datagram_len(&self) -> usize {
        self.header_len + self.body.len()
    }
}

/// Checks a `generate` command for a destination `to` (whose address family sets the
/// largest datagram): its numbers ([`Pace::check`]), and its payload, sized before
/// anything is allocated for it. Pure: the session checks the socket, its budget and
/// how many generators run.
pub fn check(spec: &GeneratorSpec, to: &Endpoint) -> Result<Checked, CommandError> {
    let pace = Pace::check(spec)?;
    let header_len = if spec.sequence { seqhdr::LEN } else { 0 };
    let body = match &spec.payload {
        GeneratorPayload::Pattern(pattern) => pattern
            .decode()
            .map_err(|e| CommandError::bad_request(e.to_string()))?,
        GeneratorPayload::Size(size) => {
            check_size(*size, to)?;
            let Some(body_len) = size.checked_sub(header_len) else {
                return Err(CommandError::bad_request(format!(
                    "with the sequence header a payload has at least {header_len} bytes, not {size}"
                )));
            };
            vec![0; body_len]
        }
    };
    check_size(header_len.saturating_add(body.len()), to)?;
    Ok(Checked {
        pace,
        header_len,
        body,
    })
}

/// What a generator sends, checked and resolved by the session.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The generator's id.
    pub id: GeneratorId,
    /// The sending socket.
    pub socket: SocketId,
    /// Its send queue.
    pub sends: mpsc::Sender<SendRequest>,
    /// The destination.
    pub to: Endpoint,
    /// How many datagrams.
    pub count: u64,
    /// The time between two datagrams.
    pub interval: Duration,
    /// The payload (after the header, if any), already sized.
    pub body: Vec<u8>,
    /// The sequence header's flow id, if headers are on.
    pub seq_flow: Option<u32>,
}

/// A running generator.
#[derive(Debug)]
pub struct GeneratorHandle {
    cancel: CancellationToken,
    /// Ends with `None` when the generator finished by itself (and logged its end), or
    /// with how many it sent when it was stopped.
    task: JoinHandle<Option<u64>>,
}

impl GeneratorHandle {
    /// Starts sending. When it ends by itself it logs its `generator_done`.
    pub fn start(plan: Plan, log: Arc<EventLog>, parent: &CancellationToken) -> Self {
        let cancel = parent.child_token();
        let span =
            tracing::info_span!("generator", id = %plan.id, socket = %plan.socket, to = %plan.to);
        let task = tokio::spawn(run(plan, log, cancel.clone()).instrument(span));
        GeneratorHandle { cancel, task }
    }

    /// Whether it has ended.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Stops it. Returns how many datagrams it sent, or `None` if it had already
    /// finished by itself (its end is logged then).
    pub async fn stop(self) -> Option<u64> {
        self.cancel.cancel();
        self.task.await.unwrap_or(None)
    }
}

async fn run(plan: Plan, log: Arc<EventLog>, cancel: CancellationToken) -> Option<u64> {
    let (reply, mut failures) = mpsc::unbounded_channel();
    let interval = plan.interval;
    let start = tokio::time::Instant::now();
    let mut sent = 0u64;
    let mut error = None;
    let header_len = if plan.seq_flow.is_some() {
        seqhdr::LEN
    } else {
        0
    };
    while sent < plan.count {
        // `sent < count <= MAX_COUNT` and `count * interval <= MAX_DURATION` (checked by
        // `Pace::check`), so neither the product nor the sum can overflow.
        let due = start + interval.saturating_mul(u32::try_from(sent).unwrap_or(u32::MAX));
        tokio::select! {
            _ = cancel.cancelled() => return Some(sent),
            // Through the shared helper: a send already due goes now, not at tokio's
            // next millisecond.
            _ = sleep_until(Some(due)) => {}
        }
        // Exactly as long as it is, so the log keeps it without reallocating.
        let mut payload = Vec::with_capacity(header_len + plan.body.len());
        payload.resize(header_len, 0);
        payload.extend_from_slice(&plan.body);
        if let Some(flow) = plan.seq_flow {
            SeqHeader {
                flow,
                seq: sent,
                sent_ns: log.t_ns(Instant::now()),
            }
            .write(&mut payload);
        }
        let request = SendRequest {
            to: plan.to.clone(),
            payload,
            req: None,
            reply: reply.clone(),
        };
        tokio::select! {
            _ = cancel.cancelled() => return Some(sent),
            queued = plan.sends.send(request) => {
                if queued.is_err() {
                    error = Some(format!("socket {} was closed", plan.socket));
                    break;
                }
            }
        }
        sent += 1;
        if let Ok(failure) = failures.try_recv() {
            error = Some(failure.message);
            break;
        }
    }
    tracing::info!(sent, "generator finished");
    log.append(
        Instant::now(),
        Record::GeneratorDone(Box::new(crate::log::GeneratorDoneRecord {
            generator: plan.id.clone(),
            sent,
            stopped: error.is_some(),
            error,
            req: None,
        })),
    );
    None
}

#[cfg(test)]
mod tests {
    use socklab_protocol::payload::Payload;

    use super::*;

    fn spec(payload: GeneratorPayload, sequence: bool) -> GeneratorSpec {
        GeneratorSpec {
            socket: SocketId::new("s1"),
            to: "127.0.0.1:9".into(),
            amount: Amount::Count(10),
            pace: GeneratorPace::Rate(1_000.0),
            payload,
            sequence,
        }
    }

    /// Each case: the command's payload, whether it has the header, the destination's
    /// family, and what the check says (the datagram's length, or the refusal's code).
    #[test]
    fn payloads_are_sized_for_the_destination_before_anything_is_allocated() {
        use GeneratorPayload::{Pattern, Size};
        let v4: Endpoint = "127.0.0.1:9".parse().unwrap();
        let v6: Endpoint = "[::1]:9".parse().unwrap();
        let unix = Endpoint::unix("@lab");
        let text = |s: &str| Pattern(Payload::Text(s.into()));
        let cases: Vec<(GeneratorPayload, bool, Endpoint, Result<usize, ErrorCode>)> = vec![
            (Size(64), true, v4.clone(), Ok(64)),
            (Size(64), false, v4.clone(), Ok(64)),
            (Size(24), true, v4.clone(), Ok(24)),
            (Size(23), true, v4.clone(), Err(ErrorCode::BadRequest)),
            (Size(0), false, v4.clone(), Ok(0)),
            (Size(65_507), true, v4.clone(), Ok(65_507)),
            (
                Size(65_508),
                true,
                v4.clone(),
                Err(ErrorCode::PayloadTooLarge),
            ),
            (Size(65_527), true, v6.clone(), Ok(65_527)),
            (
                Size(65_528),
                false,
                v6.clone(),
                Err(ErrorCode::PayloadTooLarge),
            ),
            // A Unix datagram has no IP or UDP header to fit.
            (Size(65_536), true, unix.clone(), Ok(65_536)),
            (Size(65_537), false, unix, Err(ErrorCode::PayloadTooLarge)),
            // A petabyte is refused by its number, never allocated.
            (
                Size(1 << 50),
                true,
                v4.clone(),
                Err(ErrorCode::PayloadTooLarge),
            ),
            // A pattern follows the header.
            (text("hello"), true, v4.clone(), Ok(29)),
            (text("hello"), false, v4.clone(), Ok(5)),
            (
                Pattern(Payload::Hex("zz".into())),
                false,
                v4.clone(),
                Err(ErrorCode::BadRequest),
            ),
            (
                text(&"x".repeat(65_490)),
                true,
                v4.clone(),
                Err(ErrorCode::PayloadTooLarge),
            ),
        ];
        for (payload, sequence, to, expected) in cases {
            let what = format!("{payload:?} sequence {sequence} to {to}");
            let got = check(&spec(payload, sequence), &to)
                .map(|c| c.datagram_len())
                .map_err(|e| e.code);
            assert_eq!(got, expected, "{what}");
        }
    }

    #[test]
    fn the_pace_comes_from_the_rate_or_the_interval() {
        let checked = check(
            &spec(GeneratorPayload::Size(64), true),
            &"127.0.0.1:9".parse().unwrap(),
        )
        .unwrap();
        assert_eq!(
            checked.pace,
            Pace {
                rate: 1_000.0,
                count: 10,
                interval: Duration::from_millis(1)
            }
        );
        let by_interval = GeneratorSpec {
            amount: Amount::DurationMs(1_000),
            pace: GeneratorPace::IntervalMs(20.0),
            ..spec(GeneratorPayload::Size(64), true)
        };
        let pace = Pace::check(&by_interval).unwrap();
        assert_eq!((pace.rate, pace.count), (50.0, 50));
        for (pace, code) in [
            (GeneratorPace::Rate(0.0), ErrorCode::BadRequest),
            (GeneratorPace::Rate(f64::NAN), ErrorCode::BadRequest),
            (GeneratorPace::Rate(1e-300), ErrorCode::BadRequest),
            (GeneratorPace::Rate(1e9), ErrorCode::LimitExceeded),
            (GeneratorPace::IntervalMs(-1.0), ErrorCode::BadRequest),
            (GeneratorPace::IntervalMs(1e-6), ErrorCode::LimitExceeded),
        ] {
            let refused = Pace::check(&GeneratorSpec {
                pace,
                ..spec(GeneratorPayload::Size(64), true)
            });
            assert_eq!(refused.map_err(|e| e.code), Err(code), "{pace:?}");
        }
    }
}

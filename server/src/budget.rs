//! Token buckets that hold one second's worth: a session's send budget (datagrams and
//! bytes per second, shared by all its sockets, commands and generators alike), and
//! the questions a viewer may ask of the counts and windows (`--max-queries-per-sec`).

use std::sync::Mutex;
use std::time::Instant;

use socklab_protocol::ErrorCode;

use crate::error::CommandError;

/// How much a session may send.
#[derive(Debug)]
pub struct SendBudget {
    per_sec_datagrams: f64,
    per_sec_bytes: f64,
    state: Mutex<Buckets>,
}

#[derive(Debug)]
struct Buckets {
    datagrams: f64,
    bytes: f64,
    refilled: Instant,
}

impl SendBudget {
    /// A full budget of `datagrams` and `bytes` per second.
    pub fn new(datagrams: u64, bytes: u64) -> Self {
        SendBudget {
            per_sec_datagrams: datagrams as f64,
            per_sec_bytes: bytes as f64,
            state: Mutex::new(Buckets {
                datagrams: datagrams as f64,
                bytes: bytes as f64,
                refilled: Instant::now(),
            }),
        }
    }

    /// Takes one datagram of `len` bytes from the budget, or says which limit it breaks.
    pub fn take(&self, len: usize) -> Result<(), CommandError> {
        let mut b = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(b.refilled).as_secs_f64();
        b.refilled = now;
        b.datagrams = (b.datagrams + elapsed * self.per_sec_datagrams).min(self.per_sec_datagrams);
        b.bytes = (b.bytes + elapsed * self.per_sec_bytes).min(self.per_sec_bytes);
        if b.datagrams < 1.0 {
            return Err(CommandError::new(
                ErrorCode::LimitExceeded,
                format!(
                    "this session sends at most {} datagrams per second (--max-datagrams-per-sec); this one was not sent",
                    self.per_sec_datagrams
                ),
            ));
        }
        if b.bytes < len as f64 {
            return Err(CommandError::new(
                ErrorCode::LimitExceeded,
                format!(
                    "this session sends at most {} bytes per second (--max-bytes-per-sec); this datagram was not sent",
                    self.per_sec_bytes
                ),
            ));
        }
        b.datagrams -= 1.0;
        b.bytes -= len as f64;
        Ok(())
    }

    /// Whether a steady stream of `rate` datagrams/s of `len` bytes fits the budget.
    pub fn fits(&self, rate: f64, len: usize) -> Result<(), CommandError> {
        if rate > self.per_sec_datagrams || rate * len as f64 > self.per_sec_bytes {
            return Err(CommandError::new(
                ErrorCode::LimitExceeded,
                format!(
                    "{rate} datagrams/s of {len} bytes is over this session's send limits ({} datagrams/s, {} bytes/s: --max-datagrams-per-sec, --max-bytes-per-sec)",
                    self.per_sec_datagrams, self.per_sec_bytes
                ),
            ));
        }
        Ok(())
    }
}

/// How many questions of counts and windows may be asked a second: each costs bounded
/// work (a scan of the session's log, up to `--log-max-events`; counts of up to 256
/// lanes of 4,096 buckets; a read of a recording's chunks), but one asked in a loop
/// would keep a core busy. A page asks at most four a second.
#[derive(Debug)]
pub struct QueryBudget {
    per_sec: f64,
    state: Mutex<(f64, Instant)>,
}

impl QueryBudget {
    /// A full budget of `per_sec` questions a second (at least one).
    pub fn new(per_sec: u64) -> Self {
        let per_sec = per_sec.max(1) as f64;
        QueryBudget {
            per_sec,
            state: Mutex::new((per_sec, Instant::now())),
        }
    }

    /// Takes one question from the budget, or says the limit in words (`who` asks:
    /// "this viewer", "the recordings' pages together").
    pub fn take(&self, who: &str) -> Result<(), CommandError> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(state.1).as_secs_f64();
        *state = ((state.0 + elapsed * self.per_sec).min(self.per_sec), now);
        if state.0 < 1.0 {
            return Err(CommandError::new(
                ErrorCode::LimitExceeded,
                format!(
                    "{who} may ask at most {} questions a second of the counts and windows (--max-queries-per-sec); this one was not answered, ask again in a moment",
                    self.per_sec
                ),
            ));
        }
        state.0 -= 1.0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_holds_one_second() {
        let budget = SendBudget::new(3, 1_000);
        for _ in 0..3 {
            budget.take(10).unwrap();
        }
        let err = budget.take(10).unwrap_err();
        assert!(
            err.message.contains("--max-datagrams-per-sec"),
            "{}",
            err.message
        );
        let bytes = SendBudget::new(100, 50);
        bytes.take(40).unwrap();
        assert!(
            bytes
                .take(40)
                .unwrap_err()
                .message
                .contains("--max-bytes-per-sec")
        );
        let queries = QueryBudget::new(2);
        queries.take("this viewer").unwrap();
        queries.take("this viewer").unwrap();
        let err = queries.take("this viewer").unwrap_err();
        assert_eq!(err.code, ErrorCode::LimitExceeded);
        assert!(
            err.message.starts_with("this viewer may ask at most 2 ")
                && err.message.contains("--max-queries-per-sec"),
            "{}",
            err.message
        );
        assert!(
            budget.fits(3.0, 300).is_ok()
                && budget.fits(4.0, 10).is_err()
                && budget.fits(3.0, 400).is_err()
        );
    }
}

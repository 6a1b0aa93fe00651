//! Small timing helpers shared by the session and the links.

/// Sleeps until `at`, or forever when there is nothing to wait for (so it can sit in a
/// `select!` next to the things that do happen). A time already past returns at once:
/// tokio's timer rounds every deadline up to its next millisecond, so asking it to wait
/// for "now" would cost up to a millisecond.
pub async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) if at <= tokio::time::Instant::now() => {}
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// A high-resolution timer for a link's departures: a timerfd, so the kernel's hrtimer
/// wakes the task at the nanosecond it was set for (give or take the scheduler), where
/// tokio's timer wheel rounds every deadline up to its next millisecond. A link that
/// holds a datagram 20 ms must send it 20 ms later, not 20 to 21.
#[derive(Debug)]
pub struct HiResTimer {
    fd: Option<tokio::io::unix::AsyncFd<Fd>>,
    /// The deadline the timerfd is set for.
    armed: Option<std::time::Instant>,
}

/// A timerfd as tokio's reactor wants it.
#[derive(Debug)]
struct Fd(nix::sys::timerfd::TimerFd);

impl std::os::fd::AsRawFd for Fd {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsFd as _;
        self.0.as_fd().as_raw_fd()
    }
}

impl HiResTimer {
    /// A timer on the monotonic clock (the one `Instant` reads). Without a timerfd it
    /// falls back to tokio's timer.
    pub fn new() -> Self {
        use nix::sys::timerfd::{ClockId, TimerFd, TimerFlags};
        let fd = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )
        .map_err(std::io::Error::from)
        .and_then(|fd| {
            // `new` is deprecated for descriptors that may change under it; this one is
            // owned by the TimerFd inside, open and the same until the AsyncFd drops it,
            // which is what the unsafe `register` asks to be promised (and this crate
            // has no unsafe code).
            #[allow(deprecated)]
            tokio::io::unix::AsyncFd::new(Fd(fd))
        })
        .inspect_err(
            |e| tracing::warn!(error = %e, "no timerfd: departures keep tokio's millisecond timer"),
        )
        .ok();
        HiResTimer { fd, armed: None }
    }

    /// Waits until `at`; forever when `None`; at once when it is past. The timerfd is
    /// set again only when the deadline changed.
    pub async fn sleep_until(&mut self, at: Option<std::time::Instant>) {
        use nix::sys::time::TimeSpec;
        use nix::sys::timerfd::{Expiration, TimerSetTimeFlags};
        let Some(at) = at else {
            return std::future::pending().await;
        };
        let now = std::time::Instant::now();
        if at <= now {
            return;
        }
        let Some(fd) = &self.fd else {
            return sleep_until(Some(at.into())).await;
        };
        if self.armed != Some(at) {
            let wait = TimeSpec::from_duration(at - now);
            if let Err(e) = fd
                .get_ref()
                .0
                .set(Expiration::OneShot(wait), TimerSetTimeFlags::empty())
            {
                tracing::debug!(error = %e, "cannot set the timerfd");
                return sleep_until(Some(at.into())).await;
            }
            self.armed = Some(at);
        }
        loop {
            let Ok(mut ready) = fd.readable().await else {
                return sleep_until(Some(at.into())).await;
            };
            // Reading takes the expiry; not yet expired reads as "would block".
            if let Ok(Ok(())) =
                ready.try_io(|fd| fd.get_ref().0.wait().map_err(std::io::Error::from))
            {
                self.armed = None;
                return;
            }
        }
    }
}

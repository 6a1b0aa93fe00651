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
///
/// Waking a thread that sleeps takes the scheduler 50 to 200 µs on a small machine, so
/// at low rates (a game's 60 datagrams a second) every departure would be that late.
/// The timer therefore wakes [`EARLY`] before the deadline and spins through the rest,
/// as long as spinning has cost less than [`SPIN_BUDGET`] of the last second; at high
/// rates the task is awake anyway and the budget runs out, so it only sleeps.
#[derive(Debug)]
pub struct HiResTimer {
    fd: Option<tokio::io::unix::AsyncFd<Fd>>,
    /// The deadline the timerfd is set for.
    armed: Option<std::time::Instant>,
    /// Spinning this second: since when, and how long so far.
    spun: (std::time::Instant, std::time::Duration),
}

/// How long before a deadline the timer wakes, to spin through the rest.
pub const EARLY: std::time::Duration = std::time::Duration::from_micros(200);
/// How long the timer may spin in each second: 1 % of it, fifty spins of [`EARLY`].
const SPIN_BUDGET: std::time::Duration = std::time::Duration::from_millis(10);

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
        HiResTimer {
            fd,
            armed: None,
            spun: (std::time::Instant::now(), std::time::Duration::ZERO),
        }
    }

    /// Whether this second's spinning budget has room for one more spin.
    fn may_spin(&mut self, now: std::time::Instant) -> bool {
        if now.duration_since(self.spun.0) >= std::time::Duration::from_secs(1) {
            self.spun = (now, std::time::Duration::ZERO);
        }
        self.spun.1 + EARLY <= SPIN_BUDGET
    }

    /// Spins until `at` (at most [`EARLY`] away), counting the time spent.
    fn spin_until(&mut self, at: std::time::Instant) {
        let start = std::time::Instant::now();
        while std::time::Instant::now() < at {
            std::hint::spin_loop();
        }
        self.spun.1 += start.elapsed();
    }

    /// Waits until `at`; forever when `None`; at once when it is past. The timerfd is
    /// set again only when the deadline changed.
    pub async fn sleep_until(&mut self, at: Option<std::time::Instant>) {
        let Some(at) = at else {
            return std::future::pending().await;
        };
        let now = std::time::Instant::now();
        if at <= now {
            return;
        }
        // Close enough to spin through, or wake early and then spin.
        let spin = self.fd.is_some() && self.may_spin(now);
        if spin && at - now <= EARLY {
            self.spin_until(at);
            return;
        }
        let wake = if spin { at - EARLY } else { at };
        self.sleep_on_timerfd(wake).await;
        if spin {
            self.spin_until(at);
        }
    }

    async fn sleep_on_timerfd(&mut self, at: std::time::Instant) {
        use nix::sys::time::TimeSpec;
        use nix::sys::timerfd::{Expiration, TimerSetTimeFlags};
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

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    /// Never early, with the spin budget and once it is spent: a departure may be late
    /// (the machine is busy) but never before its time.
    #[tokio::test]
    async fn it_never_wakes_before_its_deadline_spinning_or_not() {
        let mut timer = HiResTimer::new();
        for wait_us in [50u64, 300, 2_000, 50, 300, 2_000] {
            let at = Instant::now() + Duration::from_micros(wait_us);
            timer.sleep_until(Some(at)).await;
            assert!(Instant::now() >= at, "woke before a {wait_us} µs deadline");
        }
        // Spend the budget: from then on it sleeps without spinning, still on time.
        timer.spun.1 = SPIN_BUDGET;
        assert!(!timer.may_spin(Instant::now()));
        for wait_us in [50u64, 300, 2_000] {
            let at = Instant::now() + Duration::from_micros(wait_us);
            timer.sleep_until(Some(at)).await;
            assert!(Instant::now() >= at, "woke before a {wait_us} µs deadline");
        }
        // A deadline already past returns at once.
        timer.sleep_until(Some(Instant::now())).await;
    }

    #[tokio::test]
    async fn the_spin_budget_renews_every_second() {
        let mut timer = HiResTimer::new();
        let start = timer.spun.0;
        timer.spun.1 = SPIN_BUDGET;
        assert!(!timer.may_spin(start + Duration::from_millis(500)));
        assert!(timer.may_spin(start + Duration::from_millis(1_001)));
        assert_eq!(timer.spun.1, Duration::ZERO);
    }
}

//! RFC 3550 interarrival jitter (section 6.4.1 and appendix A.8).

/// A running jitter estimate: for consecutive arrivals i and j,
/// `D(i,j) = (Rj - Ri) - (Sj - Si)` and `J += (|D| - J) / 16`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Jitter {
    last_transit: Option<i128>,
    jitter: f64,
}

impl Jitter {
    /// Takes one arrival: its send and receive times (any unit, the same for both).
    pub fn arrive(&mut self, sent: u64, received: u64) {
        let transit = received as i128 - sent as i128;
        if let Some(last) = self.last_transit {
            let d = (transit - last).unsigned_abs() as f64;
            self.jitter += (d - self.jitter) / 16.0;
        }
        self.last_transit = Some(transit);
    }

    /// The current estimate, in the unit of the times given.
    pub fn value(&self) -> f64 {
        self.jitter
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Worked by hand from the RFC's formula: sends every 20 ms, transits 50, 60, 55, 55.
    #[test]
    fn matches_a_hand_computed_example() {
        let mut j = Jitter::default();
        j.arrive(0, 50);
        assert_eq!(j.value(), 0.0);
        j.arrive(20, 80); // transit 60: D = 10, J = 10/16 = 0.625
        assert_eq!(j.value(), 0.625);
        j.arrive(40, 95); // transit 55: D = 5, J = 0.625 + (5 - 0.625)/16 = 0.8984375
        assert_eq!(j.value(), 0.898_437_5);
        j.arrive(60, 115); // transit 55: D = 0, J = 0.8984375 * 15/16 = 0.84228515625
        assert_eq!(j.value(), 0.842_285_156_25);
    }
}

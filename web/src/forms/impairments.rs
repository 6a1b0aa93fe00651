//! The impairments editor's fields: each reads its number from a link's settings and
//! writes a typed one back, or says why it cannot. The editor renders one input per
//! field and nothing else.

use socklab_protocol::link::{Impairments, JitterDist, Loss, MtuAction};

/// One number of a direction's impairments, as the editor shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// Random loss, %.
    LossPct,
    /// Gilbert-Elliott: good → bad, %.
    GeP,
    /// Gilbert-Elliott: bad → good, %.
    GeR,
    /// Gilbert-Elliott: loss in the good state, %.
    GeLossGood,
    /// Gilbert-Elliott: loss in the bad state, %.
    GeLossBad,
    /// Delay, ms.
    DelayMs,
    /// Jitter, ms.
    JitterMs,
    /// Reordering, %.
    ReorderPct,
    /// How many later datagrams overtake a held one.
    ReorderGap,
    /// Duplication, %.
    DuplicatePct,
    /// Corruption, %.
    CorruptPct,
    /// Bottleneck rate, bit/s (0: none).
    RateBps,
    /// Queue limit, datagrams.
    QueuePackets,
    /// Queue limit, bytes (0: none).
    QueueBytes,
    /// MTU, bytes (0: none).
    Mtu,
}

impl Field {
    /// The loss fields, by loss model.
    pub const RANDOM: [Field; 1] = [Field::LossPct];
    /// The Gilbert-Elliott fields.
    pub const GILBERT_ELLIOTT: [Field; 4] =
        [Field::GeP, Field::GeR, Field::GeLossGood, Field::GeLossBad];

    /// Its part of the input's id.
    pub fn key(self) -> &'static str {
        match self {
            Field::LossPct => "loss",
            Field::GeP => "ge-p",
            Field::GeR => "ge-r",
            Field::GeLossGood => "ge-good",
            Field::GeLossBad => "ge-bad",
            Field::DelayMs => "delay",
            Field::JitterMs => "jitter",
            Field::ReorderPct => "reorder",
            Field::ReorderGap => "gap",
            Field::DuplicatePct => "dup",
            Field::CorruptPct => "corrupt",
            Field::RateBps => "rate",
            Field::QueuePackets => "queue",
            Field::QueueBytes => "queue-bytes",
            Field::Mtu => "mtu",
        }
    }

    /// Its label.
    pub fn label(self) -> &'static str {
        match self {
            Field::LossPct => "loss %",
            Field::GeP => "p % (good→bad)",
            Field::GeR => "r % (bad→good)",
            Field::GeLossGood => "loss % good",
            Field::GeLossBad => "loss % bad",
            Field::DelayMs => "delay ms",
            Field::JitterMs => "jitter ms",
            Field::ReorderPct => "reorder %",
            Field::ReorderGap => "overtaken by",
            Field::DuplicatePct => "duplicate %",
            Field::CorruptPct => "corrupt %",
            Field::RateBps => "rate bit/s (0 = ∞)",
            Field::QueuePackets => "queue pkts",
            Field::QueueBytes => "queue bytes",
            Field::Mtu => "MTU (0 = none)",
        }
    }

    /// Its value in `imp`, as text (empty when the loss model has no such field).
    pub fn get(self, imp: &Impairments) -> String {
        let ge = |pick: fn(f64, f64, f64, f64) -> f64| match imp.loss {
            Loss::GilbertElliott {
                p_pct,
                r_pct,
                loss_good_pct,
                loss_bad_pct,
            } => pick(p_pct, r_pct, loss_good_pct, loss_bad_pct).to_string(),
            _ => String::new(),
        };
        match self {
            Field::LossPct => match imp.loss {
                Loss::Random { pct } => pct.to_string(),
                _ => String::new(),
            },
            Field::GeP => ge(|p, _, _, _| p),
            Field::GeR => ge(|_, r, _, _| r),
            Field::GeLossGood => ge(|_, _, g, _| g),
            Field::GeLossBad => ge(|_, _, _, b| b),
            Field::DelayMs => imp.delay_ms.to_string(),
            Field::JitterMs => imp.jitter_ms.to_string(),
            Field::ReorderPct => imp.reorder_pct.to_string(),
            Field::ReorderGap => imp.reorder_gap.to_string(),
            Field::DuplicatePct => imp.duplicate_pct.to_string(),
            Field::CorruptPct => imp.corrupt_pct.to_string(),
            Field::RateBps => imp.rate_bps.to_string(),
            Field::QueuePackets => imp.queue_packets.to_string(),
            Field::QueueBytes => imp.queue_bytes.to_string(),
            Field::Mtu => imp.mtu.to_string(),
        }
    }

    /// `imp` with this field set to what was typed, or why it cannot be. (The server
    /// checks ranges, such as a percentage above 100, and says so in its own words.)
    pub fn set(self, imp: Impairments, typed: &str) -> Result<Impairments, String> {
        let typed = typed.trim();
        let number = || {
            typed
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite())
                .ok_or_else(|| format!("{}: {typed:?} is not a number", self.label()))
        };
        let whole = || {
            typed
                .parse::<u64>()
                .map_err(|_| format!("{}: {typed:?} is not a whole number", self.label()))
        };
        let small = || {
            typed
                .parse::<u32>()
                .map_err(|_| format!("{}: {typed:?} is not a whole number", self.label()))
        };
        let mut next = imp;
        let ge = |next: &mut Impairments, n: f64, which: usize| {
            if let Loss::GilbertElliott {
                p_pct,
                r_pct,
                loss_good_pct,
                loss_bad_pct,
            } = &mut next.loss
            {
                *[p_pct, r_pct, loss_good_pct, loss_bad_pct][which] = n;
            }
        };
        match self {
            Field::LossPct => next.loss = Loss::Random { pct: number()? },
            Field::GeP => ge(&mut next, number()?, 0),
            Field::GeR => ge(&mut next, number()?, 1),
            Field::GeLossGood => ge(&mut next, number()?, 2),
            Field::GeLossBad => ge(&mut next, number()?, 3),
            Field::DelayMs => next.delay_ms = number()?,
            Field::JitterMs => next.jitter_ms = number()?,
            Field::ReorderPct => next.reorder_pct = number()?,
            Field::ReorderGap => next.reorder_gap = small()?,
            Field::DuplicatePct => next.duplicate_pct = number()?,
            Field::CorruptPct => next.corrupt_pct = number()?,
            Field::RateBps => next.rate_bps = whole()?,
            Field::QueuePackets => next.queue_packets = small()?,
            Field::QueueBytes => next.queue_bytes = whole()?,
            Field::Mtu => next.mtu = small()?,
        }
        Ok(next)
    }
}

/// The loss model's name in the editor's select.
pub fn loss_model(imp: &Impairments) -> &'static str {
    match imp.loss {
        Loss::None => "none",
        Loss::Random { .. } => "random",
        Loss::GilbertElliott { .. } => "gilbert_elliott",
    }
}

/// `imp` with the loss model named `model`, starting from sensible numbers.
pub fn with_loss_model(imp: Impairments, model: &str) -> Impairments {
    let loss = match model {
        "random" => Loss::Random { pct: 10.0 },
        "gilbert_elliott" => Loss::GilbertElliott {
            p_pct: 2.0,
            r_pct: 25.0,
            loss_good_pct: 0.0,
            loss_bad_pct: 100.0,
        },
        _ => Loss::None,
    };
    Impairments { loss, ..imp }
}

/// `imp` with the jitter shape named `shape` (`uniform` or `normal`).
pub fn with_jitter_dist(imp: Impairments, shape: &str) -> Impairments {
    let jitter_dist = if shape == "normal" {
        JitterDist::Normal
    } else {
        JitterDist::Uniform
    };
    Impairments { jitter_dist, ..imp }
}

/// `imp` with what happens to a datagram over the MTU named `action`.
pub fn with_mtu_action(imp: Impairments, action: &str) -> Impairments {
    let mtu_action = if action == "truncate" {
        MtuAction::Truncate
    } else {
        MtuAction::Drop
    };
    Impairments { mtu_action, ..imp }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Field; 15] = [
        Field::LossPct,
        Field::GeP,
        Field::GeR,
        Field::GeLossGood,
        Field::GeLossBad,
        Field::DelayMs,
        Field::JitterMs,
        Field::ReorderPct,
        Field::ReorderGap,
        Field::DuplicatePct,
        Field::CorruptPct,
        Field::RateBps,
        Field::QueuePackets,
        Field::QueueBytes,
        Field::Mtu,
    ];

    #[test]
    fn every_field_reads_back_what_was_written() {
        for field in ALL {
            let start = if Field::GILBERT_ELLIOTT.contains(&field) {
                with_loss_model(Impairments::default(), "gilbert_elliott")
            } else {
                Impairments::default()
            };
            let set = field.set(start, " 7 ").unwrap();
            assert_eq!(field.get(&set), "7", "{field:?}");
            assert_ne!(set, start, "{field:?} changed something");
            let keys: Vec<_> = ALL.iter().filter(|f| f.key() == field.key()).collect();
            assert_eq!(keys.len(), 1, "{field:?}'s id is its own");
        }
    }

    #[test]
    fn numbers_of_the_wrong_kind_are_refused_by_name() {
        let imp = Impairments::default();
        for (field, typed) in [
            (Field::DelayMs, "soon"),
            (Field::DelayMs, "NaN"),
            (Field::QueuePackets, "1.5"),
            (Field::QueuePackets, "-1"),
            (Field::RateBps, "99999999999999999999999"),
            (Field::Mtu, "5000000000"),
        ] {
            let error = field.set(imp, typed).unwrap_err();
            assert!(error.starts_with(field.label()), "{error}");
        }
    }

    #[test]
    fn models_and_shapes_are_chosen_by_name() {
        let imp = Impairments::default();
        assert_eq!(loss_model(&with_loss_model(imp, "random")), "random");
        assert_eq!(Field::LossPct.get(&with_loss_model(imp, "random")), "10");
        assert_eq!(Field::LossPct.get(&imp), "", "no loss, no loss field");
        assert_eq!(loss_model(&with_loss_model(imp, "anything else")), "none");
        assert_eq!(
            with_jitter_dist(imp, "normal").jitter_dist,
            JitterDist::Normal
        );
        assert_eq!(
            with_mtu_action(imp, "truncate").mtu_action,
            MtuAction::Truncate
        );
    }
}

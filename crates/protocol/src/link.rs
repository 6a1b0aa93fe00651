//! Link settings: what a person asks a link (an impairing UDP relay) to do to the
//! datagrams that cross it, in each direction. The decisions themselves are made by
//! `socklab-impair`; these are the settings as they travel on the wire.
//!
//! Percentages are 0–100, times are milliseconds, rates are bits per second; a zero
//! disables the feature (except where noted).

use serde::{Deserialize, Serialize};

/// The longest delay (and jitter) a link accepts, in milliseconds.
pub const MAX_DELAY_MS: f64 = 60_000.0;
/// The smallest MTU a link accepts (the IPv4 minimum).
pub const MIN_MTU: u32 = 68;
/// The most datagrams a held-back datagram may wait for.
pub const MAX_REORDER_GAP: u32 = 1_000;

/// How datagrams are lost.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Default)]
#[serde(tag = "model", rename_all = "snake_case")]
pub enum Loss {
    /// Nothing is lost at random.
    #[default]
    None,
    /// Each datagram is lost independently with probability `pct` %.
    Random {
        /// Loss probability, percent.
        pct: f64,
    },
    /// Bursty loss (Gilbert-Elliott): the link is in a good or a bad state; after each
    /// datagram it moves good → bad with probability `p_pct` % and bad → good with
    /// `r_pct` %. In the good state datagrams are lost with `loss_good_pct` %, in the
    /// bad state with `loss_bad_pct` %. Bad spells last 1/r datagrams on average.
    GilbertElliott {
        /// Good → bad transition probability, percent.
        p_pct: f64,
        /// Bad → good transition probability, percent.
        r_pct: f64,
        /// Loss probability in the good state, percent (often 0).
        loss_good_pct: f64,
        /// Loss probability in the bad state, percent (often 100).
        loss_bad_pct: f64,
    },
}

/// The shape of delay jitter.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum JitterDist {
    /// Uniform in `delay ± jitter`.
    #[default]
    Uniform,
    /// Normal with mean `delay` and standard deviation `jitter`, cut at ±3 σ.
    Normal,
}

/// What happens to a datagram larger than the MTU.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum MtuAction {
    /// It is dropped (as a router does with DF set).
    #[default]
    Drop,
    /// Its payload is cut to fit.
    Truncate,
}

/// The impairments of one direction of a link.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
#[serde(default)]
pub struct Impairments {
    /// How datagrams are lost.
    pub loss: Loss,
    /// Fixed one-way delay, ms.
    pub delay_ms: f64,
    /// Delay variation, ms (see `jitter_dist`).
    pub jitter_ms: f64,
    /// The shape of the variation.
    pub jitter_dist: JitterDist,
    /// Whether jitter may make a later datagram leave before an earlier one. When false,
    /// datagrams leave in arrival order (a datagram never leaves before its predecessor).
    pub jitter_may_reorder: bool,
    /// Probability, percent, that a datagram is held back until `reorder_gap` later
    /// datagrams have overtaken it. Works with or without delay.
    pub reorder_pct: f64,
    /// How many later datagrams overtake a held-back one (at least 1).
    pub reorder_gap: u32,
    /// Longest time a held-back datagram waits for its overtakers, ms; then it leaves
    /// anyway (so a lull in traffic never strands it).
    pub reorder_timeout_ms: f64,
    /// Probability, percent, that a datagram is sent twice.
    pub duplicate_pct: f64,
    /// Probability, percent, that one byte of a datagram is changed.
    pub corrupt_pct: f64,
    /// Bottleneck rate, bits per second; 0 = unlimited.
    pub rate_bps: u64,
    /// Queue limit in datagrams in front of the bottleneck; 0 = unlimited.
    pub queue_packets: u32,
    /// Queue limit in bytes in front of the bottleneck; 0 = unlimited.
    pub queue_bytes: u64,
    /// Largest IP packet, bytes (payload plus 28 bytes of IPv4 and UDP header, or 48
    /// for IPv6); 0 = no limit.
    pub mtu: u32,
    /// What happens to larger datagrams.
    pub mtu_action: MtuAction,
}

impl Default for Impairments {
    fn default() -> Self {
        Impairments {
            loss: Loss::None,
            delay_ms: 0.0,
            jitter_ms: 0.0,
            jitter_dist: JitterDist::Uniform,
            jitter_may_reorder: false,
            reorder_pct: 0.0,
            reorder_gap: 1,
            reorder_timeout_ms: 200.0,
            duplicate_pct: 0.0,
            corrupt_pct: 0.0,
            rate_bps: 0,
            queue_packets: 1000,
            queue_bytes: 0,
            mtu: 0,
            mtu_action: MtuAction::Drop,
        }
    }
}

/// A link's settings: one set of impairments per direction, and the seed of its random
/// decisions (the same seed and the same datagrams give the same decisions).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Default)]
#[serde(default)]
pub struct LinkSettings {
    /// Client → target (datagrams arriving at the link's listen address).
    pub c2t: Impairments,
    /// Target → client (the target's replies).
    pub t2c: Impairments,
    /// Seed of the link's random decisions.
    pub seed: u64,
}

fn check_pct(name: &str, v: f64) -> Result<(), String> {
    if v.is_finite() && (0.0..=100.0).contains(&v) {
        Ok(())
    } else {
        Err(format!(
            "{name} must be a percentage from 0 to 100, not {v}"
        ))
    }
}

fn check_ms(name: &str, v: f64) -> Result<(), String> {
    if v.is_finite() && (0.0..=MAX_DELAY_MS).contains(&v) {
        Ok(())
    } else {
        Err(format!(
            "{name} must be from 0 to {MAX_DELAY_MS} ms, not {v}"
        ))
    }
}

impl Impairments {
    /// Checks every number; the message names the field and its allowed range.
    pub fn validate(&self) -> Result<(), String> {
        match self.loss {
            Loss::None => {}
            Loss::Random { pct } => check_pct("random loss % (loss pct)", pct)?,
            Loss::GilbertElliott {
                p_pct,
                r_pct,
                loss_good_pct,
                loss_bad_pct,
            } => {
                check_pct("good→bad % (loss p_pct)", p_pct)?;
                check_pct("bad→good % (loss r_pct)", r_pct)?;
                check_pct("loss % when good (loss loss_good_pct)", loss_good_pct)?;
                check_pct("loss % when bad (loss loss_bad_pct)", loss_bad_pct)?;
            }
        }
        check_ms("the delay (delay_ms)", self.delay_ms)?;
        check_ms("the jitter (jitter_ms)", self.jitter_ms)?;
        check_ms(
            "the reorder timeout (reorder_timeout_ms)",
            self.reorder_timeout_ms,
        )?;
        check_pct("reorder % (reorder_pct)", self.reorder_pct)?;
        check_pct("duplicate % (duplicate_pct)", self.duplicate_pct)?;
        check_pct("corrupt % (corrupt_pct)", self.corrupt_pct)?;
        if !(1..=MAX_REORDER_GAP).contains(&self.reorder_gap) {
            return Err(format!(
                "\"overtaken by\" (reorder_gap) must be from 1 to {MAX_REORDER_GAP} datagrams, not {}",
                self.reorder_gap
            ));
        }
        if self.mtu != 0 && self.mtu < MIN_MTU {
            return Err(format!(
                "the MTU (mtu) must be 0 (no limit) or at least {MIN_MTU} bytes, not {}",
                self.mtu
            ));
        }
        Ok(())
    }
}

impl LinkSettings {
    /// Checks both directions.
    pub fn validate(&self) -> Result<(), String> {
        self.c2t
            .validate()
            .map_err(|e| format!("client→target: {e}"))?;
        self.t2c
            .validate()
            .map_err(|e| format!("target→client: {e}"))
    }

    /// The same impairments both ways.
    pub fn symmetric(impairments: Impairments) -> Self {
        LinkSettings {
            c2t: impairments,
            t2c: impairments,
            seed: 0,
        }
    }
}

pub use crate::ids::LinkId;

/// Which way a datagram crosses a link.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum LinkDir {
    /// From a client (whoever sent to the listen address) to the target.
    C2t,
    /// From the target back to the client.
    T2c,
}

/// Why a link dropped a datagram.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum DropReason {
    /// Independent random loss (or Gilbert-Elliott loss in the good state).
    RandomLoss,
    /// Gilbert-Elliott loss in the bad state: part of a burst.
    BurstLoss,
    /// The bottleneck queue was full (tail drop), or the link already held as many
    /// bytes as it may (`--max-link-bytes`: delay line, queue and held-back datagrams
    /// together).
    QueueFull,
    /// Larger than the MTU.
    Mtu,
    /// A reply from the target arrived before any client had sent anything, so there
    /// is nobody to send it to.
    NoClient,
    /// The datagram came from the link's own upstream address: forwarding it would
    /// send it round the same link again.
    Loop,
    /// The session's links together already forwarded as many datagrams as they may
    /// this second (`--max-forwarded-per-sec`).
    RateLimit,
    /// A datagram reached the link's upstream socket from someone other than its
    /// target: the link relays only its target's replies.
    NotFromTarget,
    /// The link had forwarded it, but the OS refused to send it on (for example a
    /// datagram too large for the target's address family, or a full send buffer).
    /// This is a second `link_packet` for the same datagram (same `dir` and `seq`),
    /// logged when the send failed; `error` says what the OS said.
    SendFailed,
}

impl DropReason {
    /// The reason in plain words.
    pub fn describe(self) -> &'static str {
        match self {
            DropReason::RandomLoss => "random loss",
            DropReason::BurstLoss => "burst loss",
            DropReason::QueueFull => "queue full",
            DropReason::Mtu => "larger than the MTU",
            DropReason::NoClient => "no client to reply to",
            DropReason::Loop => "came from the link itself (a loop)",
            DropReason::RateLimit => "over the session's forwarding limit",
            DropReason::NotFromTarget => "came from someone other than the link's target",
            DropReason::SendFailed => "the link could not send it on (the OS refused)",
        }
    }
}

/// What a link decided for one datagram.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum LinkFate {
    /// It was (or will be) sent on.
    Forwarded,
    /// It will never leave the link.
    Dropped,
}

/// Running totals of one direction of a link.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[serde(default)]
pub struct LinkCounters {
    /// Datagrams that arrived.
    pub arrived: u64,
    /// Datagrams forwarded (once each, however many copies).
    pub forwarded: u64,
    /// Dropped by random loss.
    pub dropped_random: u64,
    /// Dropped by burst loss.
    pub dropped_burst: u64,
    /// Dropped because the queue was full.
    pub dropped_queue: u64,
    /// Dropped for exceeding the MTU.
    pub dropped_mtu: u64,
    /// Dropped because no client was known (target → client only).
    pub dropped_no_client: u64,
    /// Dropped because they came from the link's own upstream address (a loop).
    pub dropped_loop: u64,
    /// Dropped over the session's forwarding limit (`--max-forwarded-per-sec`).
    pub dropped_rate_limit: u64,
    /// Dropped because they came from someone other than the target (target → client
    /// only).
    pub dropped_not_from_target: u64,
    /// Forwarded, but the OS refused to send them on.
    pub send_failed: u64,
    /// Left the link more than a millisecond after their planned departure (the
    /// machine was busy): what a receiver measures is then more than the plan.
    pub departed_late: u64,
    /// The latest any datagram left after its planned departure, nanoseconds.
    pub late_max_ns: u64,
    /// Extra copies sent.
    pub duplicated: u64,
    /// Datagrams with one byte changed.
    pub corrupted: u64,
    /// Datagrams held back to be overtaken.
    pub reordered: u64,
    /// Datagrams cut to the MTU.
    pub truncated: u64,
    /// Datagrams at the bottleneck right now.
    pub queue_depth: u64,
    /// Datagrams held back right now.
    pub held: u64,
}

/// A named set of impairments a person recognises.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Preset {
    /// Short name, also its key.
    pub name: &'static str,
    /// What it imitates.
    pub description: &'static str,
    /// The impairments, applied in both directions.
    pub impairments: Impairments,
}

/// The presets offered in the page.
pub fn presets() -> Vec<Preset> {
    let base = Impairments::default();
    vec![
        Preset {
            name: "perfect",
            description: "no impairment: a straight relay",
            impairments: base,
        },
        Preset {
            name: "wifi",
            description: "home Wi-Fi: 5 ms ± 3 ms, 1 % loss",
            impairments: Impairments {
                delay_ms: 5.0,
                jitter_ms: 3.0,
                loss: Loss::Random { pct: 1.0 },
                ..base
            },
        },
        Preset {
            name: "4g",
            description: "mobile 4G: 40 ms ± 10 ms (normal), 0.5 % loss, 20 Mbit/s",
            impairments: Impairments {
                delay_ms: 40.0,
                jitter_ms: 10.0,
                jitter_dist: JitterDist::Normal,
                loss: Loss::Random { pct: 0.5 },
                rate_bps: 20_000_000,
                ..base
            },
        },
        Preset {
            name: "congested",
            description: "a congested path: 1 Mbit/s bottleneck, 50-packet queue, 30 ms, bursty loss",
            impairments: Impairments {
                delay_ms: 30.0,
                jitter_ms: 15.0,
                rate_bps: 1_000_000,
                queue_packets: 50,
                loss: Loss::GilbertElliott {
                    p_pct: 2.0,
                    r_pct: 25.0,
                    loss_good_pct: 0.0,
                    loss_bad_pct: 100.0,
                },
                ..base
            },
        },
        Preset {
            name: "satellite",
            description: "geostationary satellite: 300 ms one way ± 20 ms, 1 % loss, 10 Mbit/s",
            impairments: Impairments {
                delay_ms: 300.0,
                jitter_ms: 20.0,
                loss: Loss::Random { pct: 1.0 },
                rate_bps: 10_000_000,
                ..base
            },
        },
        Preset {
            name: "very lossy",
            description: "a bad link: 30 % loss, 5 % reordered, 2 % duplicated",
            impairments: Impairments {
                loss: Loss::Random { pct: 30.0 },
                reorder_pct: 5.0,
                reorder_gap: 2,
                duplicate_pct: 2.0,
                delay_ms: 10.0,
                ..base
            },
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_form_and_defaults() {
        let json = r#"{"c2t":{"loss":{"model":"random","pct":5.0},"delay_ms":20.0},"seed":7}"#;
        let settings: LinkSettings = serde_json::from_str(json).unwrap();
        assert_eq!(settings.c2t.loss, Loss::Random { pct: 5.0 });
        assert_eq!(settings.c2t.delay_ms, 20.0);
        assert_eq!(
            settings.c2t.queue_packets, 1000,
            "unnamed fields take defaults"
        );
        assert_eq!(settings.t2c, Impairments::default());
        assert_eq!(settings.seed, 7);
        let ge = Loss::GilbertElliott {
            p_pct: 1.0,
            r_pct: 20.0,
            loss_good_pct: 0.0,
            loss_bad_pct: 100.0,
        };
        assert_eq!(
            serde_json::to_string(&ge).unwrap(),
            r#"{"model":"gilbert_elliott","p_pct":1.0,"r_pct":20.0,"loss_good_pct":0.0,"loss_bad_pct":100.0}"#
        );
        assert_eq!(
            serde_json::to_string(&Loss::None).unwrap(),
            r#"{"model":"none"}"#
        );
    }

    #[test]
    fn validation_names_the_field() {
        let base = Impairments::default();
        let cases = [
            (
                Impairments {
                    loss: Loss::Random { pct: 101.0 },
                    ..base
                },
                "loss pct",
            ),
            (
                Impairments {
                    delay_ms: -1.0,
                    ..base
                },
                "delay_ms",
            ),
            (
                Impairments {
                    jitter_ms: f64::NAN,
                    ..base
                },
                "jitter_ms",
            ),
            (
                Impairments {
                    reorder_gap: 0,
                    ..base
                },
                "reorder_gap",
            ),
            (Impairments { mtu: 20, ..base }, "mtu"),
            (
                Impairments {
                    duplicate_pct: 200.0,
                    ..base
                },
                "duplicate_pct",
            ),
        ];
        for (imp, field) in cases {
            let err = LinkSettings {
                c2t: imp,
                ..LinkSettings::default()
            }
            .validate()
            .unwrap_err();
            assert!(
                err.starts_with("client→target: ") && err.contains(field),
                "{err}"
            );
        }
        for preset in presets() {
            preset.impairments.validate().unwrap();
        }
    }
}

/// What a TCP link does to the bytes crossing it in one direction.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Default)]
#[serde(default)]
pub struct TcpImpairments {
    /// Delay added to every chunk of bytes, ms (0 to 60,000).
    pub latency_ms: f64,
    /// Variation of that delay (uniform, ± this), ms; the stream stays in order.
    pub jitter_ms: f64,
    /// Bandwidth in bits/s (0: unlimited).
    pub rate_bps: u64,
    /// Cut every chunk into pieces of at most this many bytes, each written on its own
    /// (0: no slicing), to show a reader that a stream has no boundaries.
    pub slice_bytes: u32,
    /// The pause between two pieces, ms (0 to 1,000).
    pub slice_delay_ms: f64,
}

/// What a TCP link does: per direction, and to the connection as a whole.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Default)]
#[serde(default)]
pub struct TcpLinkSettings {
    /// Client to target.
    pub c2t: TcpImpairments,
    /// Target to client.
    pub t2c: TcpImpairments,
    /// How long the end of a stream (a FIN) is held before it is passed on, ms (0 to
    /// 60,000).
    pub close_delay_ms: f64,
    /// Reset both ends of a connection (RST) once this many bytes crossed it, both
    /// directions together (0: never).
    pub reset_after_bytes: u64,
    /// The seed of the jitter's random numbers (the same seed, the same delays).
    pub seed: u64,
}

impl TcpLinkSettings {
    /// What is wrong with these settings, in words, if anything.
    pub fn problem(&self) -> Option<String> {
        for (dir, i) in [("c2t", &self.c2t), ("t2c", &self.t2c)] {
            let ms = [
                ("latency_ms", i.latency_ms, 60_000.0),
                ("jitter_ms", i.jitter_ms, 60_000.0),
                ("slice_delay_ms", i.slice_delay_ms, 1_000.0),
            ];
            for (name, v, max) in ms {
                if !(0.0..=max).contains(&v) {
                    return Some(format!("{dir}.{name} is {v}; give 0 to {max}"));
                }
            }
        }
        if !(0.0..=60_000.0).contains(&self.close_delay_ms) {
            return Some(format!(
                "close_delay_ms is {}; give 0 to 60000",
                self.close_delay_ms
            ));
        }
        None
    }
}

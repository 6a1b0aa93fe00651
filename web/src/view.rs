//! The timeline's view: which time window is on screen, and what a person's wheel,
//! keys, drags and buttons do to it. Pure: every change is an [`ViewAction`] applied to
//! a [`View`], so unit tests check it without a browser, and the component only turns
//! input events into actions.

/// The closest zoom: 1 µs per pixel.
pub const MIN_NS_PER_PX: f64 = 1_000.0;
/// The farthest zoom: 10 s per pixel.
pub const MAX_NS_PER_PX: f64 = 10_000_000_000.0;
/// Zoom step per wheel notch, key press or button.
pub const ZOOM_STEP: f64 = 1.25;
/// Pixels the arrow keys pan.
const KEY_PAN_PX: f64 = 40.0;
/// How much of the window Page Up and Page Down pan.
const PAGE: f64 = 0.8;
/// A wheel's pixels to panned pixels.
const WHEEL_PAN: f64 = 0.5;
/// What part of the window's height stays empty above and below a fitted run.
const FIT_MARGIN: f64 = 0.04;

/// The time window on screen: the time at the top edge and the scale.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct View {
    /// Time at the top edge, ns.
    pub t_top: f64,
    /// Nanoseconds per pixel.
    pub ns_per_px: f64,
    /// Keep the newest events in view.
    pub follow: bool,
}

impl Default for View {
    fn default() -> Self {
        View {
            t_top: 0.0,
            ns_per_px: 100_000.0,
            follow: true,
        }
    }
}

/// Something a person did to the view.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ViewAction {
    /// Zoom by `factor` (> 1 zooms out), keeping the time under `anchor_y` in place.
    /// Zooming pauses following: what is being studied must stay where it is, not run
    /// off with the newest datagrams.
    Zoom {
        /// The factor.
        factor: f64,
        /// The pixel row that stays put.
        anchor_y: f64,
    },
    /// Move the window by this many pixels (positive: later); stops following.
    Pan(f64),
    /// Follow the newest events, or stop.
    Follow(bool),
    /// Switch following on or off.
    ToggleFollow,
    /// Show the times `from` to `to` (ns) whole in a window `height` pixels tall
    /// (fit the whole run); stops following.
    Fit {
        /// The first time to show.
        from: u64,
        /// The last.
        to: u64,
        /// The window's height.
        height: f64,
    },
    /// Put time `t` (ns) in the middle of a window `height` pixels tall, at the same
    /// scale (go to a time, to the next loss); stops following.
    Center {
        /// The time.
        t: u64,
        /// The window's height.
        height: f64,
    },
}

impl ViewAction {
    /// What a key does, in a window `height` pixels tall; `None`: nothing.
    pub fn from_key(key: &str, height: f64) -> Option<ViewAction> {
        let middle = height / 2.0;
        Some(match key {
            "+" | "=" => ViewAction::Zoom {
                factor: 1.0 / ZOOM_STEP,
                anchor_y: middle,
            },
            "-" | "_" => ViewAction::Zoom {
                factor: ZOOM_STEP,
                anchor_y: middle,
            },
            "ArrowDown" => ViewAction::Pan(KEY_PAN_PX),
            "ArrowUp" => ViewAction::Pan(-KEY_PAN_PX),
            "PageDown" => ViewAction::Pan(height * PAGE),
            "PageUp" => ViewAction::Pan(-height * PAGE),
            "f" | "End" => ViewAction::Follow(true),
            " " => ViewAction::ToggleFollow,
            _ => return None,
        })
    }

    /// What the wheel does: with Ctrl (or Alt, or Cmd) it zooms at the pointer,
    /// otherwise it pans.
    pub fn from_wheel(delta_y: f64, zoom: bool, pointer_y: f64) -> ViewAction {
        if zoom {
            ViewAction::Zoom {
                factor: if delta_y > 0.0 {
                    ZOOM_STEP
                } else {
                    1.0 / ZOOM_STEP
                },
                anchor_y: pointer_y,
            }
        } else {
            ViewAction::Pan(delta_y * WHEEL_PAN)
        }
    }
}

impl View {
    /// The y coordinate of time `t`.
    pub fn y(&self, t: u64) -> f64 {
        (t as f64 - self.t_top) / self.ns_per_px
    }

    /// The time at y coordinate `y`.
    pub fn t(&self, y: f64) -> f64 {
        self.t_top + y * self.ns_per_px
    }

    /// The view after `action`.
    pub fn apply(mut self, action: ViewAction) -> View {
        match action {
            ViewAction::Zoom { factor, anchor_y } => {
                let anchor = self.t(anchor_y);
                self.ns_per_px = (self.ns_per_px * factor).clamp(MIN_NS_PER_PX, MAX_NS_PER_PX);
                self.t_top = anchor - anchor_y * self.ns_per_px;
                self.follow = false;
            }
            ViewAction::Pan(dy) => {
                self.t_top = (self.t_top + dy * self.ns_per_px).max(-self.ns_per_px * 20.0);
                self.follow = false;
            }
            ViewAction::Follow(on) => self.follow = on,
            ViewAction::ToggleFollow => self.follow = !self.follow,
            ViewAction::Fit { from, to, height } => {
                // A margin of FIT_MARGIN of the height above and below.
                let usable = (height * (1.0 - 2.0 * FIT_MARGIN)).max(1.0);
                let span = to.saturating_sub(from) as f64;
                self.ns_per_px = (span / usable).clamp(MIN_NS_PER_PX, MAX_NS_PER_PX);
                let middle = from as f64 + span / 2.0;
                self.t_top = middle - height / 2.0 * self.ns_per_px;
                self.follow = false;
            }
            ViewAction::Center { t, height } => {
                self.t_top = t as f64 - height / 2.0 * self.ns_per_px;
                self.follow = false;
            }
        }
        self
    }

    /// The view as drawn: while following, with `latest` near the bottom of a
    /// `height`-pixel window.
    pub fn followed(mut self, latest: u64, height: f64) -> View {
        if self.follow {
            self.t_top =
                (latest as f64 - (height - 30.0) * self.ns_per_px).max(-self.ns_per_px * 20.0);
        }
        self
    }
}

/// Distance in pixels from point (px, py) to the segment (x0, y0)–(x1, y1).
pub fn distance_to_segment(px: f64, py: f64, x0: f64, y0: f64, x1: f64, y1: f64) -> f64 {
    let (dx, dy) = (x1 - x0, y1 - y0);
    let len2 = dx * dx + dy * dy;
    let t = if len2 == 0.0 {
        0.0
    } else {
        (((px - x0) * dx + (py - y0) * dy) / len2).clamp(0.0, 1.0)
    };
    let (cx, cy) = (x0 + t * dx, y0 + t * dy);
    ((px - cx).powi(2) + (py - cy).powi(2)).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-6 * a.abs().max(b.abs()).max(1.0)
    }

    #[test]
    fn zoom_keeps_the_anchor_in_place_and_stays_within_limits() {
        let v = View {
            t_top: 1_000_000.0,
            ns_per_px: 10_000.0,
            follow: false,
        };
        let at_200 = v.t(200.0);
        let zoomed = v.apply(ViewAction::Zoom {
            factor: 0.5,
            anchor_y: 200.0,
        });
        assert!(close(zoomed.t(200.0), at_200));
        assert_eq!(zoomed.ns_per_px, 5_000.0);
        assert!(!zoomed.follow, "zooming does not start following");
        let following = View::default().followed(10_000_000_000, 400.0);
        let at_200 = following.t(200.0);
        let zoomed = following.apply(ViewAction::Zoom {
            factor: 2.0,
            anchor_y: 200.0,
        });
        assert!(!zoomed.follow, "it pauses following");
        assert!(
            close(zoomed.followed(20_000_000_000, 400.0).t(200.0), at_200),
            "so newer datagrams do not move what is under the anchor"
        );
        let far = (0..200).fold(v, |v, _| {
            v.apply(ViewAction::Zoom {
                factor: ZOOM_STEP,
                anchor_y: 0.0,
            })
        });
        assert_eq!(far.ns_per_px, MAX_NS_PER_PX);
        let near = (0..200).fold(v, |v, _| {
            v.apply(ViewAction::Zoom {
                factor: 1.0 / ZOOM_STEP,
                anchor_y: 0.0,
            })
        });
        assert_eq!(near.ns_per_px, MIN_NS_PER_PX);
    }

    #[test]
    fn panning_stops_following_and_never_goes_far_before_the_start() {
        let v = View::default().apply(ViewAction::Pan(100.0));
        assert!(!v.follow);
        assert_eq!(v.t_top, 100.0 * 100_000.0);
        let back = v.apply(ViewAction::Pan(-1e9));
        assert_eq!(back.t_top, -20.0 * back.ns_per_px);
        let resumed = back.apply(ViewAction::ToggleFollow);
        assert!(resumed.follow);
        assert!(!resumed.apply(ViewAction::ToggleFollow).follow);
        assert!(back.apply(ViewAction::Follow(true)).follow);
    }

    #[test]
    fn following_puts_the_newest_event_near_the_bottom() {
        let latest = 50_000_000;
        let v = View::default().followed(latest, 430.0);
        assert!(close(v.y(latest), 400.0));
        let paused = View {
            follow: false,
            ..View::default()
        };
        assert_eq!(paused.followed(latest, 430.0), paused);
    }

    #[test]
    fn keys_and_the_wheel_become_actions() {
        let cases = [
            (
                "+",
                Some(ViewAction::Zoom {
                    factor: 1.0 / ZOOM_STEP,
                    anchor_y: 200.0,
                }),
            ),
            (
                "-",
                Some(ViewAction::Zoom {
                    factor: ZOOM_STEP,
                    anchor_y: 200.0,
                }),
            ),
            ("ArrowDown", Some(ViewAction::Pan(40.0))),
            ("PageUp", Some(ViewAction::Pan(-320.0))),
            ("f", Some(ViewAction::Follow(true))),
            (" ", Some(ViewAction::ToggleFollow)),
            ("x", None),
        ];
        for (key, action) in cases {
            assert_eq!(ViewAction::from_key(key, 400.0), action, "{key:?}");
        }
        assert_eq!(
            ViewAction::from_wheel(120.0, true, 33.0),
            ViewAction::Zoom {
                factor: ZOOM_STEP,
                anchor_y: 33.0
            }
        );
        assert_eq!(
            ViewAction::from_wheel(-120.0, false, 33.0),
            ViewAction::Pan(-60.0)
        );
    }

    #[test]
    fn the_view_zooms_around_the_pointer_and_pans() {
        let v = View {
            t_top: 1_000_000.0,
            ns_per_px: 1_000.0,
            follow: true,
        };
        let before = v.t(200.0);
        let v = v.apply(ViewAction::Zoom {
            factor: 2.0,
            anchor_y: 200.0,
        });
        assert_eq!(v.t(200.0), before);
        assert_eq!(v.ns_per_px, 2_000.0);
        let v = v
            .apply(ViewAction::Follow(true))
            .apply(ViewAction::Pan(10.0));
        assert!(!v.follow);
        assert_eq!(v.y(v.t_top as u64 + 20_000), 10.0);
        let v = v.apply(ViewAction::Zoom {
            factor: 1e-9,
            anchor_y: 0.0,
        });
        assert_eq!(v.ns_per_px, MIN_NS_PER_PX);
    }

    #[test]
    fn hit_testing_finds_the_nearest_segment() {
        assert_eq!(distance_to_segment(5.0, 5.0, 0.0, 0.0, 10.0, 0.0), 5.0);
        assert_eq!(distance_to_segment(-3.0, 4.0, 0.0, 0.0, 10.0, 0.0), 5.0);
        assert_eq!(distance_to_segment(1.0, 1.0, 1.0, 1.0, 1.0, 1.0), 0.0);
    }

    #[test]
    fn distance_to_a_segment() {
        assert_eq!(distance_to_segment(0.0, 5.0, 0.0, 0.0, 10.0, 0.0), 5.0);
        assert_eq!(distance_to_segment(13.0, 4.0, 0.0, 0.0, 10.0, 0.0), 5.0);
        assert_eq!(distance_to_segment(3.0, 4.0, 0.0, 0.0, 0.0, 0.0), 5.0);
    }

    #[test]
    fn fitting_shows_the_whole_run_and_centering_keeps_the_scale() {
        let v = View::default();
        // Ten seconds in a window of 500 px.
        let fit = v.apply(ViewAction::Fit {
            from: 2_000_000_000,
            to: 12_000_000_000,
            height: 500.0,
        });
        assert!(!fit.follow);
        assert!(fit.y(2_000_000_000) >= 0.0 && fit.y(2_000_000_000) < 30.0);
        assert!(fit.y(12_000_000_000) <= 500.0 && fit.y(12_000_000_000) > 470.0);
        assert!(
            close(fit.y(7_000_000_000), 250.0),
            "the run's middle in the middle"
        );
        // A single instant fits at the closest zoom.
        let one = v.apply(ViewAction::Fit {
            from: 5,
            to: 5,
            height: 500.0,
        });
        assert_eq!(one.ns_per_px, MIN_NS_PER_PX);
        assert!(close(one.y(5), 250.0));
        let centered = fit.apply(ViewAction::Center {
            t: 3_000_000_000,
            height: 500.0,
        });
        assert_eq!(centered.ns_per_px, fit.ns_per_px);
        assert!(close(centered.y(3_000_000_000), 250.0));
        assert!(
            !View::default()
                .apply(ViewAction::Center { t: 0, height: 1.0 })
                .follow
        );
    }
}

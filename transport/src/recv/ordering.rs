//! Frame order: where a frame sits among those in flight, sessions, gaps, giving up
//! the oldest, and handing frames out in number order (rules 1-3 of the module above).

use std::net::SocketAddr;
use std::time::Instant;

use media::EncodedFrame;

use super::reassembly::Partial;
use super::{Queued, ReceivedFrame, Receiver, Session};
use crate::{seq, wire};

impl Receiver {
    pub(super) fn find(&self, frame: u32) -> Result<usize, usize> {
        self.partials.binary_search_by(|p| {
            if p.number == frame {
                std::cmp::Ordering::Equal
            } else if seq::after(frame, p.number) {
                std::cmp::Ordering::Less
            } else {
                std::cmp::Ordering::Greater
            }
        })
    }

    /// Whether a packet of session `id` from `from` belongs to the session followed; a
    /// new one is adopted when the old is idle or comes from the same host or, with
    /// encryption, at once: it proved it holds the paired key.
    pub(super) fn accept_session(
        &mut self,
        now: Instant,
        from: Option<SocketAddr>,
        id: u32,
        authenticated: bool,
    ) -> bool {
        if let Some(s) = &mut self.session {
            if s.id == id {
                s.last_heard = now;
                s.peer = from.or(s.peer);
                return true;
            }
            if self.retired == Some(id) {
                return false;
            }
            let idle = authenticated
                || now.saturating_duration_since(s.last_heard) >= self.config.session_idle;
            // A sender restarted on the same host comes back with a new id at once.
            let same_host = matches!((s.peer, from), (Some(a), Some(b)) if a.ip() == b.ip());
            if !idle && !same_host {
                return false;
            }
            self.retired = Some(s.id);
        }
        self.session = Some(Session {
            id,
            peer: from,
            last_heard: now,
        });
        self.partials.clear();
        self.last_emitted = None;
        self.last_shown = None;
        self.waiting_keyframe = true;
        self.last_request = None;
        self.highest_seen = None;
        self.feedback.reset(now);
        self.tracker.reset();
        self.stats.sessions += 1;
        true
    }

    /// Moves the emission point to `number`, counting frame numbers skipped as lost.
    pub(super) fn advance_to(&mut self, number: u32) {
        if let Some(last) = self.last_emitted {
            let skipped = seq::distance(number, last) - 1;
            if skipped > 0 {
                self.stats.dropped.lost += skipped as u64;
                self.enter_gap();
            }
        }
        self.last_emitted = Some(number);
    }

    pub(super) fn enter_gap(&mut self) {
        self.waiting_keyframe = true;
    }

    pub(super) fn give_up_oldest(&mut self, now: Instant) {
        let mut oldest = self.partials.remove(0);
        if oldest.is_complete() {
            self.emit_or_drop(now, &mut oldest);
        } else {
            self.stats.dropped.evicted += 1;
            self.advance_to(oldest.number);
            self.enter_gap();
            self.maybe_request_keyframe(now);
        }
    }

    pub(super) fn emit_or_drop(&mut self, now: Instant, partial: &mut Partial) {
        self.advance_to(partial.number);
        if self.waiting_keyframe && !partial.keyframe {
            self.stats.dropped.undecodable += 1;
            self.maybe_request_keyframe(now);
            return;
        }
        if partial.keyframe {
            self.waiting_keyframe = false;
        }
        let session = self.session.as_ref().map_or(0, |s| s.id);
        self.last_shown = Some(partial.number);
        self.ready.push_back(ReceivedFrame {
            number: partial.number,
            session,
            frame: EncodedFrame {
                data: partial.assemble(),
                capture_us: partial.capture_us,
                keyframe: partial.keyframe,
            },
            arrived: partial.completed_at.unwrap_or(now),
        });
        if self.ready.len() > self.config.max_in_flight {
            // Nobody is draining: drop the oldest and start over from a keyframe.
            self.ready.pop_front();
            self.stats.dropped.queue_full += 1;
            self.request_keyframe(now);
        }
    }

    pub(super) fn emit_ready(&mut self, now: Instant) {
        // While waiting for a keyframe, a complete keyframe anywhere ends the wait: jump
        // straight to it rather than wait out older frames that cannot be decoded.
        if self.waiting_keyframe {
            if let Some(pos) = self
                .partials
                .iter()
                .position(|p| p.keyframe && p.is_complete())
            {
                for older in self.partials.drain(..pos).collect::<Vec<_>>() {
                    if older.is_complete() {
                        self.stats.dropped.undecodable += 1;
                    } else {
                        self.stats.dropped.incomplete += 1;
                    }
                    self.advance_to(older.number);
                }
            }
        }
        while let Some(first) = self.partials.first() {
            let gap = self
                .last_emitted
                .map_or(0, |last| seq::distance(first.number, last) - 1);
            if let Some(done) = first.completed_at {
                let may_wait = gap > 0 && !self.waiting_keyframe;
                if may_wait && now < done + self.grace() {
                    break;
                }
                let mut first = self.partials.remove(0);
                self.emit_or_drop(now, &mut first);
            } else if (self.waiting_keyframe && !first.keyframe) || now >= first.deadline {
                // Undecodable anyway, or out of time: give it up now.
                let first = self.partials.remove(0);
                if now >= first.deadline {
                    self.stats.dropped.incomplete += 1;
                } else {
                    self.stats.dropped.undecodable += 1;
                }
                self.advance_to(first.number);
                self.enter_gap();
                self.maybe_request_keyframe(now);
            } else {
                break;
            }
        }
    }

    pub(super) fn maybe_request_keyframe(&mut self, now: Instant) {
        let Some(session) = &self.session else { return };
        if self
            .last_request
            .is_some_and(|at| now < at + self.config.keyframe_retry)
        {
            return;
        }
        let mut payload = Vec::with_capacity(wire::KEYFRAME_REQUEST_LEN);
        wire::write_keyframe_request(&mut payload, session.id, self.highest_seen);
        self.transmits.push_back(Queued {
            to: session.peer,
            payload,
        });
        self.last_request = Some(now);
        self.stats.keyframe_requests += 1;
    }
}

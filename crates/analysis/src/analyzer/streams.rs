//! TCP connections as flows: a stream has no datagrams to match, so its figures are
//! bytes. Each write is followed until the read that returns its last byte; the time
//! between the write and that read's kernel arrival stamp is its latency.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;

use socklab_protocol::Endpoint;

use socklab_protocol::flow::LATENCY_CDF_QUANTILES;

use super::input::FlowKey;
use crate::Nanos;
use crate::stats::{FlowStats, Histogram, Method};

/// One direction of a TCP connection: the writer's address to the reader's.
#[derive(Debug, Default)]
struct StreamFlow {
    /// Bytes written (by a lab socket; 0 when the writer is outside the lab).
    written: u64,
    /// Bytes read.
    read: u64,
    /// Write calls.
    writes: u64,
    /// Read calls.
    reads: u64,
    /// Writes not read to their end yet: where each ends in the stream, and when it
    /// was written.
    unread: VecDeque<(u64, Nanos)>,
    /// Write to arrival of its last byte, per write.
    latencies: Histogram,
    /// The last time anything happened.
    last_ns: Nanos,
}

/// Every TCP connection direction the session's lab sockets wrote or read, bounded.
#[derive(Debug)]
pub(super) struct StreamFlows {
    flows: BTreeMap<FlowKey, StreamFlow>,
    /// The most connection directions kept; beyond, the one idle longest is retired.
    max_flows: usize,
    /// The most unread writes followed per direction; beyond, the oldest is forgotten.
    max_unread: usize,
    /// Directions retired to make room.
    pub(super) retired: u64,
}

impl StreamFlows {
    pub(super) fn new(max_flows: usize, max_unread: usize) -> Self {
        StreamFlows {
            flows: BTreeMap::new(),
            max_flows: max_flows.max(1),
            max_unread: max_unread.max(1),
            retired: 0,
        }
    }

    fn flow(&mut self, key: FlowKey) -> &mut StreamFlow {
        if !self.flows.contains_key(&key) && self.flows.len() >= self.max_flows {
            let idle = self
                .flows
                .iter()
                .min_by_key(|(_, f)| f.last_ns)
                .map(|(k, _)| k.clone());
            if let Some(idle) = idle {
                self.flows.remove(&idle);
                self.retired += 1;
            }
        }
        self.flows.entry(key).or_default()
    }

    /// A lab socket at `local` wrote `len` bytes at `offset` of its stream to `peer`.
    pub(super) fn wrote(
        &mut self,
        t_ns: Nanos,
        local: SocketAddr,
        peer: SocketAddr,
        offset: u64,
        len: usize,
    ) {
        let max_unread = self.max_unread;
        let flow = self.flow(FlowKey {
            src: Endpoint::Ip(local),
            dst: Endpoint::Ip(peer),
        });
        let end = offset.saturating_add(len as u64);
        flow.written = flow.written.max(end);
        flow.writes += 1;
        flow.last_ns = t_ns;
        if flow.unread.len() >= max_unread {
            flow.unread.pop_front();
        }
        flow.unread.push_back((end, t_ns));
    }

    /// A lab socket at `local` read `len` bytes at `offset` of the stream from `peer`,
    /// the newest of them arrived at `t_ns`.
    pub(super) fn read(
        &mut self,
        t_ns: Nanos,
        local: SocketAddr,
        peer: SocketAddr,
        offset: u64,
        len: usize,
    ) {
        let flow = self.flow(FlowKey {
            src: Endpoint::Ip(peer),
            dst: Endpoint::Ip(local),
        });
        let end = offset.saturating_add(len as u64);
        flow.read = flow.read.max(end);
        flow.reads += 1;
        flow.last_ns = flow.last_ns.max(t_ns);
        while let Some(&(write_end, written_at)) = flow.unread.front()
            && write_end <= end
        {
            flow.unread.pop_front();
            flow.latencies.add(t_ns.saturating_sub(written_at));
        }
    }

    /// Each direction's figures: `sent` and `received` are bytes written and read,
    /// `in_flight` the bytes written and not read yet.
    pub(super) fn stats(&self, all: &mut Vec<FlowStats>) {
        for (key, f) in &self.flows {
            all.push(FlowStats {
                src: key.src.clone(),
                dst: key.dst.clone(),
                via: None,
                method: Method::Stream,
                seq_flow: None,
                sent: f.written,
                received: f.read,
                lost: 0,
                reordered: 0,
                duplicated: 0,
                in_flight: f.written.saturating_sub(f.read),
                latency: f.latencies.percentiles(),
                latency_cdf: f.latencies.quantiles(&LATENCY_CDF_QUANTILES),
                jitter_ns: None,
                drops: Vec::new(),
            });
        }
    }

    /// Write and read calls of the direction `key`, if it is known.
    pub fn calls(&self, key: &FlowKey) -> Option<(u64, u64)> {
        self.flows.get(key).map(|f| (f.writes, f.reads))
    }
}

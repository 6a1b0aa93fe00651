//! The flow analysis' results as CSV, for people who analyse in a notebook: one row per
//! datagram's fate, one per flow. Fields that could hold a comma or a quote (a Unix
//! path) are quoted as RFC 4180 says.

use std::fmt::Write as _;

use socklab_protocol::flow::{Fate, FlowSummary};

/// The fates, a row each.
pub fn fates_csv(fates: &[Fate]) -> String {
    let mut out = String::from(
        "send,recv,fate,src,dst,latency_ns,reordered_by,late,by_order,by_field,cause,reason,decision,t_ns\n",
    );
    for f in fates {
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            f.send.0,
            opt(f.recv.map(|r| r.0)),
            wire_name(&f.fate),
            field(&f.src.to_string()),
            field(&f.dst.to_string()),
            opt(f.latency_ns),
            opt(f.reordered_by),
            f.late,
            f.by_order,
            f.by_field,
            f.cause.map(|c| wire_name(&c)).unwrap_or_default(),
            f.reason.map(|r| wire_name(&r)).unwrap_or_default(),
            opt(f.decision.map(|d| d.0)),
            f.t_ns,
        );
    }
    out
}

/// The flows' figures, a row each.
pub fn flows_csv(flows: &[FlowSummary]) -> String {
    let mut out = String::from(
        "src,dst,via,method,seq_flow,sent,received,lost,lost_pct,reordered,duplicated,in_flight,latency_min_ns,latency_p50_ns,latency_p99_ns,latency_max_ns,jitter_ns\n",
    );
    for f in flows {
        let latency = f.latency_ns.as_ref();
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            field(&f.src.to_string()),
            field(&f.dst.to_string()),
            f.via.as_ref().map(|v| v.to_string()).unwrap_or_default(),
            wire_name(&f.method),
            opt(f.seq_flow),
            f.sent,
            f.received,
            f.lost,
            f.lost_pct,
            f.reordered,
            f.duplicated,
            f.in_flight,
            opt(latency.map(|l| l.min)),
            opt(latency.map(|l| l.p50)),
            opt(latency.map(|l| l.p99)),
            opt(latency.map(|l| l.max)),
            opt(f.jitter_ns),
        );
    }
    out
}

fn opt<T: std::fmt::Display>(value: Option<T>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}

/// An enum's wire name (`random_loss`), for the exports that write it in text.
pub(crate) fn wire_name(value: &impl serde::Serialize) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// A CSV field: as it is, or quoted (its quotes doubled) when it holds a comma, a quote
/// or a line break.
fn field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_with_a_comma_or_quote_is_quoted() {
        assert_eq!(field("127.0.0.1:5"), "127.0.0.1:5");
        assert_eq!(field("unix:/tmp/a,b"), "\"unix:/tmp/a,b\"");
        assert_eq!(field("unix:/tmp/\"q\""), "\"unix:/tmp/\"\"q\"\"\"");
    }
}

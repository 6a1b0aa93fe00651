//! The command decoder against arbitrary input: it never panics, and what it accepts
//! round-trips.

use proptest::prelude::*;
use socklab_protocol::decode_request;

/// JSON values of any shape, a few levels deep.
fn json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f)
            .map_or(serde_json::Value::Null, serde_json::Value::Number)),
        prop_oneof![
            Just("bind".to_string()),
            Just("send".to_string()),
            Just("udp".to_string()),
            Just("127.0.0.1:0".to_string()),
            ".{0,12}"
        ]
        .prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("type".to_string()),
                    Just("req".to_string()),
                    Just("socket".to_string()),
                    Just("payload".to_string()),
                    Just("text".to_string()),
                    Just("addr".to_string()),
                    "[a-z_]{1,8}"
                ],
                inner,
                0..5
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,200}") {
        let _ = decode_request(&text);
    }

    #[test]
    fn arbitrary_json_is_decoded_or_refused_plainly(value in json()) {
        let text = value.to_string();
        match decode_request(&text) {
            Ok(request) => {
                // What is accepted means the same after a round trip.
                prop_assert_eq!(decode_request(&request.to_json()).ok(), Some(request));
            }
            Err(e) => prop_assert!(!e.message.is_empty()),
        }
    }
}

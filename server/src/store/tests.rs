//! The store's tests: a real SQLite file in a temporary directory.

use super::*;

fn event(id: u64, kind: &str) -> StoredEvent {
    StoredEvent::whole(
        id,
        id * 1000,
        kind.into(),
        format!("{{\"type\":\"{kind}\",\"id\":{id}}}"),
    )
}

#[tokio::test]
async fn a_recording_is_made_appended_listed_renamed_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let id = store
        .create("first".into(), "abc".into(), Some(5))
        .await
        .unwrap();
    assert_eq!(store.epoch_ns(id).await.unwrap(), Some(5));
    store
        .append(
            id,
            vec![
                event(1, "bound"),
                event(2, "datagram"),
                event(3, "datagram"),
            ],
        )
        .await
        .unwrap();
    store.append(id, vec![event(4, "fate")]).await.unwrap();
    assert_eq!(store.finish(id).await.unwrap(), (4, 2));
    let (total, list) = store.list(0, 10).await.unwrap();
    assert_eq!(total, 1);
    assert_eq!(
        (
            list[0].name.as_str(),
            list[0].events,
            list[0].datagrams,
            list[0].duration_ns
        ),
        ("first", 4, 2, 3000)
    );
    assert!(list[0].stopped_ms.is_some());
    let after_two: Vec<u64> = store
        .events(id, 2, 10)
        .await
        .unwrap()
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(after_two, [3, 4]);
    assert!(store.rename(id, "second".into()).await.unwrap());
    assert_eq!(store.get(id).await.unwrap().unwrap().name, "second");
    assert!(store.delete(id).await.unwrap());
    assert!(!store.delete(id).await.unwrap());
    assert_eq!(store.list(0, 10).await.unwrap().0, 0);
    assert!(store.events(id, 0, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_store_reopens_at_its_version_and_refuses_a_newer_one() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        store.create("kept".into(), "s".into(), None).await.unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(
        store.list(0, 10).await.unwrap().0,
        1,
        "what was stored is still there"
    );
    drop(store);
    let conn = Connection::open(dir.path().join(FILE)).unwrap();
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let err = Store::open(dir.path()).unwrap_err();
    assert!(err.contains("newer than this socklab knows"), "{err}");
}

const OLD_DATAGRAM: &str = r#"{"type":"datagram","id":7,"socket":"s1","dir":"in","local":"127.0.0.1:1","peer":"127.0.0.1:2","len":2,"payload_b64":"aGk=","t_ns":70}"#;

/// An event written with its bytes apart reads back whole, as a viewer got it;
/// the bytes are stored as they are, not as base64.
#[tokio::test]
async fn bytes_kept_apart_come_back_in_the_json() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let id = store.create("r".into(), "s".into(), None).await.unwrap();
    let apart = StoredEvent {
        id: 7,
        t_ns: 70,
        kind: "datagram".into(),
        json: OLD_DATAGRAM.replace("aGk=", ""),
        payload: Some(b"hi".to_vec()),
    };
    store.append(id, vec![apart]).await.unwrap();
    let events = store.events(id, 0, 10).await.unwrap();
    assert_eq!(events[0].json, OLD_DATAGRAM);
    assert_eq!(events[0].payload, None);
    let data: Vec<u8> = store
        .call(|conn| conn.query_row("SELECT data FROM chunks", [], |r| r.get(0)))
        .await
        .unwrap();
    assert!(data.ends_with(b"\x02\0\0\0hi"), "as they are: {data:?}");
    assert!(!data.windows(4).any(|w| w == b"aGk="), "not as base64");
    let kind = store.events_of_kind(id, "datagram", 0, 10).await.unwrap();
    assert_eq!(kind, events);
}

/// Events across many chunks come back in pages that start anywhere; an id
/// stored twice keeps its first event.
#[tokio::test]
async fn events_across_chunks_page_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let id = store.create("r".into(), "s".into(), None).await.unwrap();
    let kinds = ["datagram", "fate", "datagram"];
    for batch in 0..5u64 {
        let events = (1..=1000)
            .map(|n| batch * 1000 + n)
            .map(|n| event(n, kinds[n as usize % 3]))
            .collect();
        store.append(id, events).await.unwrap();
    }
    // Ids stored already (and one repeated within the batch) are not stored again.
    store
        .append(
            id,
            vec![event(4001, "gap"), event(5001, "fate"), event(5001, "gap")],
        )
        .await
        .unwrap();
    let info = store.get(id).await.unwrap().unwrap();
    assert_eq!(info.events, 5001);
    let mut after = 0;
    let mut seen = Vec::new();
    loop {
        let page = store.events(id, after, 777).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.id;
        seen.extend(page.into_iter().map(|e| e.id));
    }
    assert_eq!(seen, (1..=5001).collect::<Vec<u64>>());
    let fates = store.events_of_kind(id, "fate", 2990, 10).await.unwrap();
    let ids: Vec<u64> = fates.iter().map(|e| e.id).collect();
    assert_eq!(
        ids,
        [2992, 2995, 2998, 3001, 3004, 3007, 3010, 3013, 3016, 3019]
    );
    assert_eq!(
        store.events(id, 5000, 10).await.unwrap(),
        vec![event(5001, "fate")]
    );
    let chunks: i64 = store
        .call(|conn| conn.query_row("SELECT COUNT(*) FROM chunks", [], |r| r.get(0)))
        .await
        .unwrap();
    assert!((5..=11).contains(&chunks), "{chunks} chunks");
}

/// A store made by the first version of the schema is brought up to date and
/// keeps its recordings.
#[tokio::test]
async fn an_older_store_is_migrated() {
    let dir = tempfile::tempdir().unwrap();
    {
        let conn = Connection::open(dir.path().join(FILE)).unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute(
            "INSERT INTO recordings (name, session, created_ms) VALUES ('old', 's', 1)",
            [],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO events (recording, id, t_ns, kind, json) VALUES (1, 7, 70, 'datagram', ?1)",
            params![OLD_DATAGRAM],
        )
        .unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    let (_, list) = store.list(0, 10).await.unwrap();
    assert_eq!(list[0].name, "old");
    let events = store.events(list[0].id, 0, 10).await.unwrap();
    assert_eq!(
        events,
        vec![StoredEvent::whole(
            7,
            70,
            "datagram".into(),
            OLD_DATAGRAM.into()
        )],
        "an event stored with its bytes in its JSON reads back as it was"
    );
    assert_eq!(
        store.epoch_ns(list[0].id).await.unwrap(),
        None,
        "unknown for old ones"
    );
    let version: i64 = store
        .call(|conn| conn.pragma_query_value(None, "user_version", |r| r.get(0)))
        .await
        .unwrap();
    assert_eq!(version, MIGRATIONS.len() as i64);
}

#[tokio::test]
async fn pages_of_thousands_of_recordings_come_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store
        .call(|conn| {
            let tx = conn.transaction()?;
            for i in 0..3000 {
                tx.execute(
                    "INSERT INTO recordings (name, session, created_ms) VALUES (?1, 's', ?2)",
                    params![format!("r{i}"), i],
                )?;
            }
            tx.commit()
        })
        .await
        .unwrap();
    let (total, page) = store.list(100, 50).await.unwrap();
    assert_eq!((total, page.len()), (3000, 50));
    assert_eq!(page[0].name, "r2899");
    assert_eq!(
        store.list(0, 100_000).await.unwrap().1.len(),
        MAX_PAGE as usize
    );
}

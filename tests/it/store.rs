//! The store's contract on whichever backend the run uses (a SQLite file, or PostgreSQL
//! through `HERALD_TEST_DATABASE_URL`): leases taken at once by two handles never share a
//! row, and an owner whose lease was taken over cannot overwrite the new owner's outcome.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::Utc;
use herald::store::Store;
use herald::store::ledger::{Created, NewIssue, Outcome};
use herald::subscribers::{Email, Evidence};

use super::helpers::*;

/// A store with `n` confirmed subscribers of `weekly` and one issue for them.
async fn store_with_issue(p: &Publication, n: usize) -> (Store, i64) {
    let store = Store::open(&p.site().store_location().unwrap())
        .await
        .unwrap();
    let now = Utc::now();
    let ev = Evidence {
        source: "test".into(),
        ip: None,
        user_agent: None,
    };
    for i in 0..n {
        let email = Email::parse(&format!("reader{i}@example.com")).unwrap();
        store
            .add_subscriber(&email, "", &["weekly".to_string()], true, &ev, now)
            .await
            .unwrap();
    }
    let created = store
        .create_issue(
            &NewIssue {
                newsletter: "weekly",
                scheduled: now,
                title: "One",
                articles: &[],
                content: "{}",
                manual: true,
            },
            now,
        )
        .await
        .unwrap();
    let Created::New { id, recipients } = created else {
        panic!("{created:?}")
    };
    assert_eq!(recipients, n as i64);
    (store, id)
}

#[tokio::test]
async fn two_concurrent_leases_never_return_the_same_row() {
    let p = Publication::new();
    let (first, issue) = store_with_issue(&p, 400).await;
    // A second handle: its own connections, as a second instance has.
    let second = Store::open(&p.site().store_location().unwrap())
        .await
        .unwrap();
    let now = Utc::now();
    let lease = Duration::from_secs(300);
    let mut seen = BTreeSet::new();
    let mut rounds = 0;
    loop {
        let (a, b) = tokio::join!(
            first.lease_deliveries("a", 37, now, lease, Some(issue)),
            second.lease_deliveries("b", 37, now, lease, Some(issue)),
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        if a.is_empty() && b.is_empty() {
            break;
        }
        for row in a.iter().chain(&b) {
            assert!(seen.insert(row.id), "row {} leased twice", row.id);
        }
        rounds += 1;
        assert!(rounds < 100, "leasing never ran dry");
    }
    assert_eq!(seen.len(), 400, "every row leased exactly once");
    first.close().await;
    second.close().await;
}

#[tokio::test]
async fn an_owner_whose_lease_was_taken_over_changes_nothing() {
    let p = Publication::new();
    let (store, issue) = store_with_issue(&p, 1).await;
    let t0 = Utc::now();
    let stale = store
        .lease_deliveries("paused", 10, t0, Duration::from_secs(1), Some(issue))
        .await
        .unwrap();
    assert_eq!(stale.len(), 1);
    // The paused owner's lease runs out; it is taken back and leased by another instance.
    let t1 = t0 + chrono::Duration::seconds(5);
    assert_eq!(store.reclaim_leases(&[], t1).await.unwrap(), 1);
    let fresh = store
        .lease_deliveries("fresh", 10, t1, Duration::from_secs(300), Some(issue))
        .await
        .unwrap();
    assert_eq!(fresh.len(), 1);
    assert_eq!(fresh[0].id, stale[0].id);

    // The paused one wakes and reports a failure: nothing changes.
    let failed = Outcome::Failed {
        code: Some(550),
        error: "late".into(),
    };
    store
        .finish_deliveries("paused", &[(stale[0].id, failed)], t1)
        .await
        .unwrap();
    store
        .finish_deliveries("paused", &[(stale[0].id, Outcome::Sent)], t1)
        .await
        .unwrap();
    let rows = store.deliveries(issue).await.unwrap();
    assert_eq!(rows[0].status.to_string(), "sending");
    assert_eq!(rows[0].last_code, None);

    // The owner's own outcome lands.
    store
        .finish_deliveries("fresh", &[(fresh[0].id, Outcome::Sent)], t1)
        .await
        .unwrap();
    let rows = store.deliveries(issue).await.unwrap();
    assert_eq!(rows[0].status.to_string(), "sent");
    assert_eq!(rows[0].last_code, Some(250));
    store.close().await;
}

//! Read-modify-write updates end to end, through both clients: the smart client straight to
//! the shard leader, and the gateway client through the gateway's executor. Each answers
//! what the shard's state machine decided, and a refused update writes nothing.

mod common;

use std::time::Duration;

use kvdb_client::{
    Action, ClientError, ExpireWhen, Expiry, GatewayClient, Kv, OnlyIf, Refusal, UpdateOptions,
};

use common::TestCluster;

/// Every convenience method, and a refusal, on `kv`; keys are prefixed by `p`.
async fn updates_answer_as_the_shard_decides(kv: &impl Kv, p: &str) {
    let key = |name: &str| format!("{p}-{name}").into_bytes();
    // --- counters keep their expiry
    assert_eq!(kv.incr_by(&key("n"), 5).await.unwrap(), 5);
    assert_eq!(kv.incr_by(&key("n"), -7).await.unwrap(), -2);
    let at = kv.get(&key("n")).await.unwrap().unwrap().version;
    assert!(at.0 > 0);
    let far = 4_000_000_000_000;
    assert!(kv.expire_at(&key("n"), far).await.unwrap());
    assert_eq!(kv.incr_by(&key("n"), 1).await.unwrap(), -1);
    let got = kv.get(&key("n")).await.unwrap().unwrap();
    assert_eq!((got.value, got.expires_at_ms), (b"-1".to_vec(), Some(far)));
    assert!(kv.persist(&key("n")).await.unwrap());
    assert!(!kv.persist(&key("n")).await.unwrap());

    // --- strings
    assert_eq!(kv.append(&key("s"), b"ab").await.unwrap(), 2);
    assert_eq!(kv.append(&key("s"), b"cd").await.unwrap(), 4);
    assert_eq!(
        kv.get_set(&key("s"), b"new").await.unwrap(),
        Some(b"abcd".to_vec())
    );
    assert_eq!(kv.get_del(&key("s")).await.unwrap(), Some(b"new".to_vec()));
    assert_eq!(kv.get_del(&key("s")).await.unwrap(), None);

    // --- a refusal writes nothing
    kv.put(&key("t"), b"text").await.unwrap();
    let err = kv.incr_by(&key("t"), 1).await.unwrap_err();
    assert_eq!(err, ClientError::Refused(Refusal::NotInteger));
    assert_eq!(kv.get(&key("t")).await.unwrap().unwrap().value, b"text");

    // --- the general form: SET XX GET, and an expiry in the past deleting the key
    let set = Action::Set {
        value: b"x".to_vec(),
        expiry: Expiry::In(Duration::from_secs(60)),
        only_if: OnlyIf::Exists,
        return_old: true,
    };
    let updated = kv
        .update_with(&key("t"), set, UpdateOptions::default())
        .await
        .unwrap();
    assert_eq!(
        (updated.applied, updated.old),
        (true, Some(b"text".to_vec()))
    );
    let past = Action::Expire {
        expiry: Expiry::At(1),
        when: ExpireWhen::Always,
    };
    let updated = kv
        .update_with(&key("t"), past, UpdateOptions::default())
        .await
        .unwrap();
    assert!(updated.applied);
    assert!(kv.get(&key("t")).await.unwrap().is_none());
    let float = kv
        .update_with(
            &key("f"),
            Action::IncrByFloat(10.5),
            UpdateOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(float.float.as_deref(), Some("10.5"));
    // --- a hash past Redis's small-hash limits: named fields and the count read alone
    let fields: Vec<(Vec<u8>, Vec<u8>)> = (0..600)
        .map(|i| {
            (
                format!("f{i:03}").into_bytes(),
                format!("v{i}").into_bytes(),
            )
        })
        .collect();
    let pairs: Vec<(&[u8], &[u8])> = fields
        .iter()
        .map(|(f, v)| (f.as_slice(), v.as_slice()))
        .collect();
    assert_eq!(kv.hset(&key("h"), &pairs).await.unwrap(), 600);
    assert_eq!(kv.hlen(&key("h")).await.unwrap(), 600);
    assert_eq!(
        kv.hmget(&key("h"), &[b"f007", b"nope", b"f199"])
            .await
            .unwrap(),
        [Some(b"v7".to_vec()), None, Some(b"v199".to_vec())]
    );
    assert_eq!(kv.hdel(&key("h"), &[b"f007"]).await.unwrap(), 1);
    assert_eq!(kv.hlen(&key("h")).await.unwrap(), 599);
    assert_eq!(kv.hgetall(&key("h")).await.unwrap().len(), 599);
    assert_eq!(kv.hlen(&key("none")).await.unwrap(), 0);
    assert_eq!(kv.hmget(&key("none"), &[b"f"]).await.unwrap(), [None]);
    assert!(matches!(
        kv.hlen(&key("f")).await,
        Err(ClientError::Refused(Refusal::WrongType))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_work_through_the_smart_client_and_the_gateway() {
    let test = TestCluster::start(1).await;
    // --- smart client
    let smart = test.cluster.client().await.expect("a smart client");
    updates_answer_as_the_shard_decides(&smart, "smart").await;
    // --- gateway client
    let gateway = test.cluster.gateway_address().expect("a gateway");
    let thin = GatewayClient::connect(&gateway.to_string()).expect("a gateway client");
    updates_answer_as_the_shard_decides(&thin, "gateway").await;
    test.stop().await;
}

use super::*;

fn tokens() -> Tokens {
    Tokens::default()
        .with("cluster-secret", Role::Cluster)
        .unwrap()
        .with_grant("read=r-token")
        .unwrap()
        .with_grant("read-write=rw-token")
        .unwrap()
        .with_grant("admin=admin-token")
        .unwrap()
}

fn bearer(token: &str) -> Vec<u8> {
    format!("Bearer {token}").into_bytes()
}

#[test]
fn every_role_gets_exactly_what_it_needs() {
    let t = tokens();
    let code = |path: &str, token: &str| {
        let header = bearer(token);
        t.check(path, Some(&header)).map_err(|s| s.code())
    };
    use tonic::Code::PermissionDenied as Denied;
    assert_eq!(code("/kvdb.v1.KvNode/Get", "r-token"), Ok(Role::Read));
    assert_eq!(code("/kvdb.v1.KvNode/Put", "r-token"), Err(Denied));
    assert_eq!(
        code("/kvdb.v1.KvGateway/Put", "rw-token"),
        Ok(Role::ReadWrite)
    );
    assert_eq!(
        code("/kvdb.v1.Coordinator/SplitShard", "rw-token"),
        Err(Denied)
    );
    assert_eq!(
        code("/kvdb.v1.Coordinator/SplitShard", "admin-token"),
        Ok(Role::Admin)
    );
    assert_eq!(
        code("/kvdb.v1.Coordinator/RegisterNode", "admin-token"),
        Err(Denied)
    );
    assert_eq!(
        code("/kvdb.v1.RaftTransport/Vote", "admin-token"),
        Err(Denied)
    );
    assert_eq!(
        code("/kvdb.v1.RaftTransport/Vote", "cluster-secret"),
        Ok(Role::Cluster)
    );
    assert_eq!(
        code("/kvdb.v1.Coordinator/WatchShardMap", "r-token"),
        Ok(Role::Read)
    );
}

#[test]
fn unknown_tokens_and_methods_are_refused_and_health_stays_open() {
    let t = tokens();
    let unauthenticated = |path: &str, header: Option<&[u8]>| {
        t.check(path, header).unwrap_err().code() == tonic::Code::Unauthenticated
    };
    assert!(unauthenticated("/kvdb.v1.KvNode/Get", None));
    assert!(unauthenticated(
        "/kvdb.v1.KvNode/Get",
        Some(&bearer("r-tokeN"))
    ));
    assert!(unauthenticated(
        "/kvdb.v1.KvNode/Get",
        Some(b"Basic r-token")
    ));
    assert!(unauthenticated(
        "/kvdb.v1.KvNode/Get",
        Some(&bearer("r-token-longer"))
    ));
    // A method nobody classified needs the cluster token.
    assert_eq!(need("/kvdb.v1.KvNode/Frobnicate"), Need::Cluster);
    assert_eq!(need("/kvdb.v1.KvNode/Scan"), Need::Read);
    assert_eq!(need("/kvdb.v1.KvGateway/Txn"), Need::Write);
    assert_eq!(need("garbage"), Need::Cluster);
    assert!(t.check("/grpc.health.v1.Health/Check", None).is_ok());
    assert!(
        t.check("/kvdb.v1.KvNode/Get", Some(b"bearer r-token"))
            .is_ok()
    );
}

#[test]
fn bad_tokens_and_grants_are_refused() {
    assert_eq!(validate_token(""), Err(TokenError::Malformed));
    assert_eq!(validate_token("has space"), Err(TokenError::Malformed));
    assert_eq!(validate_token("tab\t"), Err(TokenError::Malformed));
    assert!(validate_token("ok-Token_1.2").is_ok());
    assert!(matches!(
        Tokens::default().with_grant("writer=x"),
        Err(TokenError::BadGrant(_))
    ));
    assert!(matches!(
        Tokens::default().with_grant("cluster=x"),
        Err(TokenError::BadGrant(_))
    ));
    assert!(matches!(
        Tokens::default().with_grant("no-equals"),
        Err(TokenError::BadGrant(_))
    ));
    assert!(Credentials::bearer(Some("a b")).is_err());
    assert!(!Credentials::bearer(None).unwrap().is_some());
}

#[test]
fn every_rpc_of_every_service_is_classified_and_none_is_open() {
    use prost::Message;
    let set = prost_types::FileDescriptorSet::decode(crate::proto::FILE_DESCRIPTOR_SET).unwrap();
    let mut seen = 0;
    for file in &set.file {
        for service in &file.service {
            for method in &service.method {
                let path = format!("/{}.{}/{}", file.package(), service.name(), method.name());
                assert_ne!(need(&path), Need::Open, "{path} is open to anyone");
                seen += 1;
            }
        }
    }
    assert!(seen >= 27, "only {seen} methods found in the descriptors");
}

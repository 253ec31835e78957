//! Who may call which RPC: bearer tokens with roles, checked by one layer on every gRPC server.
//!
//! Each server that is given [`Tokens`] refuses a call unless its `authorization: Bearer T`
//! metadata names a token whose [`Role`] grants what the method needs ([`need`]):
//! `UNAUTHENTICATED` without a known token, `PERMISSION_DENIED` with a token whose role is too
//! weak. The decision is [`Tokens::check`], a pure function of the method path and the header;
//! [`AuthLayer`] only applies it, before the request is decoded, so a refused call costs no
//! parsing and changes nothing.
//!
//! Roles, weakest first: `read` (gets and the shard map), `read-write` (also puts and
//! deletes), `admin` (also the coordinator's operator calls: shard-init, node status, moves,
//! splits), and `cluster`, the role of the cluster's own processes, which alone may speak
//! Raft and make the internal calls (node registration, heartbeats, leader and
//! configuration reports). A method the table does not know needs `cluster`, so an RPC added
//! later is closed until someone classifies it. Health checks stay open for probes.
//!
//! `Calls` streams carry gets, puts and deletes together; the stream needs `read`, and each
//! write in it is checked against the caller's role, which the layer leaves in the request's
//! extensions ([`Role::of`]).
//!
//! [`AuthConfig`] also carries the process's TLS files ([`crate::tls`]), and [`Credentials`]
//! the TLS its channels use, so that every server and channel is secured in one place.
//!
//! Out of scope: per-key or per-shard permissions, and token rotation without a restart.

use std::fmt;
use std::future::{Ready, ready};
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::Either;
use subtle::ConstantTimeEq;
use tonic::Status;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use crate::incoming::{ConnectionLimits, Listening};
use crate::tls::{ClientTls, ServerTls, TlsError, TlsFiles};

/// A channel whose calls carry this process's [`Credentials`].
pub type AuthChannel = InterceptedService<Channel, Bearer>;

/// What a caller may do, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Gets and the shard map.
    Read,
    /// Also puts and deletes.
    ReadWrite,
    /// Also the coordinator's operator calls.
    Admin,
    /// The cluster's own processes: also Raft and the internal calls.
    Cluster,
}

/// What a method needs of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Nothing: health checks.
    Open,
    /// At least [`Role::Read`].
    Read,
    /// At least [`Role::ReadWrite`].
    Write,
    /// At least [`Role::Admin`].
    Admin,
    /// [`Role::Cluster`].
    Cluster,
}

impl Role {
    /// Whether this role may call a method that needs `need`.
    pub fn grants(self, need: Need) -> bool {
        match need {
            Need::Open => true,
            Need::Read => true,
            Need::Write => self >= Role::ReadWrite,
            Need::Admin => self >= Role::Admin,
            Need::Cluster => self == Role::Cluster,
        }
    }

    /// The role the auth layer found for `request`'s caller; `None` on a server without
    /// tokens, where everyone may do everything.
    pub fn of<T>(request: &tonic::Request<T>) -> Option<Role> {
        request.extensions().get::<Role>().copied()
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Read => "read",
            Role::ReadWrite => "read-write",
            Role::Admin => "admin",
            Role::Cluster => "cluster",
        })
    }
}

/// A role name that is not one of `read`, `read-write`, `admin`, `cluster`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?}: expected read, read-write, admin or cluster")]
pub struct UnknownRole(String);

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "read" => Ok(Role::Read),
            "read-write" => Ok(Role::ReadWrite),
            "admin" => Ok(Role::Admin),
            "cluster" => Ok(Role::Cluster),
            other => Err(UnknownRole(other.to_owned())),
        }
    }
}

/// What the method at gRPC `path` (`/package.Service/Method`) needs.
pub fn need(path: &str) -> Need {
    let Some((service, method)) = path.strip_prefix('/').and_then(|p| p.split_once('/')) else {
        return Need::Cluster;
    };
    match (service, method) {
        ("grpc.health.v1.Health", _) => Need::Open,
        ("grpc.reflection.v1.ServerReflection" | "grpc.reflection.v1alpha.ServerReflection", _) => {
            Need::Read
        }
        ("kvdb.v1.KvGateway" | "kvdb.v1.KvNode", "Get" | "Calls" | "Scan") => Need::Read,
        ("kvdb.v1.KvGateway" | "kvdb.v1.KvNode", "Put" | "Delete" | "Update" | "Txn") => {
            Need::Write
        }
        // A backup reads every key of a shard: an operator's call.
        ("kvdb.v1.ShardExport", "Export") => Need::Admin,
        (
            "kvdb.v1.Coordinator",
            "GetShardMap" | "WatchShardMap" | "ResolveShard" | "ListNodes" | "GetCoordinatorLeader",
        ) => Need::Read,
        (
            "kvdb.v1.Coordinator",
            "InitShards" | "SetNodeStatus" | "SetShardReplicas" | "SetShardLeader" | "SplitShard",
        ) => Need::Admin,
        _ => Need::Cluster,
    }
}

/// Refuses a put or delete carried by a `Calls` stream whose caller's role cannot write;
/// `role` is [`Role::of`] the stream's request (`None`: the server is open).
pub fn check_write(role: Option<Role>) -> Result<(), crate::error::KvError> {
    match role {
        Some(role) if !role.grants(Need::Write) => Err(crate::error::KvError::PermissionDenied(
            format!("a {role} token may not write"),
        )),
        _ => Ok(()),
    }
}

/// The tokens a server accepts, each with its role.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Tokens {
    tokens: Vec<(Vec<u8>, Role)>,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let roles: Vec<Role> = self.tokens.iter().map(|(_, role)| *role).collect();
        f.debug_struct("Tokens").field("roles", &roles).finish()
    }
}

/// Why a token cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Empty, or with characters an HTTP header cannot carry.
    #[error("a token must be 1 to 4096 visible ASCII characters without spaces")]
    Malformed,
    /// `ROLE=TOKEN` without the `=`, or an unknown role.
    #[error("expected ROLE=TOKEN with ROLE one of read, read-write, admin: {0}")]
    BadGrant(String),
}

/// Checks that `token` can travel in an `authorization` header.
pub fn validate_token(token: &str) -> Result<(), TokenError> {
    let visible = token.bytes().all(|b| b.is_ascii_graphic());
    if token.is_empty() || token.len() > 4096 || !visible {
        return Err(TokenError::Malformed);
    }
    Ok(())
}

impl Tokens {
    /// Accepts `token` with `role`.
    pub fn with(mut self, token: &str, role: Role) -> Result<Self, TokenError> {
        validate_token(token)?;
        self.tokens.push((token.as_bytes().to_vec(), role));
        Ok(self)
    }

    /// Accepts a client token given as `ROLE=TOKEN` (`read`, `read-write` or `admin`; the
    /// `cluster` role belongs to the cluster token).
    pub fn with_grant(self, grant: &str) -> Result<Self, TokenError> {
        let bad = || TokenError::BadGrant(grant.split('=').next().unwrap_or("").to_owned());
        let (role, token) = grant.split_once('=').ok_or_else(bad)?;
        let role: Role = role.parse().map_err(|_| bad())?;
        if role == Role::Cluster {
            return Err(bad());
        }
        self.with(token, role)
    }

    /// Whether no token is configured (the server is open).
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The role of the caller presenting `authorization` (the header's value), when it may
    /// call `path`; else the status to refuse it with. The comparison of token bytes takes
    /// the same time wherever they differ.
    pub fn check(&self, path: &str, authorization: Option<&[u8]>) -> Result<Role, Status> {
        let need = need(path);
        let role = authorization.and_then(|value| self.role(value));
        match role {
            Some(role) if role.grants(need) => Ok(role),
            Some(role) => Err(Status::permission_denied(format!(
                "a {role} token may not call {path}"
            ))),
            // Health checks answer whoever asks; they still get a role for the handlers.
            None if need == Need::Open => Ok(Role::Read),
            None => Err(Status::unauthenticated(format!(
                "{path} needs `authorization: Bearer <token>` with a token this server accepts"
            ))),
        }
    }

    /// The role of the token in an `authorization` header's value, if this set holds it.
    pub fn role(&self, authorization: &[u8]) -> Option<Role> {
        let presented = bearer_token(authorization)?;
        let mut found = None;
        for (token, role) in &self.tokens {
            // `ct_eq` on slices of different lengths is false without comparing contents;
            // a token's length is not treated as a secret.
            if bool::from(token.as_slice().ct_eq(presented)) && found.is_none() {
                found = Some(*role);
            }
        }
        found
    }
}

/// The token of an `authorization` header's value `Bearer <token>` (the scheme in any case).
pub fn bearer_token(authorization: &[u8]) -> Option<&[u8]> {
    let (scheme, token) = authorization.split_at_checked(7)?;
    scheme.eq_ignore_ascii_case(b"bearer ").then_some(token)
}

/// The tower layer that applies [`Tokens::check`] to every call of a server; without tokens
/// it lets everything through.
#[derive(Debug, Clone, Default)]
pub struct AuthLayer {
    tokens: Option<Arc<Tokens>>,
}

impl AuthLayer {
    /// A layer checking `tokens`; an empty set leaves the server open.
    pub fn new(tokens: Tokens) -> Self {
        Self {
            tokens: (!tokens.is_empty()).then(|| Arc::new(tokens)),
        }
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = Auth<S>;
    fn layer(&self, inner: S) -> Auth<S> {
        Auth {
            inner,
            tokens: self.tokens.clone(),
        }
    }
}

/// The service of [`AuthLayer`].
#[derive(Debug, Clone)]
pub struct Auth<S> {
    inner: S,
    tokens: Option<Arc<Tokens>>,
}

impl<S, B, R> tower::Service<http::Request<B>> for Auth<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    R: Default,
{
    type Response = http::Response<R>;
    type Error = S::Error;
    /// The refusal, ready at once, or the inner call: no allocation per call.
    type Future = Either<Ready<Result<Self::Response, Self::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        if let Some(tokens) = &self.tokens {
            let header = request
                .headers()
                .get(http::header::AUTHORIZATION)
                .map(|v| v.as_bytes());
            match tokens.check(request.uri().path(), header) {
                Ok(role) => {
                    request.extensions_mut().insert(role);
                }
                Err(status) => return Either::Left(ready(Ok(status.into_http::<R>()))),
            }
        }
        Either::Right(self.inner.call(request))
    }
}

/// A server process's tokens, as its flags give them.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AuthConfig {
    /// The cluster's shared secret: accepted with the `cluster` role, and presented on this
    /// process's own calls to other members. `None` with no client tokens leaves the
    /// process open.
    pub cluster_token: Option<String>,
    /// Client tokens accepted, each `ROLE=TOKEN` (`read`, `read-write`, `admin`).
    pub client_tokens: Vec<String>,
    /// TLS on the process's servers and channels; `None` speaks in clear.
    pub tls: Option<TlsFiles>,
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthConfig")
            .field(
                "cluster_token",
                &self.cluster_token.as_ref().map(|_| "<secret>"),
            )
            .field("client_tokens", &self.client_tokens.len())
            .field("tls", &self.tls)
            .finish()
    }
}

/// Why a process's token settings cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthConfigError {
    /// A token or grant is malformed.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// Client tokens switch checking on, and then the cluster's own calls need the cluster
    /// token.
    #[error("client tokens need a cluster token too, or the cluster's own calls are refused")]
    NoClusterToken,
    /// The TLS files cannot be used.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

impl AuthConfig {
    /// The tokens the process's servers accept; empty when the process is open.
    pub fn tokens(&self) -> Result<Tokens, AuthConfigError> {
        if self.cluster_token.is_none() && !self.client_tokens.is_empty() {
            return Err(AuthConfigError::NoClusterToken);
        }
        let mut tokens = Tokens::default();
        if let Some(token) = &self.cluster_token {
            tokens = tokens.with(token, Role::Cluster)?;
        }
        for grant in &self.client_tokens {
            tokens = tokens.with_grant(grant)?;
        }
        Ok(tokens)
    }

    /// What the process presents on its own calls: the cluster token, and its certificate
    /// over TLS.
    pub fn credentials(&self) -> Result<Credentials, AuthConfigError> {
        let tls = self.tls.as_ref().map(ClientTls::for_server).transpose()?;
        Ok(Credentials::bearer(self.cluster_token.as_deref())?.with_tls(tls))
    }

    /// The TLS of the process's servers, loaded; `None` without TLS files.
    pub fn server_tls(&self) -> Result<Option<Arc<ServerTls>>, AuthConfigError> {
        Ok(self.tls.clone().map(ServerTls::load).transpose()?)
    }

    /// How the process's gRPC servers take connections: these tokens and TLS, and `limits`.
    pub fn listening(&self, limits: ConnectionLimits) -> Result<Listening, AuthConfigError> {
        Ok(Listening {
            auth: self.layer()?,
            tls: self.server_tls()?,
            limits,
        })
    }

    /// The layer for the process's gRPC servers.
    pub fn layer(&self) -> Result<AuthLayer, AuthConfigError> {
        Ok(AuthLayer::new(self.tokens()?))
    }
}

/// How a process calls others: the token it presents (`authorization: Bearer <token>`, or
/// nothing) and the TLS of its channels (or none).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    bearer: Bearer,
    tls: Option<ClientTls>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("bearer", &self.bearer.0.is_some())
            .field("tls", &self.tls)
            .finish()
    }
}

impl Credentials {
    /// Presents `token`, or nothing.
    pub fn bearer(token: Option<&str>) -> Result<Self, TokenError> {
        let Some(token) = token else {
            return Ok(Self::default());
        };
        validate_token(token)?;
        let value = format!("Bearer {token}")
            .parse()
            .map_err(|_| TokenError::Malformed)?;
        Ok(Self {
            bearer: Bearer(Some(value)),
            tls: None,
        })
    }

    /// These credentials over TLS.
    pub fn with_tls(self, tls: Option<ClientTls>) -> Self {
        Self { tls, ..self }
    }

    /// Whether a token is presented.
    pub fn is_some(&self) -> bool {
        self.bearer.0.is_some()
    }

    /// The endpoint of `address` (`host:port`): `https` with these credentials' TLS, `http`
    /// without.
    pub fn endpoint(&self, address: &str) -> Result<Endpoint, tonic::transport::Error> {
        match &self.tls {
            Some(tls) => tls.endpoint(address),
            None => Endpoint::from_shared(format!("http://{address}")),
        }
    }

    /// `channel`, its calls carrying these credentials' token.
    pub fn on(&self, channel: Channel) -> AuthChannel {
        InterceptedService::new(channel, self.bearer.clone())
    }
}

/// The token interceptor of every generated client (see [`Credentials::on`]).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests;

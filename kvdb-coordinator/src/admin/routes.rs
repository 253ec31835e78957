//! The Admin API's handlers: decode the request, call the [`Coordinator`],
//! shape the answer. No cluster logic lives here.
//!
//! Reads are served from this member's applied map, so a follower may answer
//! with a slightly older version (the `map_version` field says which).
//! Mutations go through the coordinator, which forwards them to the leader.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use kvdb_core::{NodeId, ShardId, ShardMap};
use serde::Serialize;

use super::AdminConfig;
use super::api::{
    ClusterView, CoordinatorMemberRequest, CoordinatorMembers, DEFAULT_ZONE, MutationResponse,
    NodeList, NodeSelector, NodeStatusRequest, NodeView, OperationsView, RegisterNodeRequest,
    SchedulerRequest, ShardInitRequest, ShardLeaderRequest, ShardList, ShardReplicasRequest,
    ShardSplitRequest, ShardSplitResponse, ShardView,
};
use super::body::{JsonBody, OptionalJsonBody, PathParam};
use super::error::ApiError;
use crate::Coordinator;
use crate::coordinator::split_point;
use crate::error::CoordinatorError;

/// What every handler can reach.
#[derive(Clone)]
pub(crate) struct AdminState {
    pub coordinator: Coordinator,
    pub config: Arc<AdminConfig>,
    pub metrics: Arc<kvdb_core::metrics::Registry>,
}

/// Every route of the Admin API, before the cross-cutting layers.
pub(crate) fn routes() -> Router<AdminState> {
    Router::new()
        .route("/admin/cluster", get(cluster))
        .route("/admin/nodes", get(list_nodes).post(register_node))
        .route("/admin/nodes/{id}", get(get_node))
        .route("/admin/nodes/{id}/status", post(set_node_status))
        .route("/admin/config/shard-init", post(init_shards))
        .route("/admin/shards", get(list_shards))
        .route("/admin/shards/{id}", get(get_shard))
        .route("/admin/shards/{id}/replicas", post(set_shard_replicas))
        .route("/admin/shards/{id}/leader", post(set_shard_leader))
        .route("/admin/shards/{id}/split", post(split_shard))
        .route("/admin/operations", get(operations))
        .route("/admin/scheduler", post(set_scheduler))
        .route(
            "/admin/coordinators",
            get(list_coordinators).post(add_coordinator),
        )
        .route("/admin/coordinators/{id}", delete(remove_coordinator))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/ui", get(ui))
}

type ApiResult<T> = Result<Json<T>, ApiError>;

async fn cluster(State(s): State<AdminState>) -> Json<ClusterView> {
    Json(s.coordinator.cluster())
}

async fn list_nodes(State(s): State<AdminState>) -> Json<NodeList> {
    let map = s.coordinator.map();
    Json(NodeList {
        map_version: map.version,
        nodes: NodeView::all(&map),
    })
}

async fn get_node(State(s): State<AdminState>, PathParam(id): PathParam) -> ApiResult<NodeView> {
    let map = s.coordinator.map();
    let node = resolve_node(&map, &NodeSelector::Name(id))?;
    Ok(Json(NodeView::new(&map, &map.nodes[&node])))
}

async fn register_node(
    State(s): State<AdminState>,
    JsonBody(req): JsonBody<RegisterNodeRequest>,
) -> ApiResult<NodeView> {
    let zone = req.zone.unwrap_or_else(|| DEFAULT_ZONE.to_owned());
    let node = s
        .coordinator
        .register_node(req.node_id, req.address, zone)
        .await?;
    Ok(Json(NodeView::new(&s.coordinator.map(), &node)))
}

async fn set_node_status(
    State(s): State<AdminState>,
    PathParam(id): PathParam,
    JsonBody(req): JsonBody<NodeStatusRequest>,
) -> ApiResult<MutationResponse> {
    let node = resolve_node(&s.coordinator.map(), &NodeSelector::Name(id))?;
    let map_version = s.coordinator.set_node_status(node, req.status).await?;
    Ok(Json(MutationResponse { map_version }))
}

async fn init_shards(
    State(s): State<AdminState>,
    JsonBody(req): JsonBody<ShardInitRequest>,
) -> ApiResult<MutationResponse> {
    let map_version = s
        .coordinator
        .init_shards(req.num_shards, req.replication_factor)
        .await?;
    Ok(Json(MutationResponse { map_version }))
}

async fn list_shards(State(s): State<AdminState>) -> Json<ShardList> {
    let map = s.coordinator.map();
    Json(ShardList {
        map_version: map.version,
        shards: map
            .shards
            .values()
            .map(|sh| ShardView::new(&map, sh).with_load(s.coordinator.shard_stats()))
            .collect(),
    })
}

async fn get_shard(State(s): State<AdminState>, PathParam(id): PathParam) -> ApiResult<ShardView> {
    let id = parse_shard_id(&id)?;
    let map = s.coordinator.map();
    let shard = map
        .shards
        .get(&id)
        .ok_or(CoordinatorError::ShardNotFound(id))?;
    Ok(Json(
        ShardView::new(&map, shard).with_load(s.coordinator.shard_stats()),
    ))
}

async fn set_shard_replicas(
    State(s): State<AdminState>,
    PathParam(id): PathParam,
    JsonBody(req): JsonBody<ShardReplicasRequest>,
) -> ApiResult<ShardView> {
    let shard = parse_shard_id(&id)?;
    let map = s.coordinator.map();
    let replicas = req
        .replicas
        .iter()
        .map(|r| resolve_node(&map, r))
        .collect::<Result<Vec<_>, _>>()?;
    let info = s
        .coordinator
        .set_shard_replicas(shard, req.epoch, replicas)
        .await?;
    // The write is applied here when this member leads; otherwise addresses
    // come from the possibly older local map, which is fine for display.
    Ok(Json(ShardView::new(&s.coordinator.map(), &info)))
}

async fn set_shard_leader(
    State(s): State<AdminState>,
    PathParam(id): PathParam,
    JsonBody(req): JsonBody<ShardLeaderRequest>,
) -> ApiResult<MutationResponse> {
    let shard = parse_shard_id(&id)?;
    let node = resolve_node(&s.coordinator.map(), &req.node_id)?;
    let map_version = s
        .coordinator
        .set_shard_leader(shard, req.epoch, node)
        .await?;
    Ok(Json(MutationResponse { map_version }))
}

async fn split_shard(
    State(s): State<AdminState>,
    PathParam(id): PathParam,
    OptionalJsonBody(req): OptionalJsonBody<ShardSplitRequest>,
) -> ApiResult<ShardSplitResponse> {
    let shard = parse_shard_id(&id)?;
    let at = req.at.map(|at| split_point(shard, at)).transpose()?;
    let split = s.coordinator.split_shard(shard, req.epoch, at).await?;
    // As for a move: node addresses come from this member's map, fine for display.
    let map = s.coordinator.map();
    Ok(Json(ShardSplitResponse {
        parent: ShardView::new(&map, &split.parent),
        child: ShardView::new(&map, &split.child),
        version: split.map_version,
    }))
}

async fn operations(State(s): State<AdminState>) -> Json<OperationsView> {
    let map = s.coordinator.map();
    Json(OperationsView {
        map_version: map.version,
        paused: s.coordinator.scheduler_paused(),
        leader: s.coordinator.is_leader(),
        moving: map
            .shards
            .values()
            .filter(|sh| sh.state != kvdb_core::ShardState::Stable)
            .map(|sh| ShardView::new(&map, sh))
            .collect(),
        recent: s.coordinator.recent_operations(),
    })
}

async fn set_scheduler(
    State(s): State<AdminState>,
    JsonBody(req): JsonBody<SchedulerRequest>,
) -> ApiResult<MutationResponse> {
    s.coordinator.set_scheduler_paused(req.paused).await?;
    Ok(Json(MutationResponse {
        map_version: s.coordinator.map().version,
    }))
}

async fn list_coordinators(State(s): State<AdminState>) -> Json<CoordinatorMembers> {
    Json(coordinator_members(&s.coordinator))
}

/// Only the leader changes the membership; a follower answers `NOT_LEADER` with the leader's
/// admin address.
async fn add_coordinator(
    State(s): State<AdminState>,
    JsonBody(req): JsonBody<CoordinatorMemberRequest>,
) -> ApiResult<CoordinatorMembers> {
    s.coordinator.add_member(req.id, &req.address).await?;
    Ok(Json(coordinator_members(&s.coordinator)))
}

async fn remove_coordinator(
    State(s): State<AdminState>,
    PathParam(id): PathParam,
) -> ApiResult<CoordinatorMembers> {
    let id = id
        .parse()
        .map_err(|_| ApiError::InvalidRequest(format!("member id {id:?} is not a number")))?;
    s.coordinator.remove_member(id).await?;
    Ok(Json(coordinator_members(&s.coordinator)))
}

fn coordinator_members(coordinator: &Coordinator) -> CoordinatorMembers {
    let cluster = coordinator.cluster();
    CoordinatorMembers {
        leader: cluster.leader.id,
        members: cluster.members,
    }
}

/// Liveness: the process answers.
async fn healthz() -> Json<Probe> {
    Json(Probe { status: "ok" })
}

/// Readiness: a leader is known and this member has caught up with it.
async fn readyz(State(s): State<AdminState>) -> Response {
    if s.coordinator.is_ready() {
        return Json(Probe { status: "ready" }).into_response();
    }
    let leader = s.coordinator.leader().admin_address;
    ApiError::NotReady { leader }.into_response()
}

async fn metrics(State(s): State<AdminState>) -> Response {
    let body = kvdb_core::metrics::encode(&s.metrics);
    let mut response = (StatusCode::OK, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(kvdb_core::metrics::CONTENT_TYPE),
    );
    response
}

/// The status page: one static HTML file whose script reads the `/admin` GET routes (with
/// the admin token the viewer enters, when the cluster has one), so the page itself holds no
/// data and needs no token.
async fn ui() -> Response {
    let mut response = (StatusCode::OK, UI_PAGE).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    // Only its own inline script and same-origin requests: nothing is loaded from elsewhere.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'",
        ),
    );
    response
}

const UI_PAGE: &str = include_str!("ui.html");

/// The body of `/healthz` and `/readyz` when healthy.
#[derive(Serialize)]
struct Probe {
    status: &'static str,
}

fn resolve_node(map: &ShardMap, selector: &NodeSelector) -> Result<NodeId, ApiError> {
    selector
        .resolve(map)
        .ok_or_else(|| CoordinatorError::NodeNotFound(selector.to_string()).into())
}

fn parse_shard_id(raw: &str) -> Result<ShardId, ApiError> {
    raw.parse().map(ShardId).map_err(|_| {
        ApiError::InvalidRequest(format!(
            "shard id must be a non-negative integer, got {raw:?}"
        ))
    })
}

//! The standard services every KvDB gRPC server adds for operators' tools: gRPC health,
//! `NOT_SERVING` until the server can do its job (each server decides when), and gRPC
//! reflection (v1 and v1alpha), so that `grpcurl list` and `grpcurl describe` work against
//! any port without the `.proto` files.
//!
//! Health stays open to every caller, like a load balancer's probe; reflection needs the
//! `read` role when the cluster has tokens (see [`crate::auth`]).

use tonic_health::ServingStatus;
pub use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::server::HealthReporter;
use tonic_reflection::server::{v1, v1alpha};

use crate::proto::FILE_DESCRIPTOR_SET;

/// What a server reports to health checks: for the whole server (the empty service name)
/// and for each of its `services`, all the same. Cheap to clone.
#[derive(Clone)]
pub struct HealthStatus {
    reporter: HealthReporter,
    services: &'static [&'static str],
    /// What was reported last.
    serving: bool,
}

impl HealthStatus {
    /// The health service of a server serving `services`, and its status: `NOT_SERVING`.
    pub async fn new(
        services: &'static [&'static str],
    ) -> (HealthStatus, HealthServer<impl Health>) {
        let (reporter, server) = tonic_health::server::health_reporter();
        let mut status = HealthStatus {
            reporter,
            services,
            serving: true,
        };
        status.set(false).await;
        (status, server)
    }

    /// Reports `SERVING` or `NOT_SERVING`, if that is news.
    pub async fn set(&mut self, serving: bool) {
        if serving == self.serving {
            return;
        }
        self.serving = serving;
        let status = if serving {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        for service in self.services {
            self.reporter.set_service_status(*service, status).await;
        }
        self.reporter.set_service_status("", status).await;
    }
}

/// The reflection services (v1 and v1alpha) of a server serving `services`: they describe
/// those, health and reflection itself, from KvDB's compiled descriptors.
pub fn reflection(
    services: &[&str],
) -> (
    v1::ServerReflectionServer<impl v1::ServerReflection>,
    v1alpha::ServerReflectionServer<impl v1alpha::ServerReflection>,
) {
    let builder = || {
        let mut builder = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .with_service_name("grpc.health.v1.Health")
            .with_service_name("grpc.reflection.v1.ServerReflection")
            .with_service_name("grpc.reflection.v1alpha.ServerReflection");
        for service in services {
            builder = builder.with_service_name(*service);
        }
        builder
    };
    // The descriptor sets are compiled in and decode; a failure is a build defect.
    let v1 = builder()
        .build_v1()
        .expect("the compiled descriptors describe the services");
    let v1alpha = builder()
        .build_v1alpha()
        .expect("the compiled descriptors describe the services");
    (v1, v1alpha)
}

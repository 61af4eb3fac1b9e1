# syntax=docker/dockerfile:1
#
# Relay: one image with both binaries, relay-gateway and relay-worker.
#
#   docker build -t relay .
#   docker run --rm -p 8080:8080 -e RELAY_AUTH=off \
#     -e RELAY_REDIS_URL=redis://host:6379 -e RELAY_DATABASE_URL=postgres://... relay relay-gateway
#
# The build needs BuildKit (the default builder of current Docker) for the
# cache mounts: crates.io downloads and compiled dependencies are kept between
# builds, so a change to Relay's own code recompiles only Relay's crates.

ARG RUST_IMAGE=rust:1-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS build
WORKDIR /src
COPY . .
# Both binaries, release profile, exactly the locked dependency versions.
# The target folder is a cache mount, so the binaries are copied out of it in
# the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --locked --release --bin relay-gateway --bin relay-worker \
    && mkdir -p /out \
    && cp target/release/relay-gateway target/release/relay-worker /out/

FROM ${RUNTIME_IMAGE} AS runtime
# ca-certificates for TLS to Redis/PostgreSQL; curl for container health checks
# (docker-compose.yml and the HEALTHCHECK below).
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 relay \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin relay
COPY --from=build /out/relay-gateway /out/relay-worker /usr/local/bin/
USER 10001:10001
# 8080: gateway HTTP, WebSocket and /metrics; 9091: worker /metrics and /healthz.
EXPOSE 8080 9091
ENV RELAY_LISTEN=0.0.0.0:8080 \
    RELAY_LOG_FORMAT=json
# Process alive. Readiness (`/readyz`, Redis and PostgreSQL reachable) is for
# load balancers and Kubernetes readiness probes. For a worker container, the
# same check goes to port 9091 (docker-compose.yml sets it per service).
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8080/healthz || curl -fsS http://127.0.0.1:9091/healthz || exit 1
STOPSIGNAL SIGTERM
CMD ["relay-gateway"]

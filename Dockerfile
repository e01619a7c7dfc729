# fhirsurge as a container image, for running shards on Kubernetes (deploy/kubernetes/).
# Two stages: the build needs a Rust toolchain; the runtime is a slim Debian with CA
# certificates, the binary and the shipped scenarios and profiles, run as a non-root user.
#
#   docker build -t fhirsurge:latest .
#   docker run --rm fhirsurge:latest run scenarios/smoke.toml --out /tmp

FROM rust:1-bookworm AS build
WORKDIR /src
# Dependencies first, so that a change to the sources does not rebuild them.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && for b in mock_throughput checker proxy_overhead runner_overhead; do echo 'fn main() {}' > benches/$b.rs; done \
    && cargo build --release --locked \
    && rm -rf src benches
COPY . .
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin fhirsurge

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 fhirsurge \
    && useradd --system --uid 10001 --gid fhirsurge --home-dir /home/fhirsurge --create-home fhirsurge
COPY --from=build /src/target/release/fhirsurge /usr/local/bin/fhirsurge
COPY --chown=10001:10001 scenarios /opt/fhirsurge/scenarios
COPY --chown=10001:10001 profiles /opt/fhirsurge/profiles
WORKDIR /opt/fhirsurge
USER 10001:10001
ENTRYPOINT ["fhirsurge"]
CMD ["--help"]

# One image holding the `switchboard` CLI and every stage worker (`switchboard-<stage>`,
# `switchboard-gateway`); each service or Deployment runs one of them. docs/DEPLOY.md, "The image".
FROM rust:1.95-bookworm AS build
WORKDIR /src
# Stripped binaries without debug info: the image carries no symbols (panics still name the
# message; logs carry the context).
ENV CARGO_PROFILE_RELEASE_STRIP=symbols \
    CARGO_PROFILE_RELEASE_DEBUG=false

# Dependencies first, in a layer of their own: it is rebuilt only when Cargo.toml or Cargo.lock
# change, not on every source edit. Every target the manifests name gets an empty stand-in so
# cargo can resolve the workspace and compile the dependencies alone.
COPY Cargo.toml Cargo.lock ./
COPY tools/Cargo.toml tools/Cargo.toml
RUN for f in src/lib.rs src/main.rs tools/src/lib.rs tools/src/main.rs benches/timers.rs benches/triage.rs \
        $(sed -n 's/^path = "\(workers\/[a-z_]*\.rs\)"$/\1/p' Cargo.toml); do \
      mkdir -p "$(dirname "$f")" && echo 'fn main() {}' > "$f"; \
    done \
 && cargo build --release --locked -p switchboard --bins \
 && rm -rf src workers tools/src benches

# Then the sources. COPY keeps the files' own times, which can be older than the stand-ins'
# build: touch them so cargo rebuilds the crate itself.
COPY . .
RUN find src workers tools/src benches -name '*.rs' -exec touch {} + \
 && cargo build --release --locked -p switchboard --bins \
 && mkdir /out \
 && find target/release -maxdepth 1 -type f -executable -name 'switchboard*' -exec cp {} /out/ \;

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 switchboard \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin switchboard
COPY --from=build /out/ /usr/local/bin/
COPY config /etc/switchboard/config
WORKDIR /etc/switchboard
# Non-root, by number, so Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
ENV SWITCHBOARD_POLICY=/etc/switchboard/config/policy.toml
# Liveness of whatever binary the container runs, on its metrics address (set
# SWITCHBOARD_METRICS_ADDR): no shell or curl in the image.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=6 CMD ["switchboard", "healthcheck"]
CMD ["switchboard", "--help"]

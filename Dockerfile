# Multi-stage build: one image holding the `switchboard` CLI and every stage worker.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bins \
 && mkdir /out \
 && find target/release -maxdepth 1 -type f -executable -name 'switchboard*' -exec cp {} /out/ \;

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 switchboard
COPY --from=build /out/ /usr/local/bin/
COPY config /etc/switchboard/config
WORKDIR /etc/switchboard
USER switchboard
ENV SWITCHBOARD_POLICY=/etc/switchboard/config/policy.toml
CMD ["switchboard", "--help"]

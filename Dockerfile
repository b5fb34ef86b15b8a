# rangeserve as a container image: a small non-root server for /data on port 8080.
#
#   docker build -t rangeserve .
#   docker run --rm -p 8080:8080 -v "$PWD:/data:ro" rangeserve
#
# docs/docker.md explains running, passing flags and the health check;
# tests/docker.rs runs this file's ENTRYPOINT, CMD and HEALTHCHECK against the
# real binary (without a Docker engine), so keep them JSON arrays.

# ---------------------------------------------------------------------------
# Build
# ---------------------------------------------------------------------------
FROM rust:1-bookworm AS builder
WORKDIR /src
# The image ships the binary without debug info (the line tables Cargo.toml
# keeps for backtraces); function names stay. Measured with the default
# features: the binary 14.5 MB (README, "Serving from object storage"), the
# layers above the base image 15.9 MB (CI's container test).
ENV CARGO_PROFILE_RELEASE_STRIP=debuginfo

# Dependencies first, against stub sources, so this layer (the slow part) is
# rebuilt only when Cargo.toml or Cargo.lock change. Cargo refuses a manifest
# whose declared targets have no source file, so every target Cargo.toml names
# gets a stub here: the library, the binary and the `[[example]]`
# (tests/docker.rs runs this step's command on the real manifest to keep it so).
COPY Cargo.toml Cargo.lock ./
RUN mkdir src examples \
    && printf '//! Build stub.\n' > src/lib.rs \
    && printf '//! Build stub.\nfn main() {}\n' > src/main.rs \
    && printf '//! Build stub.\nfn main() {}\n' > examples/client_resume.rs \
    && cargo build --release --locked --bin rangeserve

# The real sources. COPY keeps the files' own modification times, which may be
# older than the stub build above: touch them so cargo rebuilds the crate.
COPY src ./src
RUN find src -type f -name '*.rs' -exec touch {} + \
    && cargo build --release --locked --bin rangeserve \
    && ./target/release/rangeserve --version

# ---------------------------------------------------------------------------
# Run
# ---------------------------------------------------------------------------
FROM debian:bookworm-slim

ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="rangeserve" \
      org.opencontainers.image.description="An HTTP/1.1 file server that gets byte ranges exactly right (RFC 9110)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="MIT OR Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/library/debian:bookworm-slim"

# A fixed, unprivileged UID/GID (10001), so a mounted directory only has to be
# world-readable, and Kubernetes' runAsNonRoot can check the numeric USER.
# /data is the default directory to serve: empty unless something is mounted on it.
RUN groupadd --system --gid 10001 rangeserve \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin rangeserve \
    && mkdir -p /data

COPY --from=builder /src/target/release/rangeserve /usr/local/bin/rangeserve

# glibc keeps freed heap unless told to trim: after 2,000 clients that stopped
# reading left, RSS stayed at ~120 MiB by default and fell to ~56 MiB with this
# (tests/load.rs; issue 13 note).
ENV MALLOC_TRIM_THRESHOLD_=131072
USER 10001:10001
# Also the directory served when the arguments give none (DIR defaults to ".").
WORKDIR /data
EXPOSE 8080

# rangeserve runs as PID 1 and handles SIGTERM itself: `docker stop` lets
# in-flight responses finish (up to --shutdown-timeout, 10 s by default; docker
# stop's own grace period is also 10 s) and the server exits 0.
STOPSIGNAL SIGTERM
# One GET of / (the listing of /data, or its index.html). The check gives up by
# itself after 5 s, so docker's --timeout is longer and its reason gets logged.
# Any answer below 500 is healthy (with --no-listing, / is a 404: still up).
HEALTHCHECK --interval=30s --timeout=10s --start-period=5s --retries=3 \
    CMD ["rangeserve", "--healthcheck", "http://127.0.0.1:8080/"]

# Bind address and port are fixed here (clap refuses a repeated --port):
# publish another host port with `docker run -p HOST:8080` instead.
ENTRYPOINT ["rangeserve", "--bind", "0.0.0.0", "--port", "8080"]
CMD ["/data"]

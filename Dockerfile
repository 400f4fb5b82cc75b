# syntax=docker/dockerfile:1
# linkrunner-sync in a small image that runs as a non-root user:
#   docker build -t linkrunner-sync .
# BuildKit (Docker's default builder since 23.0) is needed for the cache mounts.

# Bookworm, so the binary links against the same glibc (2.36) as the runtime image.
FROM rust:1-bookworm AS builder
WORKDIR /src
# Only what the build reads: migrations are embedded by sqlx::migrate!, and Cargo.toml's
# [[bench]] entry must find its file even though the bench is not built.
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY migrations migrations
COPY benches benches
# The simulator is a member of the workspace; the job does not link it.
COPY sim sim
# The cache mounts keep downloaded crates and compiled dependencies between builds; they are
# not part of the image, so the binary is copied out of target/.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin linkrunner-sync \
    && cp target/release/linkrunner-sync /usr/local/bin/linkrunner-sync

# glibc and libgcc only: no shell, no package manager. TLS roots are built into the binary
# (rustls with webpki-roots), so the image needs no CA bundle.
FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
COPY --from=builder /usr/local/bin/linkrunner-sync /usr/local/bin/linkrunner-sync
# The distroless "nonroot" user; numeric so Kubernetes' runAsNonRoot can check it.
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/linkrunner-sync"]
CMD ["sync"]

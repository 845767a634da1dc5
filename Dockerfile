# syntax=docker/dockerfile:1
# Build: docker build -t herald .
# Run:   docker run -d -p 8080:8080 -v herald-data:/app/data -e HERALD_SECRET=... herald

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# gcc builds the bundled SQLite and aws-lc (rustls' crypto); nothing else is needed.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
COPY Cargo.toml Cargo.lock ./
# --cfg ammonia_unstable (linear HTML serialization, see src/ingest/html.rs)
COPY .cargo ./.cargo
COPY src ./src
# The built-in templates are embedded in the binary (include_str!).
COPY templates ./templates
COPY tests ./tests
COPY benches ./benches
RUN cargo build --release --locked --bin herald

FROM debian:bookworm-slim
# ca-certificates: HTTPS feeds and TLS to the SMTP relay verify against the system roots.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /app --no-create-home herald
WORKDIR /app
COPY --from=build /src/target/release/herald /usr/local/bin/herald
COPY config ./config
COPY templates ./templates
COPY examples ./examples
RUN mkdir -p data outbox public && chown herald:herald data outbox public
USER herald
# The database (and everything herald must not lose) lives here.
VOLUME ["/app/data"]
EXPOSE 8080
ENTRYPOINT ["herald"]
# The daemon: polls and sends on schedule, serves feeds and subscription pages.
CMD ["serve", "--listen", "0.0.0.0:8080"]

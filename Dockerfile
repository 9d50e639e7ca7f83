# The modelcycle controller: a static binary on a distroless base, running as non-root.
# docker build -t ghcr.io/modelcycle/modelcycle:dev .
FROM rust:1-alpine AS build
# make and a C compiler build jemalloc (the binary's allocator).
RUN apk add --no-cache musl-dev make
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY benches benches
RUN cargo build --release --locked --bin modelcycle && cp target/release/modelcycle /modelcycle

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /modelcycle /modelcycle
USER 65532:65532
ENTRYPOINT ["/modelcycle"]
CMD ["run"]

# syntax=docker/dockerfile:1
# One image per command of cmd/, chosen with the CMD build argument:
#   docker build --build-arg CMD=order-service -t go-micro-otel/order-service .
# A static binary on distroless, running as a non-root user.
FROM golang:1.26.8-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY cmd ./cmd
COPY internal ./internal
COPY proto ./proto
ARG CMD=user-service
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/app ./cmd/${CMD} && \
    mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/app /app
# The services keep their SQLite file here; owned by the image's non-root user.
COPY --from=build --chown=65532:65532 /out/data /data
ENV DATA_DIR=/data
USER 65532:65532
ENTRYPOINT ["/app"]

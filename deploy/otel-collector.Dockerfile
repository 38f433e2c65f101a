# The official collector image with a health probe. That image is FROM scratch: it has no shell
# or HTTP client with which a container health check could ask the health_check extension
# (:13133), so `docker compose up --wait` could not wait for the collector.
FROM golang:1.26.8-bookworm AS probe
WORKDIR /src
COPY go.mod ./
COPY healthcheck ./healthcheck
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/healthcheck ./healthcheck

FROM otel/opentelemetry-collector-contrib:0.140.1
COPY --from=probe /out/healthcheck /healthcheck

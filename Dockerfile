# labtrail's container image: a static binary on distroless, run as a
# non-root user, history in the /data volume (SQLite) unless LABTRAIL_DB
# names a PostgreSQL server.
#
#   docker build -t labtrail --build-arg VERSION=$(git describe --always) .
#   docker run -d -p 8080:8080 -v labtrail-data:/data \
#     -e GITLAB_TOKEN -e GITLAB_URL=https://gitlab.example.com labtrail
#
# deploy/deploy_test.go runs this file's build line and checks the result
# as this image would hold it: keep the two in step.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION} AS build
WORKDIR /src
# Modules first, so a source change does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# Set by BuildKit for the platform built (docker buildx --platform ...).
ARG TARGETOS
ARG TARGETARCH
# modernc.org/sqlite is pure Go: no cgo, so the binary needs no libc.
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -ldflags="-s -w -X main.version=$VERSION" -o /out/labtrail ./cmd/labtrail
# The data directory, owned by the runtime user: a named volume mounted on
# /data starts with this ownership.
RUN mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
# distroless/static carries CA certificates (GitLab over HTTPS) and tzdata.
COPY --from=build /out/labtrail /usr/local/bin/labtrail
COPY --from=build --chown=65532:65532 /out/data /data
WORKDIR /data
ENV LABTRAIL_DB=/data/labtrail.db \
    LABTRAIL_ADDR=:8080
USER 65532:65532
EXPOSE 8080
VOLUME ["/data"]
ENTRYPOINT ["/usr/local/bin/labtrail"]
CMD ["serve"]

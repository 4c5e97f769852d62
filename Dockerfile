# syntax=docker/dockerfile:1
# operator as a container image: a static binary (CGO_ENABLED=0; the SQLite
# driver is pure Go) on a distroless base, running as a non-root user.
#   docker build --build-arg VERSION=$(git describe --tags --always) --build-arg COMMIT=$(git rev-parse HEAD) -t operator .
#   docker run --rm -v operator-data:/var/lib/operator operator run --pd https://pd-0:2379 ...
# Same build flags as scripts/release.sh (checked by packaging/packaging_test.go).

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=
ENV CGO_ENABLED=0
RUN go build -trimpath \
      -ldflags "-s -w -X github.com/tikvops/operator/internal/cli.Version=${VERSION} -X github.com/tikvops/operator/internal/cli/version.Commit=${COMMIT}" \
      -o /out/operator ./cmd/operator

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/operator /usr/local/bin/operator
# distroless' nonroot user (65532); the database and the API socket live here.
USER 65532:65532
WORKDIR /var/lib/operator
VOLUME ["/var/lib/operator"]
ENV OPERATOR_DB=/var/lib/operator/operator.db
# /metrics and /healthz ([server] listen); bind beyond loopback inside the container.
EXPOSE 9469
ENTRYPOINT ["/usr/local/bin/operator"]
CMD ["run", "--listen", "0.0.0.0:9469"]

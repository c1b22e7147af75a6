# The test command README names and .ci/run calls.
GO ?= go

.PHONY: test bench build vet fmt soak

test: vet fmt
	$(GO) test -race -count=1 -timeout 15m -parallel 4 ./...
	cd deploy/aws && $(GO) test -race -count=1 ./...

vet:
	$(GO) vet ./...
	cd deploy/aws && $(GO) vet ./...

fmt:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

# PostgreSQL runs beside SQLite when LABTRAIL_TEST_POSTGRES_URL is set
# (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable); else it skips.
bench:
	$(GO) test -run '^$$' -bench FullSync -benchtime 3x ./internal/ingest/
	$(GO) test -run '^$$' -bench 'NoChangePoll|Backfill' -benchtime 1x -timeout 30m ./internal/ingest/
	$(GO) test -run '^$$' -bench . -benchmem ./internal/store/sqlite/ ./internal/store/postgres/
	$(GO) test -run '^$$' -bench Webhook -benchtime 3s ./internal/ingest/
	$(GO) test -run '^$$' -bench EventsAPI -benchtime 2s ./internal/server/
	$(GO) test -run '^$$' -bench MetricsEndpoints -benchtime 50x -timeout 60m ./internal/server/
	$(GO) test -run '^$$' -bench '^BenchmarkPages$$' -benchtime 20x -timeout 60m ./internal/server/

build:
	CGO_ENABLED=0 $(GO) build -o labtrail ./cmd/labtrail

# The soak test's full form: 9 minutes of webhooks (dropped, duplicated,
# reordered), polls, API reads and a kill -9 with restart against the
# simulator; `make test` runs its 60-second form.
soak:
	LABTRAIL_SOAK=9m $(GO) test -run '^TestSoak$$' -count=1 -v -timeout 20m ./cmd/labtrail/

# The Lambda function's binary (docs/serverless.md): arm64, runtime
# provided.al2023, named bootstrap as that runtime wants it.
.PHONY: lambda
lambda:
	GOOS=linux GOARCH=arm64 CGO_ENABLED=0 $(GO) build -tags lambda.norpc -ldflags='-s -w' -trimpath -o bootstrap ./cmd/labtrail-lambda

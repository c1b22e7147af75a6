// Command labtrail-lambda is labtrail as an AWS Lambda function (runtime
// provided.al2023, arm64): the EventBridge schedule runs one sync pass,
// the Function URL takes GitLab's webhooks and serves three reads. Build:
//
//	GOOS=linux GOARCH=arm64 CGO_ENABLED=0 go build -tags lambda.norpc -o bootstrap ./cmd/labtrail-lambda
//
// (make lambda). The configuration is labtrail sync's environment plus
// LABTRAIL_DYNAMODB_TABLE and the SSM parameters the secrets are in
// (docs/serverless.md); AWS's own settings come from the SDK's default
// chain, AWS_ENDPOINT_URL_SSM and AWS_ENDPOINT_URL_DYNAMODB included.
package main

import (
	"context"
	"errors"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/labtrail/labtrail/internal/serverless"
	"github.com/labtrail/labtrail/internal/store/dynamodb"
)

func main() {
	ctx := context.Background()
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	f, err := start(ctx, &log)
	if err != nil {
		log.Error("labtrail could not start", "err", err)
		if api := os.Getenv("AWS_LAMBDA_RUNTIME_API"); api != "" {
			if rerr := serverless.ReportInitError(ctx, api, err); rerr != nil {
				log.Error("the init error could not be reported", "err", rerr)
			}
		}
		os.Exit(1)
	}
	lambda.Start(f.Invoke)
}

// start is the cold start: configuration, secrets (read once here), the
// store and the function.
func start(ctx context.Context, log **slog.Logger) (*serverless.Function, error) {
	c, err := serverless.ConfigFromEnv(os.LookupEnv)
	if err != nil {
		return nil, err
	}
	*log = slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: c.LogLevel}))
	if c.Table == "" {
		return nil, errors.New("LABTRAIL_DYNAMODB_TABLE is not set: the DynamoDB table labtrail keeps its history in")
	}
	awsCfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, err
	}
	if err := serverless.LoadSecrets(ctx, &c, ssm.NewFromConfig(awsCfg)); err != nil {
		return nil, err
	}
	st, err := dynamodb.Open(ctx, c.Table, dynamodb.WithRetention(c.Retention.All, c.Retention.Kinds))
	if err != nil {
		return nil, err
	}
	return serverless.New(c, st, *log)
}

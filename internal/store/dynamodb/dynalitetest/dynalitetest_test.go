package dynalitetest_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/labtrail/labtrail/internal/store/dynamodb/dynalitetest"
)

// The SDK's default chain, fed only the standard variables Env sets, reaches
// dynalite: a table created there is listed, and the second Start is the
// same server.
func TestEnvReachesDynalite(t *testing.T) {
	ep := dynalitetest.Env(t)
	if again := dynalitetest.Start(t); again != ep {
		t.Fatalf("second Start = %s, want the same server %s", again, ep)
	}
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	db := dynamodb.NewFromConfig(cfg)
	name := "dynalitetest-" + t.Name()
	_, err = db.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String(name),
		BillingMode:          types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash}},
	})
	if err != nil {
		t.Fatal(err)
	}
	out, err := db.ListTables(ctx, &dynamodb.ListTablesInput{})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, n := range out.TableNames {
		found = found || n == name
	}
	if !found {
		t.Fatalf("ListTables = %v, want %s among them", out.TableNames, name)
	}
	// dynalite 4.0.0 has no UpdateTimeToLive: the store treats that answer
	// as "no TTL here", so pin down what it is.
	_, err = db.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
		TableName:               aws.String(name),
		TimeToLiveSpecification: &types.TimeToLiveSpecification{AttributeName: aws.String("ttl"), Enabled: aws.Bool(true)},
	})
	if err == nil {
		t.Fatal("UpdateTimeToLive succeeded on dynalite; it has no such operation")
	}
	var apiErr interface{ ErrorCode() string }
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "UnknownOperationException" {
		t.Fatalf("UpdateTimeToLive error = %v, want UnknownOperationException", err)
	}
}

// A dynalite that died (killed, or crashed) is reported and replaced, so
// the tests after it still run.
func TestStartReplacesADeadServer(t *testing.T) {
	first := dynalitetest.Start(t)
	if err := dynalitetest.Kill(); err != nil {
		t.Fatal(err)
	}
	second := dynalitetest.Start(t)
	if second == first {
		t.Fatalf("Start after the server died = %s, the dead one", second)
	}
	resp, err := http.Post(second, "application/x-amz-json-1.0", strings.NewReader("{}"))
	if err != nil {
		t.Fatalf("the new server does not answer: %v", err)
	}
	resp.Body.Close()
}

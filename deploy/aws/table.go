package main

import (
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/dynamodb"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// The table internal/store/dynamodb's Create makes, which the store opened
// on it expects: string keys pk and sk, and sparse global secondary indexes
// (hash, range), every attribute projected. TestTableMatchesStore compares
// these with the store's source, so a changed index there fails here.
const (
	tableHashKey  = "pk"
	tableRangeKey = "sk"
	ttlAttribute  = "ttl"
)

type tableIndex struct{ Name, Hash, Range string }

var tableIndexes = []tableIndex{
	{"all_by_time", "g_all", "ok"},
	{"all_by_id", "g_all", "event_id"},
	{"kind_by_time", "g_kind", "ok"},
	{"project_by_time", "g_pid", "ok"},
	{"path_by_time", "g_path", "ok"},
	{"author_by_time", "g_author", "ok"},
	{"state_by_time", "g_state", "ok"},
	{"connection_by_time", "g_conn", "ok"},
	{"delivery_by_status", "g_dstatus", "dsk"},
}

// dynamoDBActions are the DynamoDB operations internal/store/dynamodb calls
// at run time. Creating the table and its TTL is Pulumi's job, so
// CreateTable, DescribeTimeToLive and UpdateTimeToLive are not among them;
// DescribeTable is, for the store's Ping. TestActionsMatchStore keeps this
// list equal to the operations the store's source calls.
var dynamoDBActions = []string{
	"dynamodb:BatchGetItem",
	"dynamodb:BatchWriteItem",
	"dynamodb:DescribeTable",
	"dynamodb:GetItem",
	"dynamodb:PutItem",
	"dynamodb:Query",
	"dynamodb:UpdateItem",
}

// tableArgs is that table, billed on demand, with TTL on ttl and
// point-in-time recovery.
func tableArgs(s settings, tags pulumi.StringMap) *dynamodb.TableArgs {
	attrs := dynamodb.TableAttributeArray{}
	seen := map[string]bool{}
	attr := func(name string) {
		if !seen[name] {
			seen[name] = true
			attrs = append(attrs, dynamodb.TableAttributeArgs{Name: pulumi.String(name), Type: pulumi.String("S")})
		}
	}
	attr(tableHashKey)
	attr(tableRangeKey)
	var gsis dynamodb.TableGlobalSecondaryIndexArray
	for _, ix := range tableIndexes {
		attr(ix.Hash)
		attr(ix.Range)
		gsis = append(gsis, dynamodb.TableGlobalSecondaryIndexArgs{
			Name:           pulumi.String(ix.Name),
			HashKey:        pulumi.String(ix.Hash),
			RangeKey:       pulumi.String(ix.Range),
			ProjectionType: pulumi.String("ALL"),
		})
	}
	return &dynamodb.TableArgs{
		Name:                   pulumi.String(s.Name),
		BillingMode:            pulumi.String("PAY_PER_REQUEST"),
		HashKey:                pulumi.String(tableHashKey),
		RangeKey:               pulumi.String(tableRangeKey),
		Attributes:             attrs,
		GlobalSecondaryIndexes: gsis,
		Ttl:                    &dynamodb.TableTtlArgs{AttributeName: pulumi.String(ttlAttribute), Enabled: pulumi.Bool(true)},
		PointInTimeRecovery:    &dynamodb.TablePointInTimeRecoveryArgs{Enabled: pulumi.Bool(s.PointInTimeRecovery)},
		Tags:                   tags,
	}
}

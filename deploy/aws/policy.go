package main

import (
	"encoding/json"
	"fmt"
	"strings"
)

// policyDocument is an IAM policy, marshalled as IAM reads it.
type policyDocument struct {
	Version   string            `json:"Version"`
	Statement []policyStatement `json:"Statement"`
}

type policyStatement struct {
	Sid       string                       `json:"Sid,omitempty"`
	Effect    string                       `json:"Effect"`
	Principal map[string]string            `json:"Principal,omitempty"`
	Action    []string                     `json:"Action"`
	Resource  []string                     `json:"Resource,omitempty"`
	Condition map[string]map[string]string `json:"Condition,omitempty"`
}

// assumeRolePolicy lets Lambda, and only Lambda, take the function's role.
func assumeRolePolicy() string {
	return mustJSON(policyDocument{Version: "2012-10-17", Statement: []policyStatement{{
		Effect:    "Allow",
		Principal: map[string]string{"Service": "lambda.amazonaws.com"},
		Action:    []string{"sts:AssumeRole"},
	}}})
}

// parameterActions are the SSM operations the function calls to read its
// parameters (internal/serverless's LoadSecrets: one GetParameters request
// for all of them). IAM authorizes GetParameters against
// ssm:GetParameters only, so ssm:GetParameter is not granted.
// TestParameterActionsMatchFunction keeps this list equal to the SSM
// operations the function's source calls.
var parameterActions = []string{"ssm:GetParameters"}

// functionPolicy is all the function may do, each on named resources only:
// the store's item operations on its table and the table's indexes, reading
// the named parameters, decrypting them with their key (and only through
// SSM), and writing to its own log group, which Pulumi creates.
func functionPolicy(tableArn string, parameterArns []string, keyArn, logGroupArn string) (string, error) {
	region, err := arnRegion(keyArn)
	if err != nil {
		return "", err
	}
	return mustJSON(policyDocument{Version: "2012-10-17", Statement: []policyStatement{
		{Sid: "Table", Effect: "Allow", Action: dynamoDBActions, Resource: []string{tableArn, tableArn + "/index/*"}},
		{Sid: "Parameters", Effect: "Allow", Action: parameterActions, Resource: parameterArns},
		{Sid: "DecryptParameters", Effect: "Allow", Action: []string{"kms:Decrypt"}, Resource: []string{keyArn},
			Condition: map[string]map[string]string{"StringEquals": {"kms:ViaService": "ssm." + region + ".amazonaws.com"}}},
		{Sid: "Logs", Effect: "Allow", Action: []string{"logs:CreateLogStream", "logs:PutLogEvents"}, Resource: []string{logGroupArn + ":*"}},
	}}), nil
}

// arnRegion is the region field of an ARN (arn:partition:service:region:account:resource).
func arnRegion(arn string) (string, error) {
	f := strings.SplitN(arn, ":", 6)
	if len(f) != 6 || f[0] != "arn" || f[3] == "" {
		return "", fmt.Errorf("%q is not a regional ARN", arn)
	}
	return f[3], nil
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only fixed struct types are marshalled
	}
	return string(b)
}

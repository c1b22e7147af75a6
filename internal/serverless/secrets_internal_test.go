package serverless

import (
	"context"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/labtrail/labtrail/internal/serverless/lambdatest"
)

// More names than one GetParameters request takes are read in batches of
// at most 10 (the stand-in refuses more, as SSM does), each name once.
func TestGetParametersInBatches(t *testing.T) {
	params := map[string]string{}
	var names []string
	for i := range 23 {
		n := fmt.Sprintf("/labtrail/test/%02d", i)
		names = append(names, n)
		if i%5 != 3 { // 3, 8, 13, 18 do not exist
			params[n] = fmt.Sprintf("value-%02d", i)
		}
	}
	srv := lambdatest.StartSSM(t, params)
	client := ssm.NewFromConfig(aws.Config{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(srv.URL),
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "secret"}, nil
		}),
	})
	values, invalid, err := getParameters(context.Background(), client, names)
	if err != nil {
		t.Fatal(err)
	}
	if n := srv.Requests("GetParameters"); n != 3 {
		t.Errorf("%d GetParameters requests for 23 names, want 3", n)
	}
	for _, n := range names {
		if srv.Calls(n) != 1 {
			t.Errorf("%s asked %d times", n, srv.Calls(n))
		}
		v, ok := params[n]
		if values[n] != v || invalid[n] == ok {
			t.Errorf("%s: value %q invalid %v; want %q, exists %v", n, values[n], invalid[n], v, ok)
		}
	}
	if len(values) != 19 || len(invalid) != 4 {
		t.Errorf("%d values, %d invalid; want 19 and 4", len(values), len(invalid))
	}
}

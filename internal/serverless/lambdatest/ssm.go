// Package lambdatest holds local stand-ins for the AWS parts labtrail's
// function talks to in tests: SSM Parameter Store's GetParameters (AWS JSON
// 1.1 protocol) and the Lambda Runtime API a function's bootstrap polls.
package lambdatest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
)

// SSM is an SSM Parameter Store stand-in serving GetParameters.
type SSM struct {
	URL string

	mu       sync.Mutex
	params   map[string]string
	calls    map[string]int // GetParameters requests naming a parameter, by name
	requests map[string]int // requests by operation (X-Amz-Target's, after "AmazonSSM.")
}

// StartSSM serves params (name -> value, all SecureString) until the test
// ends. Point the SDK at it with AWS_ENDPOINT_URL_SSM=ssm.URL.
func StartSSM(tb testing.TB, params map[string]string) *SSM {
	tb.Helper()
	s := &SSM{params: map[string]string{}, calls: map[string]int{}, requests: map[string]int{}}
	for k, v := range params {
		s.params[k] = v
	}
	ts := httptest.NewServer(http.HandlerFunc(s.serve))
	tb.Cleanup(ts.Close)
	s.URL = ts.URL
	return s
}

// Calls is how many GetParameters requests asked for name.
func (s *SSM) Calls(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[name]
}

// Requests is how many requests for the operation op (GetParameters,
// GetParameter, ...) came, served or not.
func (s *SSM) Requests(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests[op]
}

// serve answers as SSM does (AWS JSON 1.1: POST /, the operation in
// X-Amz-Target, errors as {"__type": ..., "message": ...} with a 400).
// GetParameters takes 1 to 10 names; the parameters come back in
// alphabetical order, the names that do not exist in InvalidParameters.
func (s *SSM) serve(w http.ResponseWriter, r *http.Request) {
	fail := func(status int, typ, msg string) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.Header().Set("X-Amzn-ErrorType", typ)
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]string{"__type": typ, "message": msg})
	}
	op, _ := strings.CutPrefix(r.Header.Get("X-Amz-Target"), "AmazonSSM.")
	s.mu.Lock()
	s.requests[op]++
	s.mu.Unlock()
	if r.Method != http.MethodPost || op != "GetParameters" {
		fail(http.StatusBadRequest, "UnknownOperationException", "only AmazonSSM.GetParameters is served here")
		return
	}
	if r.Header.Get("Authorization") == "" {
		fail(http.StatusBadRequest, "MissingAuthenticationTokenException", "the request is not signed")
		return
	}
	var in struct {
		Names          []string
		WithDecryption bool
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || len(in.Names) == 0 || len(in.Names) > 10 {
		fail(http.StatusBadRequest, "ValidationException", "a GetParameters request needs 1 to 10 Names")
		return
	}
	names := slices.Clone(in.Names)
	slices.Sort(names)
	names = slices.Compact(names)
	parameters, invalid := []map[string]any{}, []string{}
	s.mu.Lock()
	for _, n := range names {
		s.calls[n]++
		v, ok := s.params[n]
		if !ok {
			invalid = append(invalid, n)
			continue
		}
		if !in.WithDecryption {
			v = "AQICAHh-encrypted-" + n // SecureString values come back encrypted without WithDecryption
		}
		parameters = append(parameters, map[string]any{
			"Name": n, "Type": "SecureString", "Value": v, "Version": 1,
			"ARN": "arn:aws:ssm:us-east-1:123456789012:parameter" + n, "DataType": "text",
		})
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	_ = json.NewEncoder(w).Encode(map[string]any{"Parameters": parameters, "InvalidParameters": invalid})
}

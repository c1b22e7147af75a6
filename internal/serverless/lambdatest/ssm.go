// Package lambdatest holds local stand-ins for the AWS parts labtrail's
// function talks to in tests: SSM Parameter Store's GetParameter (AWS JSON
// 1.1 protocol) and the Lambda Runtime API a function's bootstrap polls.
package lambdatest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// SSM is an SSM Parameter Store stand-in serving GetParameter.
type SSM struct {
	URL string

	mu     sync.Mutex
	params map[string]string
	calls  map[string]int // per parameter name
}

// StartSSM serves params (name -> value, all SecureString) until the test
// ends. Point the SDK at it with AWS_ENDPOINT_URL_SSM=ssm.URL.
func StartSSM(tb testing.TB, params map[string]string) *SSM {
	tb.Helper()
	s := &SSM{params: map[string]string{}, calls: map[string]int{}}
	for k, v := range params {
		s.params[k] = v
	}
	ts := httptest.NewServer(http.HandlerFunc(s.serve))
	tb.Cleanup(ts.Close)
	s.URL = ts.URL
	return s
}

// Calls is how many times GetParameter asked for name.
func (s *SSM) Calls(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[name]
}

// TotalCalls is how many GetParameter calls were made.
func (s *SSM) TotalCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.calls {
		n += c
	}
	return n
}

// serve answers as SSM does (AWS JSON 1.1: POST /, the operation in
// X-Amz-Target, errors as {"__type": ..., "message": ...} with a 400).
func (s *SSM) serve(w http.ResponseWriter, r *http.Request) {
	fail := func(status int, typ, msg string) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.Header().Set("X-Amzn-ErrorType", typ)
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]string{"__type": typ, "message": msg})
	}
	if r.Method != http.MethodPost || r.Header.Get("X-Amz-Target") != "AmazonSSM.GetParameter" {
		fail(http.StatusBadRequest, "UnknownOperationException", "only AmazonSSM.GetParameter is served here")
		return
	}
	if r.Header.Get("Authorization") == "" {
		fail(http.StatusBadRequest, "MissingAuthenticationTokenException", "the request is not signed")
		return
	}
	var in struct {
		Name           string
		WithDecryption bool
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil || in.Name == "" {
		fail(http.StatusBadRequest, "ValidationException", "a GetParameter request needs a Name")
		return
	}
	s.mu.Lock()
	s.calls[in.Name]++
	v, ok := s.params[in.Name]
	s.mu.Unlock()
	if !ok {
		fail(http.StatusBadRequest, "ParameterNotFound", "Parameter "+in.Name+" not found.")
		return
	}
	value := v
	if !in.WithDecryption {
		value = "AQICAHh-encrypted-" + in.Name // SecureString values come back encrypted without WithDecryption
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	_ = json.NewEncoder(w).Encode(map[string]any{"Parameter": map[string]any{
		"Name": in.Name, "Type": "SecureString", "Value": value, "Version": 1,
		"ARN": "arn:aws:ssm:us-east-1:123456789012:parameter" + in.Name, "DataType": "text",
	}})
}

package lambdatest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Runtime is a local Lambda Runtime API (version 2018-06-01): a
// function's bootstrap started with AWS_LAMBDA_RUNTIME_API=rt.Addr polls
// GET /2018-06-01/runtime/invocation/next for events and posts each
// answer to .../invocation/{id}/response or .../{id}/error, and an
// initialisation failure to /2018-06-01/runtime/init/error.
type Runtime struct {
	// Addr is host:port, as AWS_LAMBDA_RUNTIME_API holds it.
	Addr string

	queue   chan *invocation
	initErr chan Error

	mu      sync.Mutex
	pending map[string]*invocation
	seq     int
	nexts   int
}

// Result is how an invocation ended: the function's response, or its
// error (Error set).
type Result struct {
	Payload  []byte
	Error    *Error
	Duration time.Duration // from the event's hand-over to the answer
}

// Error is an error a function reported, with the error type its
// Lambda-Runtime-Function-Error-Type header named.
type Error struct {
	Message   string   `json:"errorMessage"`
	Type      string   `json:"errorType"`
	Trace     []string `json:"stackTrace"`
	Header    string   `json:"-"`
	InitPhase bool     `json:"-"`
}

func (e *Error) Error() string { return e.Type + ": " + e.Message }

type invocation struct {
	id       string
	payload  []byte
	deadline time.Time
	handed   time.Time
	done     chan Result
}

// StartRuntime serves the Runtime API on a loopback port until the test
// ends.
func StartRuntime(tb testing.TB) *Runtime {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	rt := &Runtime{Addr: ln.Addr().String(), queue: make(chan *invocation), initErr: make(chan Error, 1),
		pending: map[string]*invocation{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /2018-06-01/runtime/invocation/next", rt.next)
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/response", rt.respond)
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/error", rt.respond)
	mux.HandleFunc("POST /2018-06-01/runtime/init/error", rt.initError)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute, WriteTimeout: 0, IdleTimeout: time.Minute}
	go func() { _ = srv.Serve(ln) }()
	tb.Cleanup(func() { _ = srv.Close() })
	return rt
}

// Nexts counts the GET .../invocation/next calls the function made.
func (rt *Runtime) Nexts() int {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.nexts
}

// Invoke hands payload to the function with timeout as its deadline and
// waits for its answer (or ctx's end).
func (rt *Runtime) Invoke(ctx context.Context, payload []byte, timeout time.Duration) (Result, error) {
	rt.mu.Lock()
	rt.seq++
	inv := &invocation{id: fmt.Sprintf("8476a536-e9f4-11e8-9739-%012d", rt.seq), payload: payload, done: make(chan Result, 1)}
	rt.pending[inv.id] = inv
	rt.mu.Unlock()
	inv.deadline = time.Now().Add(timeout)
	select {
	case rt.queue <- inv:
	case <-ctx.Done():
		return Result{}, fmt.Errorf("the function never asked for the next event: %w", ctx.Err())
	}
	select {
	case r := <-inv.done:
		return r, nil
	case <-ctx.Done():
		return Result{}, fmt.Errorf("no answer to invocation %s: %w", inv.id, ctx.Err())
	}
}

// InitError waits up to timeout for the function to report an
// initialisation error.
func (rt *Runtime) InitError(timeout time.Duration) (Error, bool) {
	select {
	case e := <-rt.initErr:
		return e, true
	case <-time.After(timeout):
		return Error{}, false
	}
}

func (rt *Runtime) next(w http.ResponseWriter, r *http.Request) {
	rt.mu.Lock()
	rt.nexts++
	rt.mu.Unlock()
	select {
	case inv := <-rt.queue:
		inv.handed = time.Now()
		h := w.Header()
		h.Set("Lambda-Runtime-Aws-Request-Id", inv.id)
		h.Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(inv.deadline.UnixMilli(), 10))
		h.Set("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:labtrail")
		h.Set("Lambda-Runtime-Trace-Id", "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1")
		h.Set("Content-Type", "application/json")
		_, _ = w.Write(inv.payload)
	case <-r.Context().Done():
	}
}

func (rt *Runtime) respond(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	rt.mu.Lock()
	inv := rt.pending[id]
	delete(rt.pending, id)
	rt.mu.Unlock()
	if inv == nil {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"errorMessage":"unknown request id","errorType":"InvalidRequestID"}`)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	res := Result{Payload: body, Duration: time.Since(inv.handed)}
	if strings.HasSuffix(r.URL.Path, "/error") {
		res.Error = parseError(body, r.Header.Get("Lambda-Runtime-Function-Error-Type"))
	}
	w.WriteHeader(http.StatusAccepted)
	_, _ = io.WriteString(w, `{"status":"OK"}`)
	inv.done <- res
}

func (rt *Runtime) initError(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	e := parseError(body, r.Header.Get("Lambda-Runtime-Function-Error-Type"))
	e.InitPhase = true
	select {
	case rt.initErr <- *e:
	default:
	}
	w.WriteHeader(http.StatusAccepted)
	_, _ = io.WriteString(w, `{"status":"OK"}`)
}

func parseError(body []byte, header string) *Error {
	var e Error
	if err := json.Unmarshal(body, &e); err != nil {
		e = Error{Message: string(body), Type: "unparsable"}
	}
	e.Header = header
	return &e
}

// Log collects what a function (a process, or one in-process under test)
// writes, safe for concurrent writers.
type Log struct {
	mu sync.Mutex
	b  []byte
}

func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b = append(l.b, p...)
	return len(p), nil
}

func (l *Log) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.b)
}

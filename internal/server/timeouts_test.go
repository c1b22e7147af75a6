package server_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/labtrail/labtrail/internal/ingest"
	"github.com/labtrail/labtrail/internal/server"
	"github.com/labtrail/labtrail/internal/store"
	"github.com/labtrail/labtrail/internal/store/sqlite"
)

// serveWithTimeouts serves the API with webhooks on a loopback listener
// built as labtrail serve builds it.
func serveWithTimeouts(t *testing.T, to server.Timeouts) (addr string, st store.Store) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	api := server.New(st, nil)
	wh, err := ingest.NewWebhookHandler(ingest.WebhookConfig{Secrets: []string{"hook-secret"}}, st, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	api.EnableWebhooks(wh, func(context.Context, int64) error { return nil })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := api.HTTPServer(to)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), st
}

// drip writes p to conn one byte at a time, a little apart, until it is
// all sent, the connection fails or stop is closed.
func drip(conn net.Conn, p []byte, stop <-chan struct{}) {
	for i := range p {
		select {
		case <-stop:
			return
		case <-time.After(20 * time.Millisecond):
		}
		if _, err := conn.Write(p[i : i+1]); err != nil {
			return
		}
	}
}

// getOK asserts that a plain request is served.
func getOK(t *testing.T, addr string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/api/v1/events")
	if err != nil {
		t.Fatalf("a normal request beside the slow one: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("a normal request beside the slow one: %s", resp.Status)
	}
}

// closed asserts that the server closed conn: what is left to read ends.
func closed(t *testing.T, r *bufio.Reader) {
	t.Helper()
	if _, err := io.ReadAll(r); err != nil && !strings.Contains(err.Error(), "reset") {
		t.Errorf("connection not closed cleanly: %v", err)
	}
}

// A webhook whose body trickles in is cut off at the webhook read timeout,
// although the server's own read timeout is far longer; meanwhile other
// requests are served, and nothing of the cut-off delivery is stored.
func TestSlowWebhookBodyIsCutOff(t *testing.T) {
	addr, st := serveWithTimeouts(t, server.Timeouts{
		ReadHeader: time.Minute, Read: time.Hour, WebhookRead: 300 * time.Millisecond, Write: time.Minute, Idle: time.Minute,
	})
	// Sent whole, at this pace, it would take 10 seconds and be accepted.
	body := []byte(`{"object_kind":"push","pad":"` + strings.Repeat("x", 470) + `"}`)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /api/v1/webhooks/gitlab HTTP/1.1\r\nHost: %s\r\nX-Gitlab-Token: hook-secret\r\n"+
		"X-Gitlab-Event: Push Hook\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", addr, len(body))
	stop := make(chan struct{})
	defer close(stop)
	go drip(conn, body, stop)

	getOK(t, addr)

	r := bufio.NewReader(conn)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatalf("no answer to the slow webhook: %v", err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("slow webhook: %s %s, want 408", resp.Status, msg)
	}
	closed(t, r)
	page, err := st.ListDeliveries(context.Background(), store.DeliveryFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Deliveries) != 0 {
		t.Errorf("a cut-off delivery was stored: %+v", page.Deliveries)
	}
}

// A client that sends its headers slowly is cut off at the header timeout
// while others are served.
func TestSlowHeadersAreCutOff(t *testing.T) {
	addr, _ := serveWithTimeouts(t, server.Timeouts{
		ReadHeader: 300 * time.Millisecond, Read: time.Hour, WebhookRead: time.Hour, Write: time.Minute, Idle: time.Minute,
	})
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /api/v1/events HTTP/1.1\r\nHost: %s\r\n", addr)
	stop := make(chan struct{})
	defer close(stop)
	go drip(conn, []byte("X-Slow: "+strings.Repeat("y", 500)+"\r\n\r\n"), stop)

	getOK(t, addr)

	r := bufio.NewReader(conn)
	if resp, err := http.ReadResponse(r, nil); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("a request whose headers took 10 seconds was served")
		}
	}
	closed(t, r)
}

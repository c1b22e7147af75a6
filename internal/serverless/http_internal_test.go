package serverless

import (
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"testing"
)

func TestToHTTPRequestAndBack(t *testing.T) {
	e := URLRequest{Version: "2.0", RawPath: "/api/v1/events/mr-1-2", RawQueryString: "a=1&a=2&b=%2Fx",
		Cookies: []string{"s=1", "t=2"}, Headers: map[string]string{"x-forwarded-for": "1.2.3.4", "accept": "text/html,application/json"},
		Body: base64.StdEncoding.EncodeToString([]byte{0, 1, 2, 255}), IsBase64Encoded: true}
	e.RequestContext.DomainName = "abc.lambda-url.eu-west-1.on.aws"
	e.RequestContext.HTTP.Method = "PUT"
	e.RequestContext.HTTP.SourceIP = "2001:db8::1"
	r, err := toHTTPRequest(context.Background(), e)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(r.Body)
	switch {
	case r.Method != "PUT" || r.URL.Path != "/api/v1/events/mr-1-2" || r.URL.Query()["a"][1] != "2" || r.URL.Query().Get("b") != "/x":
		t.Errorf("method %s, url %s", r.Method, r.URL)
	case r.Header.Get("Cookie") != "s=1; t=2" || len(r.Cookies()) != 2:
		t.Errorf("cookies %q", r.Header.Get("Cookie"))
	case r.Header.Get("Accept") != "text/html,application/json" || r.Host != "abc.lambda-url.eu-west-1.on.aws":
		t.Errorf("headers %v, host %q", r.Header, r.Host)
	case string(body) != string([]byte{0, 1, 2, 255}) || r.ContentLength != 4:
		t.Errorf("body %v (%d)", body, r.ContentLength)
	case r.RemoteAddr != "[2001:db8::1]:0":
		t.Errorf("remote %q", r.RemoteAddr)
	}

	w := newResponseWriter()
	http.SetCookie(w, &http.Cookie{Name: "a", Value: "1"})
	http.SetCookie(w, &http.Cookie{Name: "b", Value: "2"})
	w.Header().Add("Vary", "Accept")
	w.Header().Add("Vary", "Cookie")
	w.Header().Set("Content-Type", "image/png")
	w.WriteHeader(http.StatusTeapot)
	_, _ = w.Write([]byte{0x89, 'P', 'N', 'G'})
	resp := w.response()
	if resp.StatusCode != http.StatusTeapot || len(resp.Cookies) != 2 || resp.Headers["Vary"] != "Accept, Cookie" || resp.Headers["Set-Cookie"] != "" {
		t.Errorf("response %+v", resp)
	}
	if b, _ := base64.StdEncoding.DecodeString(resp.Body); !resp.IsBase64Encoded || string(b) != "\x89PNG" {
		t.Errorf("binary body %q base64 %v", resp.Body, resp.IsBase64Encoded)
	}
	w = newResponseWriter()
	_, _ = w.Write([]byte(`{"ok":true}`))
	if resp := w.response(); resp.StatusCode != 200 || resp.IsBase64Encoded || resp.Body != `{"ok":true}` {
		t.Errorf("text body %+v", resp)
	}
}

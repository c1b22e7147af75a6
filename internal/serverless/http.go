package serverless

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"mime"
	"net"
	"net/http"
	"strings"

	"github.com/aws/aws-lambda-go/events"
)

// URLRequest and URLResponse are a Lambda Function URL's request and its
// (buffered) response.
type (
	URLRequest  = events.LambdaFunctionURLRequest
	URLResponse = events.LambdaFunctionURLResponse
)

func parseURLRequest(payload []byte) (URLRequest, error) {
	var e URLRequest
	if err := json.Unmarshal(payload, &e); err != nil {
		return e, fmt.Errorf("a Function URL request that does not parse: %w", err)
	}
	return e, nil
}

// toHTTPRequest makes the net/http request a Function URL request stands
// for: method, raw path and query, headers (Lambda gives one value per
// name, repeated ones joined by commas, as HTTP allows), cookies (given
// apart), the body (base64 when binary) and the caller's address.
func toHTTPRequest(ctx context.Context, e URLRequest) (*http.Request, error) {
	body := []byte(e.Body)
	if e.IsBase64Encoded {
		var err error
		if body, err = base64.StdEncoding.DecodeString(e.Body); err != nil {
			return nil, fmt.Errorf("the request body is not valid base64: %v", err)
		}
	}
	path := e.RawPath
	if path == "" {
		path = e.RequestContext.HTTP.Path
	}
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	target := path
	if e.RawQueryString != "" {
		target += "?" + e.RawQueryString
	}
	method := e.RequestContext.HTTP.Method
	if method == "" {
		method = http.MethodGet
	}
	r, err := http.NewRequestWithContext(ctx, method, target, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("a request labtrail cannot read: %v", err)
	}
	r.RequestURI = target
	r.Proto = cmp.Or(e.RequestContext.HTTP.Protocol, "HTTP/1.1")
	for k, v := range e.Headers {
		r.Header.Set(k, v)
	}
	if len(e.Cookies) > 0 {
		r.Header.Set("Cookie", strings.Join(e.Cookies, "; "))
	}
	r.Host = cmp.Or(e.RequestContext.DomainName, r.Header.Get("Host"))
	r.ContentLength = int64(len(body))
	r.RemoteAddr = net.JoinHostPort(cmp.Or(e.RequestContext.HTTP.SourceIP, "0.0.0.0"), "0")
	return r, nil
}

// responseWriter buffers a handler's answer for the Function URL.
type responseWriter struct {
	h      http.Header
	status int
	body   bytes.Buffer
	wrote  bool
}

func newResponseWriter() *responseWriter {
	return &responseWriter{h: http.Header{}, status: http.StatusOK}
}

func (w *responseWriter) Header() http.Header { return w.h }

func (w *responseWriter) WriteHeader(status int) {
	if !w.wrote {
		w.status, w.wrote = status, true
	}
}

func (w *responseWriter) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.body.Write(b)
}

// response is the Function URL response: Set-Cookie headers go in Cookies,
// other repeated headers are joined by commas, and a body that is not
// text is sent base64.
func (w *responseWriter) response() URLResponse {
	out := URLResponse{StatusCode: w.status, Headers: map[string]string{}}
	for k, vs := range w.h {
		if http.CanonicalHeaderKey(k) == "Set-Cookie" {
			out.Cookies = append(out.Cookies, vs...)
			continue
		}
		out.Headers[k] = strings.Join(vs, ", ")
	}
	if w.h.Get("Content-Type") == "" && w.body.Len() > 0 {
		out.Headers["Content-Type"] = http.DetectContentType(w.body.Bytes())
	}
	if isText(out.Headers["Content-Type"]) {
		out.Body = w.body.String()
	} else {
		out.Body, out.IsBase64Encoded = base64.StdEncoding.EncodeToString(w.body.Bytes()), true
	}
	return out
}

func isText(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return contentType == ""
	}
	return strings.HasPrefix(mt, "text/") || mt == "application/json" || strings.HasSuffix(mt, "+json") ||
		mt == "application/javascript" || mt == "application/xml" || mt == "application/x-ndjson"
}

package serverless

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// ReportInitError tells the Lambda Runtime API at runtimeAPI (the
// AWS_LAMBDA_RUNTIME_API variable) that the function could not start:
// POST /2018-06-01/runtime/init/error. Lambda then shows err's message
// as the invocation's error and starts a new execution environment for
// the next one.
func ReportInitError(ctx context.Context, runtimeAPI string, err error) error {
	body, _ := json.Marshal(map[string]any{"errorMessage": err.Error(), "errorType": "labtrail.InitError", "stackTrace": []string{}})
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, rerr := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+runtimeAPI+"/2018-06-01/runtime/init/error", bytes.NewReader(body))
	if rerr != nil {
		return rerr
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Lambda-Runtime-Function-Error-Type", "Unhandled")
	resp, rerr := http.DefaultClient.Do(req)
	if rerr != nil {
		return fmt.Errorf("report the init error to the Runtime API: %w", rerr)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("report the init error to the Runtime API: %s", resp.Status)
	}
	return nil
}

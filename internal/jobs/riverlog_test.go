package jobs

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// River's routine INFO records show only at DEBUG; its warnings and errors
// keep their level, also through loggers derived With attributes or groups.
func TestRiverInfoIsDebug(t *testing.T) {
	for _, tc := range []struct {
		level      slog.Level
		want, hide []string
	}{
		{slog.LevelInfo, []string{"level=WARN msg=slow", "level=ERROR msg=failed"}, []string{"Producer job counts"}},
		{slog.LevelDebug, []string{"level=DEBUG msg=\"Producer job counts\"", "level=WARN msg=slow", "level=ERROR msg=failed"}, nil},
	} {
		var buf bytes.Buffer
		log := slog.New(quietInfo{slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: tc.level})}).With("component", "river").WithGroup("g")
		log.Info("Producer job counts", "n", 1)
		log.Warn("slow")
		log.Error("failed")
		out := buf.String()
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("at %s: %q missing from\n%s", tc.level, w, out)
			}
		}
		for _, h := range tc.hide {
			if strings.Contains(out, h) {
				t.Errorf("at %s: %q shown:\n%s", tc.level, h, out)
			}
		}
	}
}

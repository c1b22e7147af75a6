package main

import (
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/labtrail/labtrail/internal/auth"
	"github.com/labtrail/labtrail/internal/server"
)

// publicURL: LABTRAIL_PUBLIC_URL, else the webhook URL's origin, else a
// loopback address; an address others reach needs it said.
func TestPublicURL(t *testing.T) {
	for _, tc := range []struct {
		c    config
		want string
	}{
		{config{PublicURL: "https://labtrail.example.com", Addr: ":8080"}, "https://labtrail.example.com"},
		{config{WebhookURL: "https://lt.example.com:8443/api/v1/webhooks/gitlab", Addr: ":8080"}, "https://lt.example.com:8443"},
		{config{Addr: "127.0.0.1:8080"}, "http://127.0.0.1:8080"},
		{config{Addr: "[::1]:9000"}, "http://[::1]:9000"},
		{config{Addr: "localhost:8080"}, "http://localhost:8080"},
		{config{Addr: ":8080"}, ""},
		{config{Addr: "10.0.0.5:8080"}, ""},
	} {
		got, err := publicURL(&tc.c)
		if got != tc.want || (tc.want == "") != (err != nil) {
			t.Errorf("%+v: %q %v, want %q", tc.c, got, err, tc.want)
		}
	}
}

func TestEnableGitLabSigninSettings(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	sess := auth.NewSessions(nil, nil, false)
	for _, tc := range []struct {
		c       config
		wantErr string
	}{
		{config{}, ""},
		{config{OAuthClientID: "id", Addr: "127.0.0.1:1"}, "needs both"},
		{config{OAuthClientSecret: "s", Addr: "127.0.0.1:1"}, "needs both"},
		{config{OAuthClientID: "id", OAuthClientSecret: "s", Addr: ":8080", GitLabURL: "https://gitlab.example.com"}, "LABTRAIL_PUBLIC_URL"},
		{config{OAuthClientID: "id", OAuthClientSecret: "s", Addr: "127.0.0.1:1", GitLabURL: "gitlab.example.com"}, "not an http(s) URL"},
		{config{OAuthClientID: "id", OAuthClientSecret: "s", Addr: "127.0.0.1:1", GitLabURL: "https://gitlab.example.com"}, ""},
	} {
		err := enableGitLabSignin(server.New(nil, log), sess, &tc.c, log)
		if (tc.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%+v: %v, want %q", tc.c, err, tc.wantErr)
		}
	}
}

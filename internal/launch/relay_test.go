package launch

import (
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestRelay(t *testing.T) {
	now := func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }
	js := &Relay{Level: slog.LevelInfo, JSON: true, Now: now}
	txt := &Relay{Level: slog.LevelInfo}
	errOnly := &Relay{Level: slog.LevelError, JSON: true, Now: now}
	for _, c := range []struct {
		r      *Relay
		stream string
		in     string
		want   string // "" : dropped
	}{
		{js, "stderr", `{"time":"x","level":"INFO","msg":"hi"}`, `{"rank":3,"time":"x","level":"INFO","msg":"hi"}`},
		{js, "stderr", `{"time":"x","level":"INFO","msg":"hi","rank":3}`, `{"time":"x","level":"INFO","msg":"hi","rank":3}`},
		{js, "stderr", `{"time":"x","level":"DEBUG","msg":"hi"}`, ``},
		{errOnly, "stderr", `{"time":"x","level":"WARN","msg":"hi"}`, ``},
		{errOnly, "stderr", `{"time":"x","level":"ERROR","msg":"bad"}`, `{"rank":3,"time":"x","level":"ERROR","msg":"bad"}`},
		{errOnly, "stderr", `panic: boom`, ``},
		{errOnly, "stdout", `plain`, ``},
		{js, "stderr", `panic: "boom"`, `{"time":"2026-01-02T03:04:05Z","level":"WARN","msg":"panic: \"boom\"","rank":3,"stream":"stderr"}`},
		{js, "stdout", `plain`, `{"time":"2026-01-02T03:04:05Z","level":"INFO","msg":"plain","rank":3,"stream":"stdout"}`},
		{js, "stderr", `time=x level=ERROR msg=bad`, `{"time":"2026-01-02T03:04:05Z","level":"ERROR","msg":"time=x level=ERROR msg=bad","rank":3,"stream":"stderr"}`},
		{txt, "stderr", `time=x level=INFO msg=hi`, `time=x level=INFO msg=hi rank=3`},
		{txt, "stderr", `time=x level=INFO msg=hi rank=3`, `time=x level=INFO msg=hi rank=3`},
		{txt, "stderr", `time=x level=DEBUG msg=hi`, ``},
		{txt, "stdout", `plain`, `[rank 3] plain`},
		{txt, "stderr", `{"level":"INFO","msg":"hi"}`, `[rank 3] {"level":"INFO","msg":"hi"}`},
		{&Relay{}, "stdout", `plain`, `[rank 3] plain`},
	} {
		got := string(c.r.Line(3, c.stream, []byte(c.in)))
		want := c.want
		if want != "" {
			want += "\n"
		}
		if got != want {
			t.Errorf("json=%v level=%v %s %q:\n got %q\nwant %q", c.r.JSON, c.r.Level, c.stream, c.in, got, want)
		}
		if c.r.JSON && got != "" && !json.Valid([]byte(strings.TrimSpace(got))) {
			t.Errorf("%q: not JSON: %q", c.in, got)
		}
	}
}

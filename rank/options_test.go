package rank

import (
	"context"
	"log/slog"
	"strings"
	"testing"
)

// TestOptionsFromEnvLogger: the launcher's log settings reach the rank's
// Logger; a bad one is an error naming the variable.
func TestOptionsFromEnvLogger(t *testing.T) {
	t.Setenv(EnvLogLevel, "error")
	t.Setenv(EnvLogFormat, "json")
	o, err := OptionsFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	if o.Logger == nil || o.Logger.Enabled(context.Background(), slog.LevelWarn) || !o.Logger.Enabled(context.Background(), slog.LevelError) {
		t.Fatalf("logger does not filter at error: %v", o.Logger)
	}
	if _, ok := o.Logger.Handler().(*slog.JSONHandler); !ok {
		t.Fatalf("logger handler %T, want JSON", o.Logger.Handler())
	}
	t.Setenv(EnvLogFormat, "xml")
	if _, err := OptionsFromEnv(); err == nil || !strings.Contains(err.Error(), EnvLogFormat) {
		t.Fatalf("bad format: %v", err)
	}
	t.Setenv(EnvLogFormat, "")
	t.Setenv(EnvLogLevel, "")
	o, err = OptionsFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := o.Logger.Handler().(*slog.TextHandler); !ok || o.Logger.Enabled(context.Background(), slog.LevelDebug) {
		t.Fatalf("default logger: %T", o.Logger.Handler())
	}
}

// TestOptionsFromEnvFrameAuth: CUTPOINT_FRAME_AUTH=off turns frame tags
// off, on or unset keeps them, anything else is an error naming the
// variable.
func TestOptionsFromEnvFrameAuth(t *testing.T) {
	for v, off := range map[string]bool{"": false, "on": false, "off": true} {
		t.Setenv(EnvFrameAuth, v)
		o, err := OptionsFromEnv()
		if err != nil || o.FrameAuthOff != off {
			t.Errorf("%s=%q: FrameAuthOff %v, %v; want %v", EnvFrameAuth, v, o.FrameAuthOff, err, off)
		}
	}
	t.Setenv(EnvFrameAuth, "no")
	if _, err := OptionsFromEnv(); err == nil || !strings.Contains(err.Error(), EnvFrameAuth) {
		t.Errorf("%s=no: %v", EnvFrameAuth, err)
	}
}

// TestOptionsFromEnvMaxStaging: CUTPOINT_MAX_STAGING takes bytes or a
// size with KiB, MiB or GiB (also as a user's own setting for ranks it
// starts), 0 or unset is no bound, anything else is an error naming it.
func TestOptionsFromEnvMaxStaging(t *testing.T) {
	for v, want := range map[string]int64{"": 0, "0": 0, "4096": 4096, "3KiB": 3 << 10, "2MiB": 2 << 20, "12GiB": 12 << 30} {
		t.Setenv(EnvMaxStaging, v)
		o, err := OptionsFromEnv()
		if err != nil || o.MaxStaging != want {
			t.Errorf("%s=%q: MaxStaging %d, %v; want %d", EnvMaxStaging, v, o.MaxStaging, err, want)
		}
	}
	for _, v := range []string{"-1", "1TB", "GiB", "1.5GiB"} {
		t.Setenv(EnvMaxStaging, v)
		if _, err := OptionsFromEnv(); err == nil || !strings.Contains(err.Error(), EnvMaxStaging) {
			t.Errorf("%s=%q: %v", EnvMaxStaging, v, err)
		}
	}
}

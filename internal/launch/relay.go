package launch

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"time"
)

// Relay puts the output lines of rank processes into the launcher's log
// stream, so that one stream has one format and one level filter: the
// ranks log with the launcher's settings (rank.OptionsFromEnv reads them
// from CUTPOINT_LOG_LEVEL and CUTPOINT_LOG_FORMAT), and Relay
//
//   - drops a log line (slog text or JSON) below Level;
//   - passes a JSON log line on as JSON, with a "rank" field added when it
//     has none, and a text log line with rank=N appended when it has none;
//   - treats any other line (what a job prints itself, a panic) as a log
//     line of level INFO (stdout) or WARN (stderr): as a JSON object
//     {"time","level","msg","rank","stream"} in JSON mode, "[rank N] line"
//     in text mode.
//
// The zero Relay passes every line, text mode.
type Relay struct {
	Level slog.Level
	JSON  bool
	Now   func() time.Time // default time.Now
}

// Levels of the lines that are not log lines.
const (
	rawStdoutLevel = slog.LevelInfo
	rawStderrLevel = slog.LevelWarn
)

// Line returns what out gets for one line (without its newline) of rank's
// stream ("stdout" or "stderr"), newline included; nil drops it.
func (r *Relay) Line(rank int, stream string, line []byte) []byte {
	lvl, ok, isJSON := logLevel(line)
	if ok {
		if lvl < r.Level {
			return nil
		}
		switch {
		case isJSON && r.JSON:
			return withJSONRank(line, rank)
		case !isJSON && !r.JSON:
			if bytes.Contains(line, []byte(" rank=")) {
				return append(append([]byte{}, line...), '\n')
			}
			return fmt.Appendf(nil, "%s rank=%d\n", line, rank)
		}
		// A log line in the other format: carried as a raw line.
	} else {
		lvl = rawStderrLevel
		if stream == "stdout" {
			lvl = rawStdoutLevel
		}
		if lvl < r.Level {
			return nil
		}
	}
	if !r.JSON {
		return fmt.Appendf(nil, "[rank %d] %s\n", rank, line)
	}
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	b, _ := json.Marshal(struct {
		Time   string `json:"time"`
		Level  string `json:"level"`
		Msg    string `json:"msg"`
		Rank   int    `json:"rank"`
		Stream string `json:"stream"`
	}{now().Format(time.RFC3339Nano), lvl.String(), string(line), rank, stream})
	return append(b, '\n')
}

// logLevel recognises a slog line, JSON ({"time":...,"level":"INFO",...})
// or text (time=... level=INFO ...), and returns its level.
func logLevel(line []byte) (lvl slog.Level, ok, isJSON bool) {
	if len(line) > 0 && line[0] == '{' {
		var head struct {
			Level *string `json:"level"`
		}
		if json.Unmarshal(line, &head) != nil || head.Level == nil {
			return 0, false, false
		}
		if lvl.UnmarshalText([]byte(*head.Level)) != nil {
			return 0, false, false
		}
		return lvl, true, true
	}
	if !bytes.HasPrefix(line, []byte("time=")) {
		return 0, false, false
	}
	_, rest, found := bytes.Cut(line, []byte(" level="))
	if !found {
		return 0, false, false
	}
	if i := bytes.IndexByte(rest, ' '); i >= 0 {
		rest = rest[:i]
	}
	if lvl.UnmarshalText(rest) != nil {
		return 0, false, false
	}
	return lvl, true, false
}

// withJSONRank adds "rank":N to a JSON object that has no "rank" key.
func withJSONRank(line []byte, rank int) []byte {
	var keys map[string]json.RawMessage
	if json.Unmarshal(line, &keys) == nil {
		if _, has := keys["rank"]; has {
			return append(append([]byte{}, line...), '\n')
		}
	}
	out := append([]byte(`{"rank":`), strconv.Itoa(rank)...)
	body := bytes.TrimSpace(line[1:])
	if len(body) > 0 && body[0] != '}' {
		out = append(out, ',')
	}
	out = append(out, body...)
	return append(out, '\n')
}

// relayTo writes rank's line to out through r (nil: the zero Relay).
func relayTo(out io.Writer, r *Relay, rank int, stream string, line []byte) {
	if r == nil {
		r = &Relay{}
	}
	if b := r.Line(rank, stream, line); b != nil {
		_, _ = out.Write(b)
	}
}

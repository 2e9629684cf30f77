package rank

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// EnvSecrets says where the rank's secret variables are when they must not
// be on its command line: "stdin" (the --hosts spawner) means they come as
// NAME=VALUE lines on standard input, then EOF. Only the variables of
// stdinNameList are taken from there.
const EnvSecrets = "CUTPOINT_SECRETS"

// stdinNameList are the variables taken from standard input.
var stdinNameList = []string{EnvNATS, EnvNATSToken, EnvNATSPassword, EnvRankKeys, EnvJobKey}

var stdinNames = func() map[string]bool {
	m := map[string]bool{}
	for _, n := range stdinNameList {
		m[n] = true
	}
	return m
}()

const (
	maxSecrets  = 64 << 20 // rank keys take 43 bytes per rank of the world
	secretsWait = 30 * time.Second
)

var (
	secretsOnce sync.Once
	secretsVals map[string]string
	secretsErr  error
)

// stdinSecrets reads the secrets once (standard input can be read only
// once), bounded in size and time.
func stdinSecrets() (map[string]string, error) {
	secretsOnce.Do(func() {
		type res struct {
			b   []byte
			err error
		}
		ch := make(chan res, 1)
		go func() {
			b, err := io.ReadAll(io.LimitReader(os.Stdin, maxSecrets+1))
			ch <- res{b, err}
		}()
		select {
		case r := <-ch:
			secretsVals, secretsErr = parseSecrets(r.b, r.err)
		case <-time.After(secretsWait):
			secretsErr = fmt.Errorf("%s=stdin: standard input not closed within %v", EnvSecrets, secretsWait)
		}
	})
	return secretsVals, secretsErr
}

func parseSecrets(b []byte, readErr error) (map[string]string, error) {
	if readErr != nil {
		return nil, fmt.Errorf("%s=stdin: %w", EnvSecrets, readErr)
	}
	if len(b) > maxSecrets {
		return nil, fmt.Errorf("%s=stdin: more than %d bytes on standard input", EnvSecrets, maxSecrets)
	}
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 4096), maxSecrets)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" {
			continue
		}
		name, val, ok := strings.Cut(line, "=")
		if !ok || !stdinNames[name] {
			// The value is a secret: name the line, never print it.
			return nil, fmt.Errorf("%s=stdin: line %d: want NAME=VALUE, NAME one of %s", EnvSecrets, n, strings.Join(stdinNameList, ", "))
		}
		out[name] = val
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s=stdin: %w", EnvSecrets, err)
	}
	if len(out) == 0 {
		return nil, errors.New(EnvSecrets + "=stdin but standard input held no secret: the spawn template must forward stdin, which ssh -n does not")
	}
	return out, nil
}

package rank

import (
	"strings"
	"testing"

	"github.com/cutpoint/cutpoint/internal/wire"
)

// TestOptionsFromEnvKeys: a rank's own keys (per-rank launchers) or the job
// key (worlds of one environment) become Options.Keys for the rank the
// environment names; keys of another rank, or malformed ones, are an
// error naming the variable and never showing the value.
func TestOptionsFromEnvKeys(t *testing.T) {
	k := wire.NewJobKey()
	t.Setenv(EnvRank, "2")
	t.Setenv(EnvWorld, "4")
	t.Setenv(EnvRankKeys, k.RankKeys(2, 4).Encode())
	o, err := OptionsFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	if o.Keys == nil || o.Keys.Report != k.ReportKey(2) {
		t.Fatalf("rank keys not read: %v", o.Keys)
	}
	if p, ok := o.Keys.PairKey(3); !ok || p != k.PairKey(2, 3) {
		t.Fatalf("pair key of 2 and 3 not read")
	}
	t.Setenv(EnvRankKeys, k.RankKeys(1, 4).Encode())
	if _, err := OptionsFromEnv(); err == nil || !strings.Contains(err.Error(), EnvRankKeys) {
		t.Fatalf("rank 1's keys given to rank 2: %v", err)
	}
	t.Setenv(EnvRankKeys, "")
	t.Setenv(EnvJobKey, k.Hex())
	o, err = OptionsFromEnv()
	if err != nil || o.Keys == nil || o.Keys.Report != k.ReportKey(2) {
		t.Fatalf("job key: %v, %v", o.Keys, err)
	}
	t.Setenv(EnvJobKey, "zz"+k.Hex()[2:])
	if _, err := OptionsFromEnv(); err == nil || !strings.Contains(err.Error(), EnvJobKey) || strings.Contains(err.Error(), k.Hex()[2:]) {
		t.Fatalf("a malformed job key: %v", err)
	}
	got, err := parseSecrets([]byte(EnvRankKeys+"=abc\n"+EnvJobKey+"=def\n"), nil)
	if err != nil || got[EnvRankKeys] != "abc" || got[EnvJobKey] != "def" {
		t.Fatalf("keys on standard input: %v, %v", got, err)
	}
}

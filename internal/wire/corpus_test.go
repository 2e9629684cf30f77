package wire

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

var updateCorpus = flag.Bool("update-corpus", false, "rewrite the committed fuzz seed corpus under testdata/fuzz")

// TestSeedCorpus keeps the committed seed corpus in step with the encoders:
// every seed file must exist (run with -update-corpus to write them).
func TestSeedCorpus(t *testing.T) {
	seeds := map[string][][]byte{
		"FuzzDecodeFrame": {
			AppendData(nil, Data{G: 1, Seq: 1, Step: 0, Payload: []byte("x")}),
			AppendData(nil, Data{G: 7, Seq: 1 << 40, Step: 1 << 33}),
			EncodeMarker(Marker{G: 2, Epoch: 3, Step: 4, Sent: 5}),
		},
		"FuzzDecodeShardMeta": {EncodeShardMeta(sampleMeta())},
	}
	for _, m := range sampleRankMsgs() {
		seeds["FuzzDecodeRank"] = append(seeds["FuzzDecodeRank"], EncodeRank(m))
	}
	for _, m := range sampleCoordMsgs() {
		seeds["FuzzDecodeCoord"] = append(seeds["FuzzDecodeCoord"], EncodeCoord(m))
	}
	rec, err := EncodeJobRecord(JobRecord{Job: "heat2d", World: 4, Seq: 9, Generation: 3, Incarnation: 4, EpochLimit: 3072,
		Recovery: &RecoveryIntent{Epoch: 2050, Step: 120, Lost: []int{0, 3}}})
	if err != nil {
		t.Fatal(err)
	}
	seeds["FuzzDecodeJobRecord"] = [][]byte{rec}
	for target, list := range seeds {
		for i, b := range list {
			path := filepath.Join("testdata", "fuzz", target, fmt.Sprintf("seed-%02d", i))
			want := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
			if *updateCorpus {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			got, err := os.ReadFile(path)
			if err != nil || string(got) != want {
				t.Errorf("%s is missing or stale (run go test -run TestSeedCorpus -update-corpus): %v", path, err)
			}
		}
	}
}

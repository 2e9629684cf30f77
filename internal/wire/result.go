package wire

import "fmt"

// KindResult marks a rank's job result (request/reply on the job's result
// subject, outside the protocol machines: the coordinator driver keeps the
// result of the incarnation that finished the job).
const KindResult byte = 0x40

// MaxResultLen bounds a job result (a digest, a small summary).
const MaxResultLen = 4096

// Result is the answer a rank's job reported when it finished, at
// incarnation G.
type Result struct {
	Rank int
	G    uint64
	Data []byte
}

// EncodeResult encodes r; Data over MaxResultLen is an error.
func EncodeResult(r Result) ([]byte, error) {
	if len(r.Data) > MaxResultLen {
		return nil, fmt.Errorf("wire: result of %d bytes > %d: %w", len(r.Data), MaxResultLen, ErrTooLarge)
	}
	if r.Rank < 0 || r.Rank >= MaxWorld {
		return nil, fmt.Errorf("wire: result of rank %d: %w", r.Rank, ErrMalformed)
	}
	b := []byte{Version, KindResult}
	b = putRank(b, r.Rank)
	b = putU(b, r.G)
	return putBytes(b, r.Data), nil
}

// DecodeResult decodes a result; anything malformed or oversized is an
// error.
func DecodeResult(b []byte) (Result, error) {
	kind, rd, err := header(b, MaxResultLen+32)
	if err != nil {
		return Result{}, err
	}
	if kind != KindResult {
		return Result{}, fmt.Errorf("wire: kind 0x%02x is not a result: %w", kind, ErrUnknownKind)
	}
	r := Result{Rank: rd.rank("rank"), G: rd.uvarint("g"), Data: rd.bytesField("data", MaxResultLen)}
	if err := rd.done(); err != nil {
		return Result{}, err
	}
	return r, nil
}

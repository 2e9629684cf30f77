package launch

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// PlacementRecord is what a coordinator's placement changed: hosts it
// marked down and ranks it moved off their block placement. A coordinator
// keeps it in the store (coordinator/driver: placement.json) so that one
// taking the job over (coordinator --standby, --rejoin) with the same
// --hosts finds the ranks where they are and does not try a dead host
// again.
type PlacementRecord struct {
	Format     int    `json:"format"`
	Job        string `json:"job"`
	Generation uint64 `json:"generation"` // the coordinator generation that wrote it
	// Down: the hosts marked down, with why.
	Down []DownHost `json:"down,omitempty"`
	// Moved: the ranks that run elsewhere than their block placement.
	Moved []MovedRank `json:"moved,omitempty"`
}

// DownHost is a host marked down and why.
type DownHost struct {
	Host   string `json:"host"`
	Reason string `json:"reason,omitempty"`
}

// MovedRank is a rank placed on Host instead of its block placement.
type MovedRank struct {
	Rank int    `json:"rank"`
	Host string `json:"host"`
}

// Bounds of a placement record (it is read from the store: hostile).
const (
	PlacementFormat    = 1
	MaxPlacementBytes  = 1 << 20 // the store's job file limit
	maxPlacementHosts  = 1 << 16
	maxPlacementRanks  = 1 << 20
	maxHostName        = 255
	maxDownReason      = 512
	maxPlacementJobLen = 255
	maxSkipped         = 8
)

// ErrBadPlacement wraps every error of DecodePlacement.
var ErrBadPlacement = errors.New("launch: bad placement record")

// EncodePlacement encodes r; a record over MaxPlacementBytes (a huge world
// with many moves) is an error, and the caller keeps no record.
func EncodePlacement(r PlacementRecord) ([]byte, error) {
	r.Format = PlacementFormat
	for i := range r.Down {
		if len(r.Down[i].Reason) > maxDownReason {
			r.Down[i].Reason = r.Down[i].Reason[:maxDownReason]
		}
	}
	if err := r.check(); err != nil {
		return nil, err
	}
	b, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	if len(b) > MaxPlacementBytes {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrBadPlacement, len(b), MaxPlacementBytes)
	}
	return b, nil
}

// DecodePlacement decodes and checks a placement record read from the
// store: size, format, names, counts, no rank or host twice.
func DecodePlacement(b []byte) (PlacementRecord, error) {
	var r PlacementRecord
	if len(b) > MaxPlacementBytes {
		return r, fmt.Errorf("%w: %d bytes, limit %d", ErrBadPlacement, len(b), MaxPlacementBytes)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return PlacementRecord{}, fmt.Errorf("%w: %v", ErrBadPlacement, err)
	}
	if err := r.check(); err != nil {
		return PlacementRecord{}, err
	}
	if len(r.Down) == 0 {
		r.Down = nil
	}
	if len(r.Moved) == 0 {
		r.Moved = nil
	}
	return r, nil
}

func (r *PlacementRecord) check() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrBadPlacement, fmt.Sprintf(format, args...))
	}
	if r.Format != PlacementFormat {
		return bad("format %d, want %d", r.Format, PlacementFormat)
	}
	if !validJobName(r.Job) {
		return bad("job name %q", trunc(r.Job))
	}
	if r.Generation == 0 {
		return bad("generation 0")
	}
	if len(r.Down) > maxPlacementHosts {
		return bad("%d hosts down, limit %d", len(r.Down), maxPlacementHosts)
	}
	if len(r.Moved) > maxPlacementRanks {
		return bad("%d ranks moved, limit %d", len(r.Moved), maxPlacementRanks)
	}
	down := make(map[string]bool, len(r.Down))
	for _, d := range r.Down {
		if !validHostName(d.Host) {
			return bad("down host %q", trunc(d.Host))
		}
		if down[d.Host] {
			return bad("host %q down twice", d.Host)
		}
		if len(d.Reason) > maxDownReason {
			return bad("host %q: reason of %d bytes, limit %d", d.Host, len(d.Reason), maxDownReason)
		}
		down[d.Host] = true
	}
	ranks := make(map[int]bool, len(r.Moved))
	for _, m := range r.Moved {
		if m.Rank < 0 || m.Rank >= maxPlacementRanks {
			return bad("rank %d out of 0..%d", m.Rank, maxPlacementRanks-1)
		}
		if ranks[m.Rank] {
			return bad("rank %d moved twice", m.Rank)
		}
		if !validHostName(m.Host) {
			return bad("rank %d: host %q", m.Rank, trunc(m.Host))
		}
		if down[m.Host] {
			return bad("rank %d moved to host %q, which is down", m.Rank, m.Host)
		}
		ranks[m.Rank] = true
	}
	return nil
}

// validJobName: the characters a job name may have (internal/jobname
// checks the rest where the job is named; the reader compares the
// record's name with its own job's).
func validJobName(j string) bool {
	if j == "" || len(j) > maxPlacementJobLen || j[0] == '.' {
		return false
	}
	for _, c := range j {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func validHostName(h string) bool {
	return h != "" && len(h) <= maxHostName && safeWord(h) && !strings.HasPrefix(h, "-")
}

func trunc(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// Record returns what the placement changed: the hosts down and the ranks
// off their block placement (Job and Generation left to the caller).
func (p *Placement) Record() PlacementRecord {
	var r PlacementRecord
	for _, h := range p.hosts {
		if h.down {
			r.Down = append(r.Down, DownHost{Host: h.Name, Reason: h.reason})
		}
	}
	for rank, h := range p.assign {
		if h != p.home[rank] {
			r.Moved = append(r.Moved, MovedRank{Rank: rank, Host: p.hosts[h].Name})
		}
	}
	return r
}

// Adopt applies a record another coordinator of the job left: its down
// hosts are down here too (never tried again), its moved ranks are placed
// where they run. Entries that do not fit this placement (a host not in
// this list, a rank beyond the world, a host without a free slot) are left
// out, and named in the returned summary of what was not adopted.
func (p *Placement) Adopt(r PlacementRecord) (skipped []string) {
	n := 0
	skip := func(format string, args ...any) {
		// Bounded: a record may list a million ranks.
		if n++; n <= maxSkipped {
			skipped = append(skipped, fmt.Sprintf(format, args...))
		}
	}
	for _, d := range r.Down {
		i, ok := p.index[d.Host]
		if !ok {
			skip("host %s (down) is not in --hosts", d.Host)
			continue
		}
		if !p.hosts[i].down {
			p.hosts[i].down = true
			p.hosts[i].reason = fmt.Sprintf("down since coordinator generation %d: %s", r.Generation, d.Reason)
		}
	}
	for _, m := range r.Moved {
		i, ok := p.index[m.Host]
		switch {
		case m.Rank >= len(p.assign):
			skip("rank %d is beyond the world", m.Rank)
		case !ok:
			skip("rank %d: host %s is not in --hosts", m.Rank, m.Host)
		case p.assign[m.Rank] == i:
		case p.hosts[i].down:
			skip("rank %d: host %s is down", m.Rank, m.Host)
		case p.hosts[i].used >= p.hosts[i].Slots:
			skip("rank %d: host %s has no free slot", m.Rank, m.Host)
		default:
			p.hosts[p.assign[m.Rank]].used--
			p.hosts[i].used++
			p.assign[m.Rank] = i
		}
	}
	if n > maxSkipped {
		skipped = append(skipped, fmt.Sprintf("and %d more", n-maxSkipped))
	}
	return skipped
}

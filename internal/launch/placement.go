package launch

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// ErrNoSlot: a rank must be (re)started but no live host has a free slot.
var ErrNoSlot = errors.New("launch: no free slot on a live host")

// Host is a host of a --hosts list and its number of slots (ranks it can
// run at once).
type Host struct {
	Name  string
	Slots int
}

// ParseHosts parses "h1:4,h2:4,h3" (slots default to 1). Names must be
// unique and safe to put in a command line unquoted (letters, digits and
// ". _ - @ %" , as host names, ssh destinations and netns names are).
func ParseHosts(s string) ([]Host, error) {
	var hosts []Host
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, n, hasSlots := strings.Cut(part, ":")
		slots := 1
		if hasSlots {
			v, err := strconv.Atoi(n)
			if err != nil || v < 1 || v > 1<<16 {
				return nil, fmt.Errorf("host %q: slots %q: want a number 1..65536", name, n)
			}
			slots = v
		}
		if name == "" || !safeWord(name) || strings.HasPrefix(name, "-") {
			return nil, fmt.Errorf("host %q: want a name of letters, digits and . _ - @ %%", name)
		}
		if seen[name] {
			return nil, fmt.Errorf("host %q listed twice", name)
		}
		seen[name] = true
		hosts = append(hosts, Host{Name: name, Slots: slots})
	}
	if len(hosts) == 0 {
		return nil, errors.New("no hosts given (want h1:SLOTS,h2:SLOTS,...)")
	}
	return hosts, nil
}

// Placement decides which host runs each rank. It is pure (no processes,
// no clocks): the Hosts spawner tells it what starts and ends.
//
// Ranks fill the hosts in order (block placement: ranks 0..s0-1 on the
// first host, and so on); slots beyond the ranks are spares. A host is
// down once every process running on it was lost (ended without being
// killed by the launcher) and none left it with exit 0, or a start on it
// failed; a down host takes no
// rank again. A lost rank restarts in its own slot while its host is up,
// else in the first free slot of a host that is up.
type Placement struct {
	hosts   []hostState
	index   map[string]int
	assign  []int // rank -> host index
	home    []int // rank -> host index of the block placement
	running map[procKey]int
}

type hostState struct {
	Host
	down   bool
	reason string
	used   int // ranks assigned
	live   int // processes running
	// left: a process on it ended with exit 0 (its job over). Later
	// losses there do not take it down: a rank that dies after the
	// others left (killed during its final flush) is no sign of the host.
	left bool
}

type procKey struct {
	rank  int
	spawn uint64
}

// NewPlacement places ranks on hosts in block order; it fails when the
// hosts have fewer slots than ranks.
func NewPlacement(hosts []Host, ranks int) (*Placement, error) {
	p := &Placement{index: map[string]int{}, assign: make([]int, ranks), running: map[procKey]int{}}
	total := 0
	for i, h := range hosts {
		p.hosts = append(p.hosts, hostState{Host: h})
		p.index[h.Name] = i
		total += h.Slots
	}
	if total < ranks {
		return nil, fmt.Errorf("the hosts have %d slots for %d ranks", total, ranks)
	}
	h := 0
	for r := range ranks {
		for p.hosts[h].used == p.hosts[h].Slots {
			h++
		}
		p.assign[r] = h
		p.hosts[h].used++
	}
	p.home = slices.Clone(p.assign)
	return p, nil
}

// HostOf returns the host rank is assigned to.
func (p *Placement) HostOf(rank int) string { return p.hosts[p.assign[rank]].Name }

// Place returns the host rank must start on: its own while that host is
// up, else the first free slot on a host that is up (the rank moves
// there). ErrNoSlot when there is none.
func (p *Placement) Place(rank int) (string, error) {
	cur := &p.hosts[p.assign[rank]]
	if !cur.down {
		return cur.Name, nil
	}
	for i := range p.hosts {
		h := &p.hosts[i]
		if !h.down && h.used < h.Slots {
			cur.used--
			h.used++
			p.assign[rank] = i
			return h.Name, nil
		}
	}
	return "", fmt.Errorf("rank %d: %w (%s)", rank, ErrNoSlot, p.Summary())
}

// Started records that rank's process spawn runs on host.
func (p *Placement) Started(rank int, spawn uint64, host string) {
	i, ok := p.index[host]
	if !ok {
		return
	}
	p.running[procKey{rank, spawn}] = i
	p.hosts[i].live++
}

// Ended records that rank's process spawn ended; lost when the launcher
// did not kill it. It returns the host it ran on and whether that host is
// now down (every process on it lost).
func (p *Placement) Ended(rank int, spawn uint64, lost bool) (host string, down bool) {
	k := procKey{rank, spawn}
	i, ok := p.running[k]
	if !ok {
		return "", false
	}
	delete(p.running, k)
	h := &p.hosts[i]
	h.live--
	if lost && h.live == 0 && !h.down && !h.left {
		h.down = true
		h.reason = "all its ranks were lost"
		return h.Name, true
	}
	return h.Name, false
}

// Left records that rank's process spawn ended with exit 0, as a rank
// does once its job is over: it is Ended, not lost, and the host it ran on
// stays up whatever its other processes do from then on.
func (p *Placement) Left(rank int, spawn uint64) string {
	if i, ok := p.running[procKey{rank, spawn}]; ok {
		p.hosts[i].left = true
	}
	host, _ := p.Ended(rank, spawn, false)
	return host
}

// StartFailed records that starting a process on host failed: the host
// is down.
func (p *Placement) StartFailed(host, why string) {
	if i, ok := p.index[host]; ok && !p.hosts[i].down {
		p.hosts[i].down = true
		p.hosts[i].reason = "a start failed: " + why
	}
}

// Down says whether host is down, and why.
func (p *Placement) Down(host string) (bool, string) {
	i, ok := p.index[host]
	if !ok {
		return false, ""
	}
	return p.hosts[i].down, p.hosts[i].reason
}

// Live returns the number of processes running on host.
func (p *Placement) Live(host string) int {
	if i, ok := p.index[host]; ok {
		return p.hosts[i].live
	}
	return 0
}

// Summary describes every host: "a 2/2, b down (all its ranks were lost), c 1/2".
func (p *Placement) Summary() string {
	parts := make([]string, len(p.hosts))
	for i, h := range p.hosts {
		if h.down {
			parts[i] = fmt.Sprintf("%s down (%s)", h.Name, h.reason)
		} else {
			parts[i] = fmt.Sprintf("%s %d/%d slots used", h.Name, h.used, h.Slots)
		}
	}
	return strings.Join(parts, ", ")
}

// Package levels holds a job's multi-level checkpoint settings: the
// node-local directory template (L1), the redundancy across hosts (L2, a
// partner copy) and how often cuts are flushed to the shared store (L3);
// which host is a host's partner; and the record of these settings in the
// store (job file levels.json), so that a restore finds them; and the
// choice of a new partner when a copy to the partner fails (Partners, a
// pure machine), and of another host for an erasure fragment whose host
// fails (Fragments, likewise). It decides nothing else at run time: the rank writes the
// levels, the coordinator driver records which ones hold each cut.
package levels

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/cutpoint/cutpoint/internal/launch"
)

// Redundancy values.
const (
	RedundancyNone    = "none"
	RedundancyPartner = "partner"
)

// HostToken in Config.Local is replaced by the rank's host name.
const HostToken = "{host}"

// Environment variables the launcher sets for every rank of a multi-level
// job.
const (
	EnvLocal      = "CUTPOINT_LOCAL"       // node-local directory template
	EnvRedundancy = "CUTPOINT_REDUNDANCY"  // none or partner
	EnvFlushEvery = "CUTPOINT_FLUSH_EVERY" // flush to the shared store every N epochs
	EnvHostList   = "CUTPOINT_HOST_LIST"   // the --hosts list, for the partner
	// EnvBandwidth bounds the bandwidth of a rank's copies to other hosts
	// and of its flushes to the shared store, in MiB/s.
	EnvBandwidth = "CUTPOINT_REDUNDANCY_BANDWIDTH"
	// EnvFlushOnly, set to a committed epoch, makes a rank process flush
	// its shard of that cut to the shared store and leave, taking no part
	// in the job: the coordinator starts one in place of a rank that died
	// during the final flush of a finished job (rank.FlushOnly).
	EnvFlushOnly = "CUTPOINT_FLUSH_ONLY"
)

// RecordFile is the job file recording a job's levels in the shared store.
const RecordFile = "levels.json"

// Config is a job's level settings. The zero value is a single-level job
// (every cut in the shared store).
type Config struct {
	// Local is the node-local directory, "{host}" replaced by the rank's
	// host name; empty: no node-local level.
	Local string `json:"local"`
	// Redundancy is none (or empty), partner, or rs:K+M (erasure
	// fragments on K+M other hosts).
	Redundancy string `json:"redundancy,omitempty"`
	// FlushEvery: a cut whose epoch is a multiple of it also goes to the
	// shared store (1: every cut). Only with a partner copy: without one
	// every cut goes to the shared store (a local copy alone does not
	// survive the loss of its host).
	FlushEvery int `json:"flush_every,omitempty"`
	// Hosts is the --hosts list ("a:2,b:2") the partner is chosen from.
	Hosts string `json:"hosts,omitempty"`
	// World is the number of ranks (for the block placement).
	World int `json:"world,omitempty"`
	// Bandwidth bounds, in MiB/s, what each rank's copies to other hosts
	// and flushes to the shared store take (0: no bound).
	Bandwidth float64 `json:"bandwidth_mibps,omitempty"`
}

// Enabled says whether the job has a node-local level.
func (c Config) Enabled() bool { return c.Local != "" }

// Partner says whether shards get a partner copy.
func (c Config) Partner() bool { return c.Redundancy == RedundancyPartner }

// Erasure returns K and M of --redundancy rs:K+M (ok false otherwise or
// when malformed; Check says what is wrong).
func (c Config) Erasure() (k, m int, ok bool) {
	v, found := strings.CutPrefix(c.Redundancy, "rs:")
	if !found {
		return 0, 0, false
	}
	ks, ms, found := strings.Cut(v, "+")
	k, err1 := strconv.Atoi(ks)
	m, err2 := strconv.Atoi(ms)
	if !found || err1 != nil || err2 != nil || k < 1 || k > 32 || m < 1 || m > 16 {
		return 0, 0, false
	}
	return k, m, true
}

// ErasureHosts returns the K+M hosts that hold the erasure fragments of
// the shards written on host, each host's first choice (fragment i on the
// i-th): the first K+M of ErasureOrder. Copies go over the network to a
// rank on each of them, so a host without ranks (a spare) is taken last.
func (c Config) ErasureHosts(host string) ([]string, error) {
	k, m, ok := c.Erasure()
	if !ok {
		return nil, fmt.Errorf("--redundancy %q is not rs:K+M", c.Redundancy)
	}
	order, err := c.ErasureOrder(host)
	if err != nil {
		return nil, err
	}
	if len(order) < k+m {
		return nil, fmt.Errorf("--redundancy rs:%d+%d needs %d hosts besides the writer's, the host list %q has %d", k, m, k+m, c.Hosts, len(order))
	}
	return order[:k+m], nil
}

// ErasureOrder lists every host of the list but host, in the order its
// erasure fragments take them: the hosts the ranks start on (block
// placement of the --hosts list) after host, cyclically, then the other
// hosts of the list (spares) after host, cyclically. The first K+M are
// the first choices (ErasureHosts); the others take a fragment in place
// of a first choice that does not answer (Fragments).
func (c Config) ErasureOrder(host string) ([]string, error) {
	r, err := c.ring()
	if err != nil {
		return nil, err
	}
	if !containsStr(r.all, host) {
		return nil, fmt.Errorf("host %q is not in the host list %q", host, c.Hosts)
	}
	out := make([]string, 0, len(r.all)-1)
	for _, list := range [][]string{r.ranks, r.all} {
		i := slices.Index(list, host)
		for j := 1; j <= len(list); j++ {
			if h := list[(i+j)%len(list)]; h != host && !containsStr(out, h) {
				out = append(out, h)
			}
		}
	}
	return out, nil
}

// Redundant says whether shards get a copy on other hosts (partner or
// erasure fragments).
func (c Config) Redundant() bool {
	_, _, rs := c.Erasure()
	return c.Partner() || rs
}

// Check validates the settings; a partner copy needs a second host.
func (c Config) Check() error {
	if c.World < 0 || c.World > 1<<20 {
		return fmt.Errorf("world size %d out of range", c.World)
	}
	if !(c.Bandwidth >= 0 && c.Bandwidth <= 1<<20) {
		return fmt.Errorf("--redundancy-bandwidth %v MiB/s: want 0 (no bound) to %d", c.Bandwidth, 1<<20)
	}
	if !c.Enabled() {
		if c.Redundancy != "" && c.Redundancy != RedundancyNone {
			return fmt.Errorf("--redundancy %s needs --local (the node-local level it protects)", c.Redundancy)
		}
		if c.FlushEvery > 1 {
			return errors.New("--flush-every needs --local and a --redundancy other than none")
		}
		return nil
	}
	_, _, rs := c.Erasure()
	switch {
	case c.Redundancy == "" || c.Redundancy == RedundancyNone || c.Redundancy == RedundancyPartner || rs:
	default:
		return fmt.Errorf("--redundancy %q: want none, partner or rs:K+M (1 <= K <= 32, 1 <= M <= 16)", c.Redundancy)
	}
	if c.FlushEvery < 0 {
		return fmt.Errorf("--flush-every %d: must be >= 1", c.FlushEvery)
	}
	if strings.Count(c.Local, HostToken) == 0 && c.Redundant() {
		return fmt.Errorf("--local %s: a copy on another host needs %s in the directory (hosts of a test share a file system; on a cluster the directory is node-local)", c.Local, HostToken)
	}
	if rs {
		r, err := c.ring()
		if err != nil {
			return err
		}
		k, m, _ := c.Erasure()
		if len(r.all)-1 < k+m {
			return fmt.Errorf("--redundancy %s: the fragments go to %d hosts other than the writer's; --hosts %q has %d hosts", c.Redundancy, k+m, c.Hosts, len(r.all))
		}
	}
	if c.Partner() {
		ring, err := c.ring()
		if err != nil {
			return err
		}
		if len(ring.all) < 2 {
			return fmt.Errorf("--redundancy partner: the job runs on one host (%s); a partner copy must be on another host: give --hosts with two or more (under --spawn srun: an allocation of two or more nodes), or --redundancy none", c.Hosts)
		}
	}
	return nil
}

// Flush says whether the cut of epoch goes to the shared store although it
// has a partner copy.
func (c Config) Flush(epoch uint64) bool {
	if !c.Redundant() {
		return true
	}
	return c.FlushEvery <= 1 || epoch%uint64(c.FlushEvery) == 0
}

// Dir is the node-local directory of host.
func (c Config) Dir(host string) string { return strings.ReplaceAll(c.Local, HostToken, host) }

type ring struct {
	all   []string // every host, in --hosts order
	ranks []string // the hosts block placement puts ranks on at launch
}

func (c Config) ring() (ring, error) {
	var r ring
	if c.Hosts == "" {
		return r, nil
	}
	hosts, err := launch.ParseHosts(c.Hosts)
	if err != nil {
		return r, fmt.Errorf("hosts: %w", err)
	}
	for _, h := range hosts {
		r.all = append(r.all, h.Name)
	}
	world := c.World
	if world <= 0 {
		world = 1
	}
	pl, err := launch.NewPlacement(hosts, world)
	if err != nil {
		return r, fmt.Errorf("hosts: %w", err)
	}
	seen := map[string]bool{}
	for i := range world {
		if h := pl.HostOf(i); !seen[h] {
			seen[h] = true
			r.ranks = append(r.ranks, h)
		}
	}
	return r, nil
}

// PartnerOf returns the host that holds the partner copies of the shards
// written on host: among the hosts the ranks start on (block placement of
// the --hosts list), the next one after host, cyclically, so with
// --hosts a:2,b:2 a's copies are on b and b's on a; a spare host's go to
// the first such host after it in the list. Never host itself: when no
// other host takes ranks, the next host of the list.
func (c Config) PartnerOf(host string) (string, error) {
	r, err := c.ring()
	if err != nil {
		return "", err
	}
	pos := func(list []string) int {
		for i, h := range list {
			if h == host {
				return i
			}
		}
		return -1
	}
	if i := pos(r.ranks); i >= 0 && len(r.ranks) > 1 {
		return r.ranks[(i+1)%len(r.ranks)], nil
	}
	i := pos(r.all)
	if i < 0 {
		return "", fmt.Errorf("host %q is not in the host list %q", host, c.Hosts)
	}
	inRing := map[string]bool{}
	for _, h := range r.ranks {
		inRing[h] = true
	}
	for k := 1; k < len(r.all); k++ {
		if h := r.all[(i+k)%len(r.all)]; inRing[h] && h != host {
			return h, nil
		}
	}
	if len(r.all) > 1 {
		return r.all[(i+1)%len(r.all)], nil
	}
	return "", fmt.Errorf("host %q: no other host for a partner copy", host)
}

// PartnerOrder lists the hosts that may hold the partner copies of the
// shards written on host, in the order a rank tries them: the ring's first
// choice (PartnerOf), then the other hosts the ranks start on, cyclically
// after it, then the remaining hosts of the list (spares, which hold
// copies only once ranks moved there), cyclically after host. Each host
// once, never host itself.
func (c Config) PartnerOrder(host string) ([]string, error) {
	first, err := c.PartnerOf(host)
	if err != nil {
		return nil, err
	}
	r, err := c.ring()
	if err != nil {
		return nil, err
	}
	out := []string{first}
	for _, list := range [][]string{after(r.ranks, first), after(r.all, host)} {
		for _, h := range list {
			if h != host && !containsStr(out, h) {
				out = append(out, h)
			}
		}
	}
	return out, nil
}

// after returns list rotated to start after h (from its start when h is
// not in it).
func after(list []string, h string) []string {
	i := slices.Index(list, h) + 1
	return append(slices.Clone(list[i:]), list[:i]...)
}

// ReadOrder lists the hosts whose node-local directories a rank on host
// looks in for its shard, in order: its own, then the hosts its partner
// copies may have gone to, in PartnerOrder (the first choice first), then
// any other host of the list (a rank that moved finds the copies it
// left). A directory that is not reachable from host is simply not there.
func (c Config) ReadOrder(host string) []string {
	out := []string{host}
	if p, err := c.PartnerOrder(host); err == nil {
		out = append(out, p...)
	}
	r, _ := c.ring()
	for _, h := range r.all {
		if !containsStr(out, h) {
			out = append(out, h)
		}
	}
	return out
}

// Glob lists the node-local directories that exist, for tools run where
// every host's directory is visible (or one, when Local has no {host}).
func (c Config) Glob() ([]string, error) {
	if !strings.Contains(c.Local, HostToken) {
		return []string{c.Local}, nil
	}
	return filepath.Glob(strings.ReplaceAll(c.Local, HostToken, "*"))
}

func containsStr(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Env is the environment a rank of the job gets (nothing for a
// single-level job).
func (c Config) Env() []string {
	if !c.Enabled() {
		return nil
	}
	red := c.Redundancy
	if red == "" {
		red = RedundancyNone
	}
	env := []string{EnvLocal + "=" + c.Local, EnvRedundancy + "=" + red,
		EnvFlushEvery + "=" + strconv.Itoa(max(c.FlushEvery, 1)), EnvHostList + "=" + c.Hosts}
	if c.Bandwidth > 0 {
		env = append(env, EnvBandwidth+"="+strconv.FormatFloat(c.Bandwidth, 'g', -1, 64))
	}
	return env
}

// FromEnv reads Env's variables (world: the job's number of ranks).
func FromEnv(getenv func(string) string, world int) (Config, error) {
	c := Config{Local: getenv(EnvLocal), Redundancy: getenv(EnvRedundancy), Hosts: getenv(EnvHostList), World: world}
	if v := getenv(EnvFlushEvery); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return c, fmt.Errorf("%s=%q: want a number >= 1", EnvFlushEvery, v)
		}
		c.FlushEvery = n
	}
	if v := getenv(EnvBandwidth); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return c, fmt.Errorf("%s=%q: want MiB/s", EnvBandwidth, v)
		}
		c.Bandwidth = f
	}
	if err := c.Check(); err != nil {
		return c, err
	}
	return c, nil
}

// MaxRecordLen bounds the record's size.
const MaxRecordLen = 4096

// Encode returns the record's bytes.
func (c Config) Encode() []byte {
	b, _ := json.MarshalIndent(c, "", "  ")
	return append(b, '\n')
}

// Decode reads a record (bounded, no unknown keys) and checks it.
func Decode(b []byte) (Config, error) {
	var c Config
	if len(b) > MaxRecordLen {
		return c, fmt.Errorf("%s: %d bytes, limit %d", RecordFile, len(b), MaxRecordLen)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("%s: %w", RecordFile, err)
	}
	if dec.More() {
		return c, fmt.Errorf("%s: trailing data", RecordFile)
	}
	if err := c.Check(); err != nil {
		return c, fmt.Errorf("%s: %w", RecordFile, err)
	}
	return c, nil
}

package ckpt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cutpoint/cutpoint/ckpt/backend"
	"github.com/cutpoint/cutpoint/internal/pause"
)

// The job lease: exactly one owner (a coordinator, or a store tool such as
// `cutpoint rm`) acts on a job at a time. It is built from what every
// POSIX file system gives, also one shared by several hosts: exclusive
// create, atomic rename and fsync; no clock is trusted to agree across
// hosts, only that durations measured on each host agree within the
// margin.
//
// Each acquisition creates a new lease instance, the job file
// lease-NNNNNNNN, by exclusive create: NNNNNNNN is one above the highest
// instance present, so of any number of processes that take over the same
// instance exactly one wins (the instance file is its own takeover
// marker). The highest instance present is the current lease. Its holder
// renews it by replacing its own instance file (expiry pushed out by the
// ttl) and, after each write, listing the job folder: a higher instance
// means someone took the lease over, and the holder has lost it. A holder
// acts only within ttl of the start of its last renewal that found no
// successor.
//
// A taker creates the successor only when the current instance is
// released, or expired by the taker's clock (and, when written on the
// taker's host, its process is gone). Unless the old holder released it or
// is known to be dead (same host, pid gone), the new holder then waits
// the old holder's ttl before it acts: any renewal the old holder started
// before the successor existed ends its window within that ttl, and any
// renewal started later sees the successor. So two holders never act at
// once, whatever the hosts' wall clocks say; skewed clocks can only make a
// takeover early (the old holder then stops) or late.

// Lease errors.
var (
	// ErrLeaseHeld: AcquireLease found a live owner; the error is a
	// *LeaseHeldError naming it.
	ErrLeaseHeld = errors.New("job is owned by a live process")
	// ErrLeaseLost: Renew or Check found that the lease is no longer held
	// (a successor exists, the renewal window passed, or it was released).
	// The holder must stop writing to the job.
	ErrLeaseLost = errors.New("job lease lost")
)

// DefaultLeaseTTL is the lease ttl when LeaseOptions.TTL is zero.
const DefaultLeaseTTL = 15 * time.Second

const (
	leasePrefix    = "lease-"
	leaseFormat    = 1
	maxLeaseRecord = 4 << 10
	// MaxLeaseTTL bounds the ttl of a lease (and how long a taker may be
	// asked to wait).
	MaxLeaseTTL = time.Hour
	// MinLeaseTTL keeps renewals (every ttl/3) from flooding the store.
	MinLeaseTTL = 30 * time.Millisecond
)

// LeaseOwner says who holds a lease, for people reading refusals.
type LeaseOwner struct {
	Role       string // "coordinator", "rm", "gc", ...
	Generation uint64 // the coordinator's generation (0: none yet)
	Host       string
	PID        int
}

// LeaseOptions configure AcquireLease.
type LeaseOptions struct {
	// TTL: how long the lease stays valid without a renewal (default
	// DefaultLeaseTTL). Renew it every TTL/3.
	TTL   time.Duration
	Owner LeaseOwner // Host and PID default to this process's
	// Now is the clock (default time.Now; its monotonic reading times the
	// holder's window, its wall reading the recorded expiry).
	Now func() time.Time
	// Alive reports whether a process of this host exists (default: kill
	// with signal 0). For tests.
	Alive func(pid int) bool
	// Wait: when a takeover must wait out the old holder's ttl, Acquire
	// waits (renewing) and returns once the lease may be acted on. With
	// NoWait it returns ErrLeaseHeld instead of waiting when the old
	// holder is not known to be gone.
	NoWait bool
}

// LeaseState is how an instance looks to someone who wants the job.
type LeaseState int

// Lease states.
const (
	LeaseNone       LeaseState = iota // no lease file
	LeaseLive                         // held: refuse
	LeaseExpired                      // expired and its owner may be gone: may be taken over
	LeaseReleased                     // released on a clean end
	LeaseUnreadable                   // a torn or damaged instance file (see Inspect)
)

func (s LeaseState) String() string {
	return [...]string{"none", "live", "expired", "released", "unreadable"}[s]
}

// LeaseInfo describes the current lease instance of a job.
type LeaseInfo struct {
	Job      string
	Instance uint64
	LeaseOwner
	TTL      time.Duration
	Renewed  time.Time // wall clock of the owner
	Expires  time.Time // wall clock of the owner
	Released bool
	State    LeaseState
	// Gone: the owner's host is this host and its pid does not exist.
	Gone bool
	// Err: why an unreadable instance could not be decoded.
	Err error
}

func (li LeaseInfo) owner() string {
	s := li.Role
	if s == "" {
		s = "owner"
	}
	if li.Generation != 0 {
		s += fmt.Sprintf(" generation %d", li.Generation)
	}
	return fmt.Sprintf("%s on host %s pid %d", s, li.Host, li.PID)
}

// LeaseHeldError is returned (matching ErrLeaseHeld) when a job has a live
// owner.
type LeaseHeldError struct{ Info LeaseInfo }

func (e *LeaseHeldError) Error() string {
	li := e.Info
	if li.State == LeaseUnreadable {
		return fmt.Sprintf("job %s: lease instance %d is being written or damaged (%v); retry after %v", li.Job, li.Instance, li.Err, li.TTL)
	}
	msg := fmt.Sprintf("job %s is owned by %s (lease %d", li.Job, li.owner(), li.Instance)
	if li.State == LeaseLive && !li.Expires.IsZero() {
		msg += ", expires " + li.Expires.UTC().Format(time.RFC3339)
	}
	if li.State == LeaseExpired {
		msg += ", expired; a takeover waits out its ttl"
	}
	if li.State == LeaseLive && li.Expires.Before(time.Now()) {
		msg += ", expired but the process still exists on this host: stop it first"
	}
	return msg + ")"
}

func (e *LeaseHeldError) Unwrap() error { return ErrLeaseHeld }

// leaseRecord is the JSON content of a lease instance file.
type leaseRecord struct {
	Format     int    `json:"format"`
	Job        string `json:"job"`
	Instance   uint64 `json:"instance"`
	Role       string `json:"role"`
	Generation uint64 `json:"generation"`
	Host       string `json:"host"`
	PID        int    `json:"pid"`
	TTLms      int64  `json:"ttl_ms"`
	Renewed    string `json:"renewed"`
	Expires    string `json:"expires"`
	Released   bool   `json:"released"`
}

func leaseName(n uint64) string { return fmt.Sprintf("%s%08d", leasePrefix, n) }

func parseLeaseName(name string) (uint64, bool) {
	d, ok := strings.CutPrefix(name, leasePrefix)
	if !ok || len(d) < 8 || len(d) > 20 {
		return 0, false
	}
	n, err := strconv.ParseUint(d, 10, 64)
	if err != nil || n == 0 || (len(d) > 8 && d[0] == '0') {
		return 0, false
	}
	return n, true
}

func decodeLease(b []byte) (leaseRecord, error) {
	var r leaseRecord
	if len(b) > maxLeaseRecord {
		return r, fmt.Errorf("%d bytes, limit %d", len(b), maxLeaseRecord)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return r, err
	}
	if dec.More() {
		return r, errors.New("trailing data")
	}
	if r.Format != leaseFormat {
		return r, fmt.Errorf("format %d, this build reads %d", r.Format, leaseFormat)
	}
	if r.Instance == 0 || r.PID < 0 || r.TTLms <= 0 || time.Duration(r.TTLms)*time.Millisecond > MaxLeaseTTL || len(r.Host) > 255 || len(r.Role) > 64 {
		return r, errors.New("instance, pid, ttl, host or role out of bounds")
	}
	if _, err := time.Parse(time.RFC3339Nano, r.Expires); err != nil {
		return r, fmt.Errorf("expires: %w", err)
	}
	if _, err := time.Parse(time.RFC3339Nano, r.Renewed); err != nil {
		return r, fmt.Errorf("renewed: %w", err)
	}
	return r, nil
}

func hostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "unknown"
	}
	return h
}

func pidAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

func (o *LeaseOptions) defaults() error {
	if o.TTL == 0 {
		o.TTL = DefaultLeaseTTL
	}
	if o.TTL < MinLeaseTTL || o.TTL > MaxLeaseTTL {
		return fmt.Errorf("lease ttl %v: want %v..%v", o.TTL, MinLeaseTTL, MaxLeaseTTL)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Alive == nil {
		o.Alive = pidAlive
	}
	if o.Owner.Host == "" {
		o.Owner.Host = hostname()
	}
	if o.Owner.PID == 0 {
		o.Owner.PID = os.Getpid()
	}
	return nil
}

// leaseInstances lists the job's lease instances, ascending.
func (s *Store) leaseInstances(ctx context.Context, job string) ([]uint64, error) {
	names, err := s.ListJobFiles(ctx, job, leasePrefix)
	if err != nil {
		return nil, err
	}
	var out []uint64
	for _, n := range names {
		if i, ok := parseLeaseName(n); ok {
			out = append(out, i)
		}
	}
	// Names of up to 8 digits sort as numbers; longer ones after them.
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out, nil
}

// InspectLease describes the job's current lease as this process sees it
// (its clock, its host name); State LeaseNone when there is none.
func (s *Store) InspectLease(ctx context.Context, job string) (LeaseInfo, error) {
	o := LeaseOptions{}
	_ = o.defaults()
	return s.inspectLease(ctx, job, &o)
}

func (s *Store) inspectLease(ctx context.Context, job string, o *LeaseOptions) (LeaseInfo, error) {
	li := LeaseInfo{Job: job}
	if err := ValidJobName(job); err != nil {
		return li, err
	}
	var data []byte
	var name string
	var rerr error // a read that gave no record to decode
	for tries := 0; ; tries++ {
		inst, err := s.leaseInstances(ctx, job)
		if err != nil {
			return li, err
		}
		if len(inst) == 0 {
			return li, nil
		}
		li.Instance = inst[len(inst)-1]
		name = jobDir(job) + "/" + leaseName(li.Instance)
		data, err = s.b.ReadFile(ctx, name, maxLeaseRecord)
		if errors.Is(err, backend.ErrNotExist) && tries < 10 {
			// Removed since the listing (rm, or cleanup of an older
			// instance): look again.
			continue
		}
		if errors.Is(err, backend.ErrTooLarge) {
			rerr = fmt.Errorf("larger than %d bytes", maxLeaseRecord)
		} else if err != nil {
			return li, fmt.Errorf("read %s: %w", name, err)
		}
		break
	}
	var r leaseRecord
	err := rerr
	if err == nil {
		r, err = decodeLease(data)
	}
	if err != nil {
		li.State, li.Err, li.TTL = LeaseUnreadable, err, o.TTL
		fi, serr := s.b.Stat(ctx, name)
		if serr != nil {
			return li, serr
		}
		// An instance is written whole before its creator returns; a
		// torn one is left by a crash in CreateExclusive. Younger than
		// twice the ttl it may be one being written: live.
		if o.Now().Sub(fi.ModTime) > 2*o.TTL {
			li.State = LeaseExpired
		}
		return li, nil
	}
	li.LeaseOwner = LeaseOwner{Role: r.Role, Generation: r.Generation, Host: r.Host, PID: r.PID}
	li.TTL = time.Duration(r.TTLms) * time.Millisecond
	li.Renewed, _ = time.Parse(time.RFC3339Nano, r.Renewed)
	li.Expires, _ = time.Parse(time.RFC3339Nano, r.Expires)
	li.Released = r.Released
	li.Gone = r.Host == o.Owner.Host && !o.Alive(r.PID)
	switch {
	case r.Released:
		li.State = LeaseReleased
	case o.Now().Before(li.Expires):
		li.State = LeaseLive
	case r.Host == o.Owner.Host && !li.Gone:
		// Expired, but its process exists on this host (stopped, or
		// cannot reach the store): not ours to take.
		li.State = LeaseLive
	default:
		li.State = LeaseExpired
	}
	return li, nil
}

// Lease is a held job lease. Its methods are safe for concurrent use.
type Lease struct {
	s     *Store
	job   string
	inst  uint64
	o     LeaseOptions
	io    sync.Mutex // held while the instance file is written or removed
	mu    sync.Mutex // guards the fields below; never held during I/O
	rec   leaseRecord
	until time.Time // the holder may act before this (monotonic)
	lost  error     // non-nil once lost or released
	stop  func()    // ends KeepRenewed's goroutine
}

// KeepRenewed renews the lease every ttl/3 in a goroutine until Release
// (or until it is lost), for holders without a loop of their own (store
// tools). Renewal errors are logged; Check reports a lost lease.
func (l *Lease) KeepRenewed() {
	done := make(chan struct{})
	var wg sync.WaitGroup
	l.mu.Lock()
	if l.stop != nil {
		l.mu.Unlock()
		return
	}
	l.stop = func() { close(done); wg.Wait() }
	l.mu.Unlock()
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(l.o.TTL / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			ctx, cancel := context.WithTimeout(context.Background(), l.o.TTL)
			err := l.Renew(ctx)
			cancel()
			if errors.Is(err, ErrLeaseLost) {
				l.s.log.Error("job lease lost", "job", l.job, "err", err)
				return
			}
			if err != nil {
				l.s.log.Warn("job lease renewal failed; retrying", "job", l.job, "err", err)
			}
		}
	}()
}

// AcquireLease takes the job's lease: it creates the first instance, or
// takes over a released or expired one. A live owner gives a
// *LeaseHeldError (ErrLeaseHeld). A lease whose process is gone (its
// host is this host) is waited for until it expires, then taken at once.
// Taking over an expired lease whose owner is not known to be gone waits
// that owner's ttl (renewing). opts.NoWait refuses instead of either wait;
// ctx bounds them. Acquiring creates the job's folder
// when it has none.
func (s *Store) AcquireLease(ctx context.Context, job string, opts LeaseOptions) (*Lease, error) {
	if err := ValidJobName(job); err != nil {
		return nil, err
	}
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	unreadable := 0
	for tries := 0; ; tries++ {
		li, err := s.inspectLease(ctx, job, &opts)
		if err != nil {
			return nil, fmt.Errorf("job %s: lease: %w", job, err)
		}
		var wait time.Duration
		switch li.State {
		case LeaseLive:
			if li.Gone && !opts.NoWait {
				// Its process is gone (this host): not a live owner,
				// but the lease is taken over only once it expired.
				left := li.Expires.Sub(opts.Now())
				s.log.Warn("job lease of a process that is gone: waiting for it to expire",
					"job", job, "owner", li.owner(), "wait", left.Round(time.Millisecond))
				if err := pause.For(ctx, min(left+time.Millisecond, MaxLeaseTTL)); err != nil {
					return nil, err
				}
				continue
			}
			return nil, &LeaseHeldError{Info: li}
		case LeaseUnreadable:
			// Most likely an instance its creator is writing this
			// moment: read it again shortly, to name its owner.
			if unreadable++; unreadable < 50 {
				if err := pause.For(ctx, 10*time.Millisecond); err != nil {
					return nil, err
				}
				continue
			}
			return nil, &LeaseHeldError{Info: li}
		case LeaseExpired:
			if !li.Gone {
				wait = li.TTL
				if opts.NoWait {
					return nil, &LeaseHeldError{Info: li}
				}
			}
		}
		l := &Lease{s: s, job: job, inst: li.Instance + 1, o: opts}
		start := opts.Now()
		l.rec = l.record(start, false)
		data, _ := json.MarshalIndent(l.rec, "", "  ")
		err = s.b.CreateExclusive(ctx, jobDir(job)+"/"+leaseName(l.inst), append(data, '\n'))
		if errors.Is(err, backend.ErrExist) {
			if tries > 100 {
				return nil, fmt.Errorf("job %s: lease: instance %d taken 100 times in a row", job, l.inst)
			}
			continue // another taker won this instance: look again
		}
		if err != nil {
			return nil, fmt.Errorf("job %s: lease: %w", job, err)
		}
		l.until = start.Add(opts.TTL)
		if wait > 0 {
			s.log.Warn("lease taken over from an expired owner; waiting out its ttl before acting",
				"job", job, "old", li.owner(), "wait", wait)
			if err := l.waitOut(ctx, wait); err != nil {
				return nil, err
			}
		}
		if err := l.Renew(ctx); err != nil {
			return nil, err
		}
		l.cleanup(ctx)
		return l, nil
	}
}

// waitOut keeps the new instance renewed for d.
func (l *Lease) waitOut(ctx context.Context, d time.Duration) error {
	end := l.o.Now().Add(d)
	for {
		left := end.Sub(l.o.Now())
		if left <= 0 {
			return nil
		}
		t := time.NewTimer(min(left, l.o.TTL/3))
		select {
		case <-ctx.Done():
			// Not released: the old owner may still be acting, so the
			// instance must expire like any other.
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		if err := l.Renew(ctx); err != nil {
			return err
		}
	}
}

// cleanup removes instances older than the predecessor: a holder of an
// older instance checks for any higher one, so keeping the predecessor
// is enough, and the rest would only pile up.
func (l *Lease) cleanup(ctx context.Context) {
	inst, err := l.s.leaseInstances(ctx, l.job)
	if err != nil {
		return
	}
	for _, i := range inst {
		if i+1 < l.inst {
			_ = l.s.b.Remove(ctx, jobDir(l.job)+"/"+leaseName(i))
		}
	}
}

func (l *Lease) record(now time.Time, released bool) leaseRecord {
	exp := now.Add(l.o.TTL)
	if released {
		exp = now
	}
	return leaseRecord{
		Format: leaseFormat, Job: l.job, Instance: l.inst, Role: l.o.Owner.Role, Generation: l.o.Owner.Generation,
		Host: l.o.Owner.Host, PID: l.o.Owner.PID, TTLms: max(1, l.o.TTL.Milliseconds()),
		Renewed: now.UTC().Format(time.RFC3339Nano), Expires: exp.UTC().Format(time.RFC3339Nano), Released: released,
	}
}

// Instance is the lease instance number (grows with every acquisition).
func (l *Lease) Instance() uint64 { return l.inst }

// TTL is the lease's ttl.
func (l *Lease) TTL() time.Duration { return l.o.TTL }

// Job is the job the lease is for.
func (l *Lease) Job() string { return l.job }

// SetGeneration records the holder's generation with the next renewal.
func (l *Lease) SetGeneration(g uint64) {
	l.mu.Lock()
	l.o.Owner.Generation = g
	l.mu.Unlock()
}

// Check returns nil while the holder may act: the lease is neither lost
// nor released and its window (ttl from the start of the last good
// renewal) has not passed. Otherwise an error matching ErrLeaseLost.
func (l *Lease) Check() error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.checkLocked(l.o.Now())
}

func (l *Lease) checkLocked(now time.Time) error {
	if l.lost != nil {
		return l.lost
	}
	if !now.Before(l.until) {
		l.lost = fmt.Errorf("job %s: lease %d not renewed within its ttl %v: %w", l.job, l.inst, l.o.TTL, ErrLeaseLost)
		return l.lost
	}
	return nil
}

// Renew pushes the lease's expiry out by its ttl and checks that no one
// took it over. A failed write leaves the lease valid until its window
// passes (retry); a successor, or a window already passed, is final:
// ErrLeaseLost.
func (l *Lease) Renew(ctx context.Context) error {
	// io serializes the writes of the instance file; mu is held only
	// briefly, so that Check never waits for an fsync.
	l.io.Lock()
	defer l.io.Unlock()
	l.mu.Lock()
	start := l.o.Now()
	if err := l.checkLocked(start); err != nil {
		l.mu.Unlock()
		return err
	}
	l.rec = l.record(start, false)
	data, _ := json.MarshalIndent(l.rec, "", "  ")
	l.mu.Unlock()
	name := jobDir(l.job) + "/" + leaseName(l.inst)
	if err := l.s.b.Replace(ctx, name, append(data, '\n')); err != nil {
		return fmt.Errorf("job %s: renew lease %d: %w", l.job, l.inst, err)
	}
	lost := l.successor(ctx)
	l.mu.Lock()
	defer l.mu.Unlock()
	// A window that passed while the renewal was under way is lost for
	// good, as if Check had looked then.
	if err := l.checkLocked(l.o.Now()); err != nil {
		return err
	}
	if lost != nil {
		if errors.Is(lost, ErrLeaseLost) {
			l.lost = lost
		}
		return lost
	}
	// The window counts from the start of this renewal: a successor
	// created after the listing above waits a whole ttl from its
	// creation, which is later.
	if u := start.Add(l.o.TTL); u.After(l.until) {
		l.until = u
	}
	return nil
}

// successor returns an error matching ErrLeaseLost when a higher instance
// exists, another error when the listing failed.
func (l *Lease) successor(ctx context.Context) error {
	inst, err := l.s.leaseInstances(ctx, l.job)
	if err != nil {
		return fmt.Errorf("job %s: renew lease %d: %w", l.job, l.inst, err)
	}
	if n := len(inst); n > 0 && inst[n-1] > l.inst {
		who := fmt.Sprintf("lease instance %d", inst[n-1])
		if li, err := l.s.inspectLease(ctx, l.job, &l.o); err == nil && li.Instance > l.inst && li.Host != "" {
			who = li.owner() + fmt.Sprintf(" (lease %d)", li.Instance)
		}
		return fmt.Errorf("job %s: lease %d taken over by %s: %w", l.job, l.inst, who, ErrLeaseLost)
	}
	return nil
}

// Release ends the lease on a clean end, so the next owner need not wait
// for it to expire. The holder must have stopped writing. Releasing a
// lost lease writes nothing and returns nil; so does a second Release.
func (l *Lease) Release(ctx context.Context) error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	stop := l.stop
	l.stop = nil
	l.mu.Unlock()
	if stop != nil {
		stop()
	}
	l.io.Lock()
	defer l.io.Unlock()
	l.mu.Lock()
	now := l.o.Now()
	if l.checkLocked(now) != nil {
		l.mu.Unlock()
		return nil
	}
	l.lost = fmt.Errorf("job %s: lease %d released: %w", l.job, l.inst, ErrLeaseLost)
	rec := l.record(now, true)
	l.mu.Unlock()
	data, _ := json.MarshalIndent(rec, "", "  ")
	if err := l.s.b.Replace(ctx, jobDir(l.job)+"/"+leaseName(l.inst), append(data, '\n')); err != nil {
		return fmt.Errorf("job %s: release lease %d: %w", l.job, l.inst, err)
	}
	return nil
}

package launch

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

// DefaultSpawnCmd is the spawn template when none is given: ssh to the
// host, which runs the rank's command line.
const DefaultSpawnCmd = "ssh {host} -- {cmd}"

// HostsConfig configures a Hosts spawner.
type HostsConfig struct {
	Hosts []Host
	Ranks int
	// Template is the command that starts one rank on a host, run by
	// /bin/sh -c after substitution: {host} the host's name, {cmd} the
	// rank's command line with its environment ("env K=V ... ARGV",
	// each word shell-quoted where needed), {qcmd} the same quoted once
	// more as one word (for ssh, whose remote shell parses it again).
	Template string
	// Argv is the rank's command; Env the variables every rank gets.
	Argv []string
	Env  []string
	// Secret names variables of Env that must not appear on a command
	// line (ps shows command lines to every user, here and on the host):
	// they reach the rank on its standard input as NAME=VALUE lines, and
	// SecretsVar=stdin on its command line says so.
	Secret     []string
	SecretsVar string
	// HostVar is set to the host's name in each rank's environment.
	HostVar string
	// Verdicts are the exit codes by which a rank reports on its input
	// (the cut it was to restore is damaged), not trouble with its host:
	// a rank that exits with one is not lost for its host's sake, so a
	// host whose ranks all found the cut damaged stays up.
	Verdicts []int
	// Settle bounds how long a lost rank's respawn waits for the other
	// processes of its host to end too (a host that died takes all of its
	// ranks, whose exits arrive one by one); default 500ms.
	Settle time.Duration
	Out    io.Writer
	Log    *slog.Logger
	// Options of the underlying local processes (Detached, WithWaits).
	Options []Option
}

// Hosts runs each rank through a spawn template on one of a list of hosts,
// the way mpirun starts remote processes (ssh, ip netns exec, ...). The
// local process of a rank (the template's, e.g. ssh) is a child of this
// process and is what Kill kills and Exits reports; Placement decides the
// host: block placement at the start, a lost rank back in its own slot
// while its host is up, else in a free slot (a spare) of another host.
type Hosts struct {
	*Local
	cfg HostsConfig

	mu       sync.Mutex
	pl       *Placement
	lastLost map[int]bool  // the rank's last process was lost
	changed  chan struct{} // the placement changed (PlacementChanged)
}

var _ Spawner = (*Hosts)(nil)

// NewHosts checks the configuration and returns the spawner.
func NewHosts(cfg HostsConfig) (*Hosts, error) {
	if len(cfg.Argv) == 0 {
		return nil, errors.New("launch: no executable given")
	}
	if cfg.Template == "" {
		cfg.Template = DefaultSpawnCmd
	}
	if !strings.Contains(cfg.Template, "{cmd}") && !strings.Contains(cfg.Template, "{qcmd}") {
		return nil, fmt.Errorf("spawn template %q: has no {cmd} (or {qcmd}) for the rank's command line", cfg.Template)
	}
	if cfg.Settle == 0 {
		cfg.Settle = 500 * time.Millisecond
	}
	if len(cfg.Secret) > 0 && cfg.SecretsVar == "" {
		return nil, errors.New("launch: secret variables but no SecretsVar to announce them")
	}
	pl, err := NewPlacement(cfg.Hosts, cfg.Ranks)
	if err != nil {
		return nil, err
	}
	h := &Hosts{cfg: cfg, pl: pl, lastLost: map[int]bool{}, changed: make(chan struct{}, 1)}
	h.Local = newLocal(nil, cfg.Out, cfg.Log, cfg.Options...)
	h.Local.onExit = h.exited
	return h, nil
}

// exited runs on the reaping goroutine before the exit is delivered.
func (h *Hosts) exited(ex Exit) {
	lost := !ex.Killed && (ex.Code != 0 || ex.Signal != "")
	if ex.Signal == "" && slices.Contains(h.cfg.Verdicts, ex.Code) {
		lost = false // the rank ran and judged its cut; the host is fine
	}
	h.mu.Lock()
	var host string
	var down bool
	if !ex.Killed && ex.Code == 0 && ex.Signal == "" {
		host = h.pl.Left(ex.Rank, ex.Spawn)
	} else {
		host, down = h.pl.Ended(ex.Rank, ex.Spawn, lost)
	}
	h.lastLost[ex.Rank] = lost
	if lost && !down && host != "" && ex.Code == SpawnCmdFailed {
		h.pl.StartFailed(host, ex.String()+": the spawn command's own failure")
		down = true
	}
	h.mu.Unlock()
	if down {
		h.notify()
		_, why := h.pl.Down(host)
		h.log.Warn("host down: its ranks restart on other hosts", "host", host, "why", why, "last", ex.String())
	}
}

// SpawnCmdFailed is the exit code by which a spawn command says that it
// failed itself (ssh: could not connect or log in; ip netns exec: no such
// namespace), rather than the rank it ran: the host is down at once, even
// while other ranks still run there. A rank that exits with 255 itself
// (exit(-1) in C) is taken for the same.
const SpawnCmdFailed = 255

// HostOf returns the host rank runs on (or last ran on).
func (h *Hosts) HostOf(rank int) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.pl.HostOf(rank)
}

// Summary describes the hosts (slots used, down and why).
func (h *Hosts) Summary() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.pl.Summary()
}

// Spawn starts rank as process spawn on the host Placement gives it.
// ErrNoSlot when no live host has a free slot.
func (h *Hosts) Spawn(rank int, spawn uint64, env []string) error {
	h.settle(rank)
	h.mu.Lock()
	was := h.pl.HostOf(rank)
	host, err := h.pl.Place(rank)
	if err != nil {
		h.mu.Unlock()
		return err
	}
	if host != was {
		h.notify()
	}
	// Recorded before the start: the exit may come before start returns.
	h.pl.Started(rank, spawn, host)
	h.mu.Unlock()

	line, stdin := h.command(host, env)
	sh := strings.NewReplacer("{host}", host, "{cmd}", line, "{qcmd}", shellQuote(line)).Replace(h.cfg.Template)
	err = h.start(rank, spawn, []string{"/bin/sh", "-c", sh}, os.Environ(), stdin)
	if err != nil {
		h.mu.Lock()
		h.pl.Ended(rank, spawn, false)
		if !errors.Is(err, ErrStillRunning) {
			h.pl.StartFailed(host, err.Error())
			h.notify()
		}
		h.mu.Unlock()
		return fmt.Errorf("rank %d on host %s: %w", rank, host, err)
	}
	h.log.Info("rank started", "rank", rank, "host", host, "spawn", spawn)
	return nil
}

// settle: when rank's last process was lost and its host still runs
// others, wait (bounded) for those to end too, so that a dead host is
// known as down before the rank goes back to it.
func (h *Hosts) settle(rank int) {
	deadline := time.Now().Add(h.cfg.Settle)
	for {
		h.mu.Lock()
		host := h.pl.HostOf(rank)
		down, _ := h.pl.Down(host)
		wait := h.lastLost[rank] && !down && h.pl.Live(host) > 0
		h.mu.Unlock()
		if !wait || time.Now().After(deadline) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// command renders the rank's command line for host ("env K=V ... ARGV")
// and what goes to its standard input (the secrets).
func (h *Hosts) command(host string, env []string) (string, []byte) {
	secret := map[string]bool{}
	for _, s := range h.cfg.Secret {
		secret[s] = true
	}
	all := append(append(append([]string{}, h.cfg.Env...), env...), h.cfg.HostVar+"="+host)
	words := []string{"env"}
	var stdin strings.Builder
	for _, kv := range all {
		name, _, _ := strings.Cut(kv, "=")
		if name == "" {
			continue
		}
		if secret[name] {
			stdin.WriteString(kv + "\n")
			continue
		}
		words = append(words, kv)
	}
	if stdin.Len() > 0 {
		words = append(words, h.cfg.SecretsVar+"=stdin")
	}
	words = append(words, h.cfg.Argv...)
	for i, w := range words {
		words[i] = shellQuote(w)
	}
	if stdin.Len() == 0 {
		return strings.Join(words, " "), nil
	}
	return strings.Join(words, " "), []byte(stdin.String())
}

// shellQuote quotes w for a POSIX shell, leaving words of safe characters
// as they are (so a command line read by two shells, as with ssh, still
// works when no word needs quoting).
func shellQuote(w string) string {
	if w != "" && safeWord(w) {
		return w
	}
	return "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
}

func safeWord(w string) bool {
	for _, c := range w {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.ContainsRune("._-/@%+=:,", c):
		default:
			return false
		}
	}
	return true
}

// notify says the placement changed (a rank moved, a host down); several
// changes before the reader looks are one.
func (h *Hosts) notify() {
	select {
	case h.changed <- struct{}{}:
	default:
	}
}

// PlacementChanged receives after the placement changed: a rank moved to
// another host, or a host marked down.
func (h *Hosts) PlacementChanged() <-chan struct{} { return h.changed }

// PlacementRecord returns what the placement changed so far (Job and
// Generation left to the caller).
func (h *Hosts) PlacementRecord() PlacementRecord {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.pl.Record()
}

// AdoptPlacement applies the record of a coordinator this one takes over
// from (see Placement.Adopt), before any Spawn; it returns what did not
// fit and the hosts as they are now.
func (h *Hosts) AdoptPlacement(r PlacementRecord) (skipped []string, summary string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.pl.Adopt(r), h.pl.Summary()
}

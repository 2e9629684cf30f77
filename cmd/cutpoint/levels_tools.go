package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/pflag"

	"github.com/cutpoint/cutpoint/ckpt"
	"github.com/cutpoint/cutpoint/internal/levels"
)

// The store commands' view of node-local levels: --local DIR (with
// {host}) names every host's node-local store, as seen from where the
// command runs (all of them on a test machine or a shared file system,
// this host's alone on a cluster node).

func addLocalFlag(f *pflag.FlagSet, dst *string) {
	f.StringVar(dst, "local", "", "node-local checkpoint directories of a multi-level job, {host} standing for every host (as the job's --local)")
}

// nodeDir is one host's node-local store.
type nodeDir struct {
	host string
	st   *ckpt.Store
}

// openNodeDirs opens every node-local store the template matches; a
// directory that is not a store is skipped with a warning.
func openNodeDirs(ctx context.Context, g *GlobalOptions, tmpl string, shared *ckpt.Store) ([]nodeDir, error) {
	if tmpl == "" {
		return nil, nil
	}
	dirs, err := levels.Config{Local: tmpl}.Glob()
	if err != nil {
		return nil, usageError(fmt.Errorf("--local %s: %w", tmpl, err))
	}
	pre, suf, _ := strings.Cut(tmpl, levels.HostToken)
	var out []nodeDir
	for _, d := range dirs {
		s, err := ckpt.OpenDir(ctx, d, ckpt.Options{Logger: g.Logger, ChunkSize: shared.ChunkSize(), Hash: shared.Hash()})
		if err != nil {
			g.Logger.Warn("node-local directory skipped", "dir", d, "err", err)
			continue
		}
		host := d
		if strings.Contains(tmpl, levels.HostToken) {
			host = strings.TrimSuffix(strings.TrimPrefix(d, pre), suf)
		}
		out = append(out, nodeDir{host: host, st: s})
	}
	if len(out) == 0 {
		return nil, usageError(fmt.Errorf("--local %s: no node-local store found", tmpl))
	}
	return out, nil
}

func closeNodeDirs(nodes []nodeDir) {
	for _, n := range nodes {
		n.st.Close()
	}
}

// copiesOf says, per cut, how many of its shards each node-local store
// holds: "a=2 b=4".
func copiesOf(ctx context.Context, s *ckpt.Store, job string, cuts []ckpt.CutInfo, nodes []nodeDir) map[uint64]string {
	if len(nodes) == 0 {
		return nil
	}
	out := map[uint64]string{}
	for _, c := range cuts {
		cut, err := s.LoadCut(ctx, job, c.Epoch)
		if err != nil {
			continue
		}
		var parts []string
		for _, n := range nodes {
			k := 0
			for _, ref := range cut.Shards {
				if n.st.HasShard(ctx, ref) == nil {
					k++
				}
			}
			parts = append(parts, fmt.Sprintf("%s=%d", n.host, k))
		}
		out[c.Epoch] = strings.Join(parts, " ")
	}
	return out
}

// verifyNodeDirs reads and checks every copy of every shard of the job's
// committed cuts (or one cut) that the node-local stores hold. It prints
// one line per store and returns the damage found.
func verifyNodeDirs(ctx context.Context, w io.Writer, s *ckpt.Store, job string, epoch uint64, nodes []nodeDir) ([]error, error) {
	var epochs []uint64
	if epoch != 0 {
		epochs = []uint64{epoch}
	} else {
		cuts, err := s.List(ctx, job)
		if err != nil && !errors.Is(err, ckpt.ErrCorrupt) {
			return nil, err
		}
		for _, c := range cuts {
			epochs = append(epochs, c.Epoch)
		}
	}
	var damage []error
	for _, n := range nodes {
		var shards int
		var bytes int64
		var bad int
		for _, e := range epochs {
			cut, err := s.LoadCut(ctx, job, e)
			if err != nil {
				continue // reported by the shared store's verify
			}
			for _, ref := range cut.Shards {
				if err := n.st.HasShard(ctx, ref); errors.Is(err, ckpt.ErrNotFound) {
					continue
				}
				k, err := n.st.VerifyShard(ctx, ref)
				if err != nil {
					if !errors.Is(err, ckpt.ErrCorrupt) {
						return damage, err
					}
					bad++
					damage = append(damage, fmt.Errorf("node-local %s: %w", n.host, err))
					fmt.Fprintf(w, "DAMAGED node-local %s: %v\n", n.host, err)
					continue
				}
				shards++
				bytes += k
			}
		}
		fmt.Fprintf(w, "job %s node-local %s: %d shard copies checked, %s", job, n.host, shards+bad, humanBytes(bytes))
		if bad > 0 {
			fmt.Fprintf(w, ": DAMAGED %d\n", bad)
		} else {
			fmt.Fprintf(w, ": ok\n")
		}
	}
	return damage, nil
}

// gcNodeDirs collects every node-local store after the shared store's GC:
// packs no remaining committed cut references go.
func gcNodeDirs(ctx context.Context, w io.Writer, s *ckpt.Store, job string, nodes []nodeDir, dryRun bool, verb string) error {
	cuts, err := s.List(ctx, job)
	if err != nil {
		return err
	}
	var kept []ckpt.ShardRef
	var latest uint64
	for _, c := range cuts {
		cut, err := s.LoadCut(ctx, job, c.Epoch)
		if err != nil {
			return err
		}
		kept = append(kept, cut.Shards...)
		latest = max(latest, c.Epoch)
	}
	var errs []error
	for _, n := range nodes {
		rep, err := n.st.NodeLocalGC(ctx, job, kept, latest, dryRun)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		fmt.Fprintf(w, "job %s node-local %s: %s %d packs (%s)\n", job, n.host, verb, rep.DeletedPacks, humanBytes(rep.DeletedBytes))
	}
	return errors.Join(errs...)
}

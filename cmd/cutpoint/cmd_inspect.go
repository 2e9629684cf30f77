package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/cutpoint/cutpoint/ckpt"
)

type inspectOptions struct {
	storeOptions
	Cut   uint64
	local string
}

func (o *inspectOptions) AddFlags(f *pflag.FlagSet) {
	o.storeOptions.AddFlags(f)
	f.Uint64Var(&o.Cut, "cut", 0, "cut (epoch) to describe; default the latest")
	addLocalFlag(f, &o.local)
}

func newInspectCommand(g *GlobalOptions) *cobra.Command {
	var o inspectOptions
	cmd := &cobra.Command{
		Use:   "inspect --store DIR [--job NAME] --cut E [--local DIR]",
		Short: "Describe a committed cut per rank and buffer",
		Long: `Describe a committed cut: its step, ranks and metadata, then one line per
rank and buffer (and recorded channel) with its size, element size, chunks,
how many chunks are new in this cut and how many are reused from older cuts,
how many are stored with the delta+shuffle filter (the others with plain
shuffle), stored size, compression ratio and codecs. It reads indexes, not
chunks (use verify for that). With --local, a shard the shared store does
not hold (a cut on node-local levels only) is described from a node-local
copy, and a last table names, per rank, the hosts whose node-local stores
hold a copy of its shard (its own and the partner's, or the new partner's
after a partner host was lost), then, with --redundancy rs:K+M, the hosts
holding erasure fragments of its pack ("e:rs0": fragment 0 on host e,
wherever the fragments went), and "shared" when the shared store holds
it.

Exit codes: 0 described; 2 no such store, job or cut; 3 the cut's manifest
or a shard index is damaged.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runInspect(cmd.Context(), g, o)
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

func runInspect(ctx context.Context, g *GlobalOptions, o inspectOptions) error {
	s, err := o.openStore(ctx, g)
	if err != nil {
		return err
	}
	defer s.Close()
	job, err := o.oneJob(ctx, s)
	if err != nil {
		return err
	}
	epoch := o.Cut
	if epoch == 0 {
		cuts, err := s.List(ctx, job)
		if len(cuts) == 0 {
			if err != nil {
				return withCode(exitDamaged, err)
			}
			return usageError(fmt.Errorf("job %s has no committed cut", job))
		}
		epoch = cuts[len(cuts)-1].Epoch
	}
	d, err := s.Inspect(ctx, job, epoch)
	switch {
	case errors.Is(err, ckpt.ErrNotFound):
		return usageError(fmt.Errorf("job %s has no committed cut %d", job, epoch))
	case errors.Is(err, ckpt.ErrCorrupt):
		return withCode(exitDamaged, err)
	case err != nil:
		return err
	}
	nodes, err := openNodeDirs(ctx, g, o.local, s)
	if err != nil {
		return err
	}
	defer closeNodeDirs(nodes)
	// copies: per rank, the hosts whose node-local stores hold its shard;
	// frags: those that hold erasure fragments of it instead ("b:rs0").
	copies := make([][]string, len(d.Ranks))
	frags := make([][]string, len(d.Ranks))
	for i, r := range d.Ranks {
		for _, n := range nodes {
			if n.st.HasShard(ctx, r.Ref) == nil {
				copies[i] = append(copies[i], n.host)
			} else if idx, err := n.st.FragmentsHeld(ctx, r.Ref); err == nil {
				for _, f := range idx {
					frags[i] = append(frags[i], fmt.Sprintf("%s:%s%d", n.host, ckpt.LevelErasure, f))
				}
			}
		}
		// A cut not (yet) in the shared store is described from a
		// node-local copy.
		if r.Err != nil && !d.Levels().Shared && len(copies[i]) > 0 {
			for _, n := range nodes {
				if n.host == copies[i][0] {
					if rd := n.st.InspectShard(ctx, r.Ref); rd.Err == nil {
						d.Ranks[i] = rd
					}
				}
			}
		}
	}
	w := g.Stdout
	fmt.Fprintf(w, "job %s cut %d: step %d, %d ranks, incarnation %d, committed %s\n",
		job, d.Epoch, d.Step, d.World, d.Incarnation, d.Time.UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "raw %s, stored %s (ratio %.2f), new in this cut %s\n",
		humanBytes(d.RawBytes), humanBytes(d.StoredBytes), d.Ratio(), humanBytes(d.NewBytes))
	var hashes []string
	for _, r := range d.Ranks {
		if r.Err == nil && !slices.Contains(hashes, r.Hash) {
			hashes = append(hashes, r.Hash)
		}
	}
	if len(hashes) > 0 {
		fmt.Fprintf(w, "chunk hash %s\n", strings.Join(hashes, ", "))
	}
	if len(d.Meta) > 0 {
		keys := make([]string, 0, len(d.Meta))
		for k := range d.Meta {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = k + "=" + d.Meta[k]
		}
		fmt.Fprintf(w, "meta: %s\n", strings.Join(parts, " "))
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RANK\tBUFFER\tBYTES\tELEM\tCHUNKS\tNEW\tREUSED\tDELTA\tSTORED\tRATIO\tCODECS")
	var damaged []error
	for _, r := range d.Ranks {
		if r.Err != nil {
			fmt.Fprintf(tw, "%d\t(unreadable)\t\t\t\t\t\t\t\t\t%v\n", r.Ref.Rank, r.Err)
			damaged = append(damaged, r.Err)
			continue
		}
		rows := append(append([]ckpt.StreamDetail(nil), r.Buffers...), r.Channels...)
		for _, b := range rows {
			elem := fmt.Sprint(b.ElemSize)
			name := b.Name
			if b.Messages > 0 || strings.HasPrefix(b.Name, "channel from ") {
				elem = "-"
				name = fmt.Sprintf("%s (%d messages)", b.Name, b.Messages)
			}
			fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%d\t%d\t%d\t%d\t%d\t%.2f\t%s\n", r.Ref.Rank, name, b.Len, elem,
				b.Chunks, b.NewChunks, b.ReusedChunks, b.DeltaChunks(), b.StoredBytes, b.Ratio(), codecSummary(b.Codecs))
		}
	}
	tw.Flush()
	if len(nodes) > 0 {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "RANK\tCOPIES")
		for i, r := range d.Ranks {
			where := append(slices.Clone(copies[i]), frags[i]...)
			if s.HasShard(ctx, r.Ref) == nil {
				where = append(where, ckpt.LevelShared)
			}
			if len(where) == 0 {
				where = []string{"none found"}
			}
			fmt.Fprintf(tw, "%d\t%s\n", r.Ref.Rank, strings.Join(where, " "))
		}
		tw.Flush()
	}
	if len(damaged) > 0 {
		return withCode(exitDamaged, errors.Join(damaged...))
	}
	return nil
}

func codecSummary(m map[string]int) string {
	if len(m) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s:%d", k, m[k])
	}
	return strings.Join(parts, ",")
}

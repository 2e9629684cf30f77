package rank

import "github.com/cutpoint/cutpoint/internal/jobstats"

// Record copies the rank's counters into its stats file's record
// (jobstats.Rank): the one list of what a rank process reports, for the Go
// rank command and libcutpoint alike, so that neither lacks a counter.
func (s Stats) Record(f *jobstats.Rank) {
	f.Captures, f.CaptureNs = s.Captures, int64(s.CaptureTime)
	f.Holds, f.HoldNs, f.InPlaceBytes = s.Holds, int64(s.HoldTime), s.InPlaceBytes
	f.StreamCuts, f.StreamNs = s.StreamCuts, int64(s.StreamTime)
	f.Rollbacks, f.RestoreNs = s.Rollbacks, int64(s.RestoreTime)
	f.ShardsWritten, f.ShardBytes, f.ShardStored = s.ShardsWritten, s.ShardBytes, s.ShardStored
	f.LastShardNs = int64(s.LastShardTime)
	f.RestoreBytes, f.PartnerBytes, f.FlushBytes = s.RestoreBytes, s.PartnerBytes, s.FlushBytes
	f.DamagedCopies = s.DamagedCopies
	f.FallbackBytes, f.PartnerChanges = s.FallbackBytes, s.PartnerChanges
	f.ControlForged, f.FragmentMoves = s.ControlForged, s.FragmentMoves
}

// Package bench is cutpoint's benchmark harness (`cutpoint bench`): it
// measures what a user chooses a checkpoint system by (how long the job
// is stalled per cut, how much slower it runs, how fast it comes back)
// next to the limits of the machine and the tools a user would otherwise
// script, in the same run, so that the ratios hold on a noisy machine.
//
// Families of measurements:
//
//   - store: in this process, R ranks' buffers (three kinds of data from
//     internal/datagen) captured on a kernels device and written by R shard
//     writers into one ckpt store on the scratch disk, committed, restored
//     with the packs dropped from the page cache and checked; over state
//     size, ranks, codec, shuffle, the fraction of chunks changed
//     (incremental) and the device. Beside them: memcpy and write+fsync of
//     the same bytes (limits), the engine without storage, the zstd command
//     line tool, and the engine on one worker.
//   - job: real `cutpoint run` processes of heat2d without cuts, with cuts
//     at several intervals and in stop-the-world mode, interleaved, and
//     with one rank SIGKILLed; the figures come from the files
//     `cutpoint run --stats-dir` writes (internal/jobstats).
//   - kernels: shuffle and chunk hash on one core.
//   - transport: one rank transport channel against raw NATS.
//
// Run writes results.json (one Record per scenario and reference row),
// results.md and PNG plots into the output folder. No other package may
// import this one.
package bench

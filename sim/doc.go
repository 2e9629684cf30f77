// Package sim is the deterministic simulation of the whole protocol
// stack: the real coordinator, N real participants (up to 1024) and, under
// each participant, the real transport channel machine
// (rank/transport/channel, the one the Endpoint drives over NATS), driven
// by in-memory harnesses over a simulated network, store and launcher.
// Data frames cross a network that delays, reorders, drops, duplicates and
// partitions them, and takes a rank's connection down and back; control
// messages are delayed and lost; ranks exit, hang and are respawned (each
// respawn and each rollback a new incarnation, with a new transport
// session), and the coordinator dies at any event and is restarted. One
// uint64 seed fixes everything, so a failing run is reproduced by its seed
// (a failure prints the seed and the command that replays it).
//
// The harnesses are also the reference for the real drivers: rankProc
// (rank.go) executes a participant's Ready and the transport machine's
// with the runtime's and the Endpoint's executors (participant.Execute,
// channel.Execute) through ports over the simulated world, and coordNode
// (coord.go) how the coordinator driver executes the coordinator's Ready
// (persist before acting on it, kill before spawn, commit results fed back
// as events).
//
// Built with the cutpoint_plant tag, TestPlants plants each bug of
// channel.Plant in the transport in turn and checks that the simulation
// fails within the seeds make test runs (make plants).
//
// Invariants checked on every run (violations fail the run with the seed):
//   - every committed cut is consistent against a reference execution of
//     the same deterministic job without any protocol: each rank's state is
//     the reference state after S steps, and on every channel the
//     delivered count, the sent count and the recorded messages (payloads
//     included) are exactly the reference's (R1, R4 exactly once);
//   - at every SafePoint of every incarnation the job's state equals the
//     reference, and the job ends with the reference's final state (a run
//     restored from any committed cut reaches the same result);
//   - the job finishes before a deadline (no deadlock or livelock);
//   - without faults, cuts commit, and aborts are only for lateness;
//   - epoch ids strictly increase over the whole run, coordinator restarts
//     included (R3); a rank is never spawned while a process of it is
//     alive (R13); no data frame reaches a rank at an incarnation it has
//     not started (R12); a Ready holding a job record holds nothing that
//     depends on it, and nothing of an incarnation leaves the coordinator
//     before its record is durable (R15); GC never removes a cut that is
//     later restored; at the end, on every live rank, the transport and the
//     participant agree on the bytes delivered and not credited back; the
//     transport never reports an unrepairable gap (no fault here loses a
//     channel's state within an incarnation).
package sim

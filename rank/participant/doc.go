// Package participant is one rank's side of cutpoint's step-aligned
// Chandy-Lamport snapshot protocol, as a pure state machine: no goroutines,
// clocks, sockets or files. The rank runtime (package rank) feeds it the
// job's calls, the transport's arrivals, the coordinator's messages, the
// shard writer's results and the time, and executes what it asks for.
//
// # Inputs
//
// All under the runtime's one mutex, from the job's thread and from the
// transport's delivery goroutine:
//
//	Send(to, payload)         the job sends; the frame comes out in Ready.Frames
//	Recv(from)                the job receives: a payload, or ok=false (wait)
//	SafePoint(step, pending)  after each step; may say Capture (see below)
//	Finish()                  the job's code returned after its last step
//	Deliver(from, frame)      the transport hands up a frame, in channel order
//	HandleControl(bytes)      a message from the coordinator
//	ShardDurable(e, ref, ..)  the shard of epoch e is written and fsynced
//	ShardFailed / CaptureFailed
//	Tick(now)                 time passes (heartbeats, coordinator silence)
//
// # The Ready loop
//
// The same for every machine of cutpoint (coordinator, participant,
// transport channel), in etcd-io/raft's order: after every input, while
// HasReady, the runtime (still holding the lock) takes Ready(), executes
// it, then calls Advance(rd) with that Ready. Ready called again before
// Advance returns the same Ready; inputs made while it is executed (a
// ChannelFault) go to the next one. Advance panics unless rd is the Ready
// handed out. Execute(p, ports) is this loop's body, shared by package
// rank and the simulation; it executes the fields in this order:
//
//  1. Frames: transport.Enqueue(To, Data) in order, before the lock is
//     released. This is what makes capture and marker emission atomic with
//     respect to Send (R2): a marker is enqueued behind every data frame
//     sent before the capture and ahead of every frame sent after it. Data
//     frames were waited for with Acquire(to, wire.DataHeaderLen+len(payload))
//     before Send (without the lock); markers are enqueued without waiting.
//     The self-channel never reaches the transport (R9): no Acquire, no
//     Enqueue for it. A channel the transport reports broken becomes a
//     ChannelFault (R14) after the rest of the Ready.
//  2. Credits: transport.Credit(From, Bytes). Every frame of the current
//     incarnation is credited exactly once: a marker and a held message
//     on arrival (R8), any other when the job consumes it; a frame of
//     another incarnation never.
//  3. Control: publish to the coordinator (at most once is fine: whatever
//     matters is repeated with the next heartbeat).
//  4. Seal: give the channel state and Meta to the shard writer of that
//     epoch (started at Capture); when the shard is durable call
//     ShardDurable (persist before report: the report is the promise that
//     the shard survives a crash).
//  5. Cancel: stop those epochs' writers and discard their output.
//  6. Committed: informational (a base for incremental shards).
//  7. Deliverable, Started: wake a Recv waiting on one of those channels, or
//     a job waiting for Go; it calls Recv/Send/SafePoint again.
//  8. Events: log and count them.
//  9. Exit, else Rollback: see below; they end this participant.
//
// # Capture
//
// When SafePoint returns Capture, the runtime captures the protected
// buffers before it releases the lock (a copy into staging memory, or an
// async device-to-host copy enqueued on the streams that write them), then
// starts the epoch's background shard writer, then executes Ready (which
// holds the markers). A capture that fails is reported with CaptureFailed.
//
// # Waiting
//
// Recv returning ok=false means "wait": the runtime waits (without the
// lock) until Ready names the channel in Deliverable, or a Rollback or Exit
// arrives. A Recv that can never be satisfied before this rank's capture
// aborts the epoch as blocked (R8) on its own. Send never blocks here; the
// transport's Acquire is where a sender waits. Before Go (ErrNotStarted)
// the runtime waits for Ready.Started.
//
// # Rollback and exit
//
// Ready.Rollback{G, Epoch, Step}: wake every blocked call with
// ErrRolledBack (the job must return to its loop), cancel writers,
// synchronize device streams, transport.Reset(G), reload cut Epoch
// (buffers, Meta, channel state) and construct a new Participant with
// Incarnation G and that Restore; its first Ready carries Ready(G) for the
// coordinator. Ready.Exit{Code}: flush the transport (Code 0), exit.
//
// # Restore
//
// Config.Restore gives the participant its shard's Meta and recorded
// channel state; the recorded messages are delivered first, in order, then
// live traffic (whose sequence numbers continue after them). The job
// resumes at Restore.Step+1.
//
// # What it guarantees
//
// The rules R1-R15 of docs/design.md ("Snapshot protocol"). Which of them
// this package implements: R1 (channel state = undelivered-at-capture plus
// arrivals until the marker), R2 (markers in Ready.Frames behind data), R3
// (stale epochs ignored), R4 (per-channel counts in the shard report,
// checked locally against the marker), R5 (ErrPendingRequests), R6 (late),
// R7 (alignment check on delivery), R8 (held credited on arrival; blocked
// detection), R9 (self-channel), R10 (declared peers only), R11 (stale
// incarnation dropped), R13 (Fence), R15 (coordinator silence; higher
// coordinator generation wins).
package participant

// Package wire is the byte encoding of every cutpoint protocol message: the
// data-plane frames a rank puts on a channel (application data with its
// header, and Chandy-Lamport markers), the control messages between ranks
// and the coordinator, the per-shard metadata a rank stores with its shard,
// and the coordinator's write-ahead job record.
//
// Every decoder treats its input as hostile: lengths and counts are checked
// against the bytes that remain and against fixed limits before anything is
// allocated, unknown versions and kinds are rejected, trailing bytes are an
// error, and no input makes a decoder panic (each one is fuzzed, with a seed
// corpus under testdata/fuzz). Errors wrap ErrMalformed, ErrVersion,
// ErrUnknownKind or ErrTooLarge and name the field that was wrong.
//
// Authentication (auth.go): the job key, the keys derived from it, and the
// trailers that authenticate control messages (an ed25519 signature), rank
// messages and results (a keyed BLAKE3 tag); a receiver checks and strips
// the trailer before it decodes (docs/format.md, "Authentication").
//
// The package holds no protocol logic: what a message means is documented
// by the machines that send and receive it (coordinator, rank/participant).
//
// # Layout
//
// Every message starts with two bytes: the format version (Version) and a
// kind. Data frames have a fixed 26-byte header so that a sender knows a
// frame's length (and so the flow-control credit it needs) before the
// participant numbers it:
//
//	offset size field
//	0      1    version (1)
//	1      1    kind (KindData)
//	2      8    incarnation g, big endian
//	10     8    channel sequence number (first message is 1), big endian
//	18     8    sender's step (last completed SafePoint), big endian, signed
//	26     n    payload (the rest of the frame)
//
// All other messages encode their fields, in the order of the Go struct, as
// unsigned (uvarint) or signed (varint) base-128 varints; byte strings and
// lists are a uvarint count followed by the elements.
package wire

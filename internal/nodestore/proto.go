// Package nodestore is the protocol that carries multi-level copies
// between hosts: a rank reaches another host's node-local store only
// through a rank on that host, over the job's NATS fabric. A client sends
// requests (create a file, write a piece of it, commit it, read, stat,
// list); the serving rank checks each one against the Server machine of
// this package, which decides what may be done to its store, and executes
// it on its own node-local backend (temporary file, fsync, rename). The
// machines here are pure: no sockets, clocks, goroutines or files; the
// drivers live in the rank runtime.
//
// Every decoder is bounded (MaxData per message, MaxName per name,
// MaxListEntries per listing) and fuzzed; the Server keeps at most
// MaxSessions uploads, keyed by numbers it chose itself, and forgets
// uploads that stay idle.
package nodestore

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Limits.
const (
	// MaxData bounds the data of one message (a write, a read's reply, a
	// small file): well under NATS's default 1 MiB payload.
	MaxData = 256 << 10
	// MaxName bounds a file name (the backend allows 512 bytes).
	MaxName = 512
	// MaxMsg bounds a whole message's encoding.
	MaxMsg = MaxData + 2*MaxName + 64
	// MaxListEntries bounds one page of a listing.
	MaxListEntries = 1024
	// MaxFileSize bounds one uploaded file (a pack or a fragment).
	MaxFileSize = 1 << 46
	// MaxSessions bounds the uploads a Server keeps at once.
	MaxSessions = 32
	// IdleTicks: an upload with no message for this many ticks is aborted.
	IdleTicks = 30
)

// Op is a request's operation.
type Op uint8

// Operations.
const (
	OpCreate  Op = 1 + iota // start an upload of Name; the reply names the session
	OpWrite                 // Data at Offset of Session
	OpCommit                // Session is complete: Offset bytes, CRC32C Sum; durable on reply
	OpAbort                 // discard Session
	OpStat                  // describe Name
	OpRead                  // read up to Length bytes of Name at Offset
	OpList                  // list Name (a directory) after the entry After
	OpReplace               // replace Name with Data (small files), durable on reply
	opEnd
)

func (o Op) String() string {
	names := [...]string{"?", "create", "write", "commit", "abort", "stat", "read", "list", "replace"}
	if o < opEnd {
		return names[o]
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// Request is one client message.
type Request struct {
	Op      Op
	Session uint64
	Offset  int64
	Length  uint32
	Sum     uint32
	Name    string
	After   string
	Data    []byte
}

// Status is a reply's outcome.
type Status uint8

// Statuses. The client maps them back onto the backend's errors.
const (
	StatusOK       Status = iota
	StatusNotExist        // backend.ErrNotExist
	StatusExist           // backend.ErrExist
	StatusInvalid         // a request the server refuses (name, offset, size)
	StatusBusy            // too many uploads; try later
	StatusUnknown         // no such session (expired, or another server's)
	StatusFailed          // the store failed (disk full, I/O error)
	statusEnd
)

// Entry is one listed file.
type Entry struct {
	Name  string
	Size  int64
	IsDir bool
	Temp  bool
}

// Reply answers a Request.
type Reply struct {
	Status  Status
	Session uint64
	Size    int64 // a Stat's size, a Read's file size
	IsDir   bool
	Err     string // why, for a status other than OK
	Data    []byte
	Entries []Entry
	More    bool // a listing with more entries after the last one
}

const version = 1

// Errors of the decoders.
var (
	ErrMalformed = errors.New("nodestore: malformed message")
	ErrTooLarge  = errors.New("nodestore: message over the limit")
)

type enc struct{ b []byte }

func (e *enc) u8(v uint8)   { e.b = append(e.b, v) }
func (e *enc) u32(v uint32) { e.b = binary.LittleEndian.AppendUint32(e.b, v) }
func (e *enc) u64(v uint64) { e.b = binary.LittleEndian.AppendUint64(e.b, v) }
func (e *enc) str(s string) { e.u32(uint32(len(s))); e.b = append(e.b, s...) }
func (e *enc) bytes(p []byte) {
	e.u32(uint32(len(p)))
	e.b = append(e.b, p...)
}

type dec struct {
	b   []byte
	err error
}

func (d *dec) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || len(d.b) < n {
		d.err = fmt.Errorf("%w: truncated", ErrMalformed)
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}
func (d *dec) u8() uint8 {
	if p := d.take(1); p != nil {
		return p[0]
	}
	return 0
}
func (d *dec) u32() uint32 {
	if p := d.take(4); p != nil {
		return binary.LittleEndian.Uint32(p)
	}
	return 0
}
func (d *dec) u64() uint64 {
	if p := d.take(8); p != nil {
		return binary.LittleEndian.Uint64(p)
	}
	return 0
}
func (d *dec) blob(limit int, what string) []byte {
	n := d.u32()
	if d.err == nil && n > uint32(limit) {
		d.err = fmt.Errorf("%w: %s of %d bytes, limit %d", ErrTooLarge, what, n, limit)
		return nil
	}
	return d.take(int(n))
}
func (d *dec) done() error {
	if d.err == nil && len(d.b) != 0 {
		return fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(d.b))
	}
	return d.err
}

// EncodeRequest returns a request's bytes.
func EncodeRequest(r Request) []byte {
	e := enc{b: make([]byte, 0, 48+len(r.Name)+len(r.After)+len(r.Data))}
	e.u8(version)
	e.u8(uint8(r.Op))
	e.u64(r.Session)
	e.u64(uint64(r.Offset))
	e.u32(r.Length)
	e.u32(r.Sum)
	e.str(r.Name)
	e.str(r.After)
	e.bytes(r.Data)
	return e.b
}

// DecodeRequest reads a request, bounded; it checks the fields' ranges,
// not what the server allows (Server.Admit does).
func DecodeRequest(b []byte) (Request, error) {
	var r Request
	if len(b) > MaxMsg {
		return r, fmt.Errorf("%w: request of %d bytes, limit %d", ErrTooLarge, len(b), MaxMsg)
	}
	d := dec{b: b}
	if v := d.u8(); d.err == nil && v != version {
		return r, fmt.Errorf("%w: version %d, want %d", ErrMalformed, v, version)
	}
	r.Op = Op(d.u8())
	r.Session = d.u64()
	r.Offset = int64(d.u64())
	r.Length = d.u32()
	r.Sum = d.u32()
	r.Name = string(d.blob(MaxName, "name"))
	r.After = string(d.blob(MaxName, "list position"))
	r.Data = d.blob(MaxData, "data")
	if err := d.done(); err != nil {
		return Request{}, err
	}
	switch {
	case r.Op == 0 || r.Op >= opEnd:
		return Request{}, fmt.Errorf("%w: unknown operation %d", ErrMalformed, uint8(r.Op))
	case r.Offset < 0 || r.Offset > MaxFileSize:
		return Request{}, fmt.Errorf("%w: offset %d out of range", ErrMalformed, r.Offset)
	case r.Length > MaxData:
		return Request{}, fmt.Errorf("%w: read of %d bytes, limit %d", ErrTooLarge, r.Length, MaxData)
	}
	return r, nil
}

// EncodeReply returns a reply's bytes.
func EncodeReply(r Reply) []byte {
	e := enc{b: make([]byte, 0, 32+len(r.Err)+len(r.Data)+len(r.Entries)*32)}
	e.u8(version)
	e.u8(uint8(r.Status))
	e.u64(r.Session)
	e.u64(uint64(r.Size))
	flags := uint8(0)
	if r.IsDir {
		flags |= 1
	}
	if r.More {
		flags |= 2
	}
	e.u8(flags)
	e.str(r.Err)
	e.bytes(r.Data)
	e.u32(uint32(len(r.Entries)))
	for _, en := range r.Entries {
		e.str(en.Name)
		e.u64(uint64(en.Size))
		f := uint8(0)
		if en.IsDir {
			f |= 1
		}
		if en.Temp {
			f |= 2
		}
		e.u8(f)
	}
	return e.b
}

// MaxReply bounds a reply's encoding: a full listing page or MaxData.
const MaxReply = MaxData + MaxListEntries*(MaxName+13) + 4096

// DecodeReply reads a reply, bounded.
func DecodeReply(b []byte) (Reply, error) {
	var r Reply
	if len(b) > MaxReply {
		return r, fmt.Errorf("%w: reply of %d bytes, limit %d", ErrTooLarge, len(b), MaxReply)
	}
	d := dec{b: b}
	if v := d.u8(); d.err == nil && v != version {
		return r, fmt.Errorf("%w: version %d, want %d", ErrMalformed, v, version)
	}
	r.Status = Status(d.u8())
	r.Session = d.u64()
	r.Size = int64(d.u64())
	flags := d.u8()
	r.IsDir, r.More = flags&1 != 0, flags&2 != 0
	r.Err = string(d.blob(1024, "error text"))
	r.Data = d.blob(MaxData, "data")
	n := d.u32()
	if d.err == nil && n > MaxListEntries {
		return Reply{}, fmt.Errorf("%w: %d entries, limit %d", ErrTooLarge, n, MaxListEntries)
	}
	for i := uint32(0); i < n && d.err == nil; i++ {
		var en Entry
		en.Name = string(d.blob(MaxName, "entry name"))
		en.Size = int64(d.u64())
		f := d.u8()
		en.IsDir, en.Temp = f&1 != 0, f&2 != 0
		if en.Size < 0 {
			d.err = fmt.Errorf("%w: entry size %d", ErrMalformed, en.Size)
		}
		r.Entries = append(r.Entries, en)
	}
	if err := d.done(); err != nil {
		return Reply{}, err
	}
	if r.Status >= statusEnd || flags > 3 || r.Size < 0 {
		return Reply{}, fmt.Errorf("%w: status %d flags %d size %d", ErrMalformed, r.Status, flags, r.Size)
	}
	return r, nil
}

package nodestore

import (
	"fmt"
	"hash/crc32"
	"strings"

	"github.com/cutpoint/cutpoint/ckpt/backend"
)

// castagnoli is the CRC32C table: the check of a whole upload, on top of
// the content hashes every read of a pack checks anyway.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Checksum extends a running CRC32C of an upload.
func Checksum(sum uint32, p []byte) uint32 { return crc32.Update(sum, castagnoli, p) }

// ConfigName is the one file outside the job's packs a client may read:
// the store's configuration (chunk size and hash), which a client checks
// before it copies a shard.
const ConfigName = "cutpoint-store.json"

// Server decides what a serving rank does with each request to its host's
// node-local store. It holds the uploads in progress; the driver executes
// the Action Admit returns on its backend, replies, and calls Done. Not
// safe for concurrent use: the driver serialises.
type Server struct {
	prefix   string // every name written or read: "jobs/<job>/packs/"
	next     uint64
	sessions map[uint64]*upload
	recent   []uint64 // sessions committed lately, for a repeated commit
	// Refused counts refused requests by status (hostile or stale input).
	Refused [statusEnd]uint64
}

type upload struct {
	name string
	size int64
	sum  uint32
	idle int
}

// NewServer is the machine of a store serving job's packs.
func NewServer(job string) *Server {
	return &Server{prefix: "jobs/" + job + "/packs/", sessions: map[uint64]*upload{}}
}

// Action is what the driver does for a request: on its backend when Kind
// is set (the operation of the same name), else it only sends Reply.
type Action struct {
	Kind    Op
	Session uint64
	Name    string
	Offset  int64
	Length  int
	After   string
	Data    []byte
	// Reply, when Kind is 0: the answer, nothing to execute. When Kind is
	// OpAbort with Reply set: abort the session's file, then send Reply.
	Reply *Reply
}

func (s *Server) refuse(st Status, format string, args ...any) Action {
	s.Refused[st]++
	return Action{Reply: &Reply{Status: st, Err: fmt.Sprintf(format, args...)}}
}

// Sessions is the number of uploads in progress.
func (s *Server) Sessions() int { return len(s.sessions) }

func (s *Server) nameOK(name string, write bool) error {
	if err := backend.ValidName(name); err != nil {
		return err
	}
	if !write && name == ConfigName {
		return nil
	}
	rest, ok := strings.CutPrefix(name, s.prefix)
	if !ok || rest == "" {
		return fmt.Errorf("name %q is not under %s", trunc(name), s.prefix)
	}
	return nil
}

func trunc(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// Admit checks a request and returns what to do.
func (s *Server) Admit(r Request) Action {
	switch r.Op {
	case OpCreate, OpReplace:
		if err := s.nameOK(r.Name, true); err != nil {
			return s.refuse(StatusInvalid, "%s: %v", r.Op, err)
		}
		if r.Op == OpReplace {
			return Action{Kind: OpReplace, Name: r.Name, Data: r.Data}
		}
		if len(s.sessions) >= MaxSessions {
			return s.refuse(StatusBusy, "create: %d uploads in progress", len(s.sessions))
		}
		s.next++
		s.sessions[s.next] = &upload{name: r.Name}
		return Action{Kind: OpCreate, Session: s.next, Name: r.Name}
	case OpStat, OpRead, OpList:
		dir := r.Op == OpList
		name := r.Name
		if dir {
			name = strings.TrimSuffix(r.Name, "/") + "/x" // a directory: check a name inside it
		}
		if err := s.nameOK(name, false); err != nil && !(r.Op == OpStat && s.nameOK(r.Name+"/x", false) == nil) {
			return s.refuse(StatusInvalid, "%s: %v", r.Op, err)
		}
		if dir && r.After != "" && !strings.HasPrefix(r.After, r.Name+"/") {
			return s.refuse(StatusInvalid, "list %q: position %q is not in it", trunc(r.Name), trunc(r.After))
		}
		return Action{Kind: r.Op, Name: r.Name, Offset: r.Offset, Length: int(r.Length), After: r.After}
	}
	u := s.sessions[r.Session]
	if u == nil {
		if r.Op == OpCommit && s.committed(r.Session) {
			return Action{Reply: &Reply{Status: StatusOK, Session: r.Session}} // a repeated commit
		}
		if r.Op == OpAbort {
			return Action{Reply: &Reply{Status: StatusOK, Session: r.Session}}
		}
		return s.refuse(StatusUnknown, "%s: no upload %d here", r.Op, r.Session)
	}
	u.idle = 0
	switch r.Op {
	case OpWrite:
		switch {
		case r.Offset == u.size && u.size+int64(len(r.Data)) <= MaxFileSize:
			u.size += int64(len(r.Data))
			u.sum = Checksum(u.sum, r.Data)
			return Action{Kind: OpWrite, Session: r.Session, Offset: r.Offset, Data: r.Data}
		case r.Offset+int64(len(r.Data)) <= u.size:
			// Bytes the upload has already: a piece sent again because
			// its reply was lost or late, while the pieces after it (a
			// window of them) arrived. Not written twice; a different
			// content would fail the commit's checksum.
			return Action{Reply: &Reply{Status: StatusOK, Session: r.Session}}
		}
		delete(s.sessions, r.Session)
		s.Refused[StatusInvalid]++
		return Action{Kind: OpAbort, Session: r.Session, Reply: &Reply{Status: StatusInvalid,
			Err: fmt.Sprintf("write of %d bytes at %d to %s: the upload has %d bytes", len(r.Data), r.Offset, trunc(u.name), u.size)}}
	case OpCommit:
		delete(s.sessions, r.Session)
		if r.Offset != u.size || r.Sum != u.sum {
			s.Refused[StatusInvalid]++
			return Action{Kind: OpAbort, Session: r.Session, Reply: &Reply{Status: StatusInvalid,
				Err: fmt.Sprintf("commit of %s: %d bytes CRC32C %08x sent, %d bytes %08x received", trunc(u.name), r.Offset, r.Sum, u.size, u.sum)}}
		}
		return Action{Kind: OpCommit, Session: r.Session, Name: u.name}
	default: // OpAbort
		delete(s.sessions, r.Session)
		return Action{Kind: OpAbort, Session: r.Session}
	}
}

// Done records the outcome of an executed action: a failed create or
// write ends its upload (the driver aborts its file); a commit that
// succeeded is remembered so that a repeated commit is answered OK.
func (s *Server) Done(a Action, err error) {
	switch a.Kind {
	case OpCreate, OpWrite:
		if err != nil {
			delete(s.sessions, a.Session)
		}
	case OpCommit:
		if err == nil {
			s.recent = append(s.recent, a.Session)
			if len(s.recent) > 4*MaxSessions {
				s.recent = s.recent[1:]
			}
		}
	}
}

func (s *Server) committed(id uint64) bool {
	for _, c := range s.recent {
		if c == id {
			return true
		}
	}
	return false
}

// Tick ages the uploads; it returns those idle for IdleTicks, which the
// driver aborts (a client that died mid-upload).
func (s *Server) Tick() []uint64 {
	var out []uint64
	for id, u := range s.sessions {
		u.idle++
		if u.idle >= IdleTicks {
			out = append(out, id)
			delete(s.sessions, id)
		}
	}
	return out
}

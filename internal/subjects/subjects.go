// Package subjects names the NATS subjects of cutpoint's control plane, shared
// by the rank runtime and the coordinator driver, and the permissions each
// of a job's NATS users gets on them. Data channels have their own
// subjects in rank/transport; both start with "cp.<space>." (Space: the
// job's name and its random id) and differ in the next token ("ctl" here,
// the incarnation number there).
package subjects

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
)

// Job makes a subject token of a job name: job names may hold '.', which
// separates NATS tokens, and never '~', so replacing one by the other keeps
// distinct jobs on distinct subjects.
func Job(job string) string { return strings.ReplaceAll(job, ".", "~") }

// IDLen is the length of a job id: 16 lowercase hex digits (64 random
// bits), so that two jobs of the same name on one NATS server never
// share a subject.
const IDLen = 16

// NewID returns a random job id.
func NewID() string {
	var b [IDLen / 2]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

// ErrID is returned by CheckID for an id that is not IDLen lowercase hex
// digits.
var ErrID = errors.New("job id: want 16 lowercase hex digits")

// CheckID checks a job id (from the environment or the store).
func CheckID(id string) error {
	if len(id) != IDLen {
		return ErrID
	}
	for _, c := range id {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return ErrID
		}
	}
	return nil
}

// Space is the job's subject space, the tokens after "cp.": the job's
// name token and its id ("heat2d.3f9c0e2a71b4d855"). An empty id gives the
// name alone (tests and tools that run one job on a private server); every
// launcher gives one.
func Space(job, id string) string {
	if id == "" {
		return Job(job)
	}
	return Job(job) + "." + id
}

// ToCoordinator carries rank's messages to the coordinator: each rank has
// its own subject, so NATS's permissions can say who may publish what.
func ToCoordinator(space string, rank int) string {
	return "cp." + space + ".ctl.r2c." + strconv.Itoa(rank)
}

// ToCoordinatorAll is the coordinator's subscription to every rank's
// messages.
func ToCoordinatorAll(space string) string { return "cp." + space + ".ctl.r2c.*" }

// RankOf is the rank a ToCoordinator subject names, or -1.
func RankOf(subject string) int {
	i := strings.LastIndexByte(subject, '.')
	if i < 0 {
		return -1
	}
	n, err := strconv.Atoi(subject[i+1:])
	if err != nil || n < 0 {
		return -1
	}
	return n
}

// ToRank carries coordinator messages for one rank; every process of that
// rank listens on it.
func ToRank(space string, rank int) string { return "cp." + space + ".ctl.c2r." + strconv.Itoa(rank) }

// ToAll carries coordinator broadcasts.
func ToAll(space string) string { return "cp." + space + ".ctl.c2r.all" }

// Result carries a rank's job result (request/reply: the coordinator
// driver acknowledges it). Only rank 0 may publish it.
func Result(space string) string { return "cp." + space + ".ctl.result" }

// All is every subject of the job's space.
func All(space string) string { return "cp." + space + ".>" }

// Inbox is the prefix of the job's reply subjects (nats.CustomInboxPrefix):
// replies stay inside the job's permissions too.
func Inbox(space string) string { return "_INBOX_cp." + space }

// Permissions are the subjects one of the job's NATS users may publish and
// subscribe to (NATS wildcards).
type Permissions struct {
	Publish, Subscribe []string
}

// CoordinatorPermissions: the coordinator publishes and subscribes within
// the job's space and answers on the job's inboxes.
func CoordinatorPermissions(space string) Permissions {
	return Permissions{
		Publish:   []string{All(space), Inbox(space) + ".>"},
		Subscribe: []string{All(space), Inbox(space) + ".>"},
	}
}

// RankPermissions: rank r publishes only its own data and ack frames
// (rank/transport: cp.<space>.<g>.d.<to>.<from> and .a.<to>.<from>, from
// = r), its own messages to the coordinator and, for rank 0 alone, the
// job's result; it subscribes to its own data and acks, the coordinator's
// messages to it and to all, and its inbox (the result's reply).
func RankPermissions(space string, r int) Permissions {
	me := strconv.Itoa(r)
	p := Permissions{
		Publish: []string{
			"cp." + space + ".*.d.*." + me,
			"cp." + space + ".*.a.*." + me,
			ToCoordinator(space, r),
			StoreAll(space),
		},
		Subscribe: []string{
			"cp." + space + ".*.d." + me + ".*",
			"cp." + space + ".*.a." + me + ".*",
			ToRank(space, r),
			ToAll(space),
			RankInbox(space, r) + ".>",
			StoreAll(space),
		},
	}
	if r == 0 {
		p.Publish = append(p.Publish, Result(space))
	}
	return p
}

// WorldPermissions are those of the ranks of an MPI world together (one
// environment, so one user): every rank's data, acks and reports and the
// result, but still no control message and nothing outside the job.
func WorldPermissions(space string) Permissions {
	return Permissions{
		Publish: []string{"cp." + space + ".*.d.*.*", "cp." + space + ".*.a.*.*", ToCoordinatorAll(space), Result(space), StoreAll(space)},
		Subscribe: []string{"cp." + space + ".*.d.*.*", "cp." + space + ".*.a.*.*", "cp." + space + ".ctl.c2r.*",
			Inbox(space) + ".>", StoreAll(space)},
	}
}

// Store is the queue subject of host's node-local store, served by the
// job's ranks on that host (rank/nodestore.go); dots in the host name
// become "~" like the job's.
func Store(space, host string) string {
	return "cp." + space + ".ctl.store." + strings.ReplaceAll(host, ".", "~")
}

// StoreAll matches every host's node-local store subjects of the job,
// and the per-upload subjects below them.
func StoreAll(space string) string { return "cp." + space + ".ctl.store.>" }

// RankInbox is rank r's reply prefix (a sub-prefix of Inbox).
func RankInbox(space string, r int) string { return Inbox(space) + ".r" + strconv.Itoa(r) }

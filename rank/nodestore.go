package rank

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/cutpoint/cutpoint/ckpt/backend"
	"github.com/cutpoint/cutpoint/internal/nodestore"
	"github.com/cutpoint/cutpoint/internal/pause"
	"github.com/cutpoint/cutpoint/internal/subjects"
)

// The drivers of internal/nodestore: every rank serves its host's
// node-local store to the job's other ranks over NATS (storeServer), and
// reaches another host's node-local store only through the ranks on that
// host (remoteBackend, a backend.Backend, so that ckpt's CopyShard,
// EncodeShard and RebuildShard run over it unchanged with every check
// they make). Requests to a host go to its queue subject (one of the
// ranks there answers); an upload, once created, talks to the rank that
// created its file on that rank's own subject.

// storeSubject is the queue subject of host's node-local store, in the
// job's subject space.
func storeSubject(job, jobID, host string) string {
	return subjects.Store(subjects.Space(job, jobID), host)
}

// storeQueue is the queue group of the ranks serving one host.
const storeQueue = "store"

// storeServer serves one rank's host's node-local store.
type storeServer struct {
	b      backend.Backend
	log    *slog.Logger
	direct string

	mu      sync.Mutex
	m       *nodestore.Server
	writers map[uint64]backend.Writer

	subs []*nats.Subscription
	stop chan struct{}
	done chan struct{}
}

func serveStore(nc *nats.Conn, job, jobID, host string, b backend.Backend, log *slog.Logger) (*storeServer, error) {
	s := &storeServer{b: b, log: log, m: nodestore.NewServer(job), writers: map[uint64]backend.Writer{},
		stop: make(chan struct{}), done: make(chan struct{})}
	subj := storeSubject(job, jobID, host)
	s.direct = subj + "." + nats.NewInbox()[len(nats.InboxPrefix):]
	q, err := nc.QueueSubscribe(subj, storeQueue, s.handle)
	if err != nil {
		return nil, fmt.Errorf("serve the node-local store: %w", err)
	}
	d, err := nc.Subscribe(s.direct, s.handle)
	if err != nil {
		q.Unsubscribe()
		return nil, fmt.Errorf("serve the node-local store: %w", err)
	}
	s.subs = []*nats.Subscription{q, d}
	// Clients wait for each reply (a read, a create), so little is ever
	// pending on the queue subject; the bound keeps a flood from growing
	// the process. The direct subject takes every upload's window: as many
	// as the machine holds, each a window of writes and a commit. A
	// message over the bound is dropped by the client library (a slow
	// consumer); the upload it belonged to then has a gap, which the
	// machine refuses, and its writer falls back.
	_ = q.SetPendingLimits(256, 64<<20)
	const inFlight = nodestore.MaxSessions * (nodestore.Window + 1)
	_ = d.SetPendingLimits(inFlight, inFlight*nodestore.MaxMsg)
	go s.ticker()
	return s, nil
}

func (s *storeServer) ticker() {
	defer close(s.done)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		s.mu.Lock()
		for _, id := range s.m.Tick() {
			if w := s.writers[id]; w != nil {
				w.Abort()
				delete(s.writers, id)
				s.log.Warn("node-local store: an upload stayed idle, aborted", "session", id)
			}
		}
		s.mu.Unlock()
	}
}

func (s *storeServer) close() {
	for _, sub := range s.subs {
		_ = sub.Unsubscribe()
	}
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, w := range s.writers {
		w.Abort()
		delete(s.writers, id)
	}
}

func statusOf(err error) nodestore.Status {
	switch {
	case err == nil:
		return nodestore.StatusOK
	case errors.Is(err, backend.ErrNotExist):
		return nodestore.StatusNotExist
	case errors.Is(err, backend.ErrExist):
		return nodestore.StatusExist
	case errors.Is(err, backend.ErrInvalidName):
		return nodestore.StatusInvalid
	}
	return nodestore.StatusFailed
}

func errReply(err error) nodestore.Reply {
	msg := err.Error()
	if len(msg) > 1000 {
		msg = msg[:1000]
	}
	return nodestore.Reply{Status: statusOf(err), Err: msg}
}

func (s *storeServer) handle(msg *nats.Msg) {
	if msg.Reply == "" {
		return
	}
	req, err := nodestore.DecodeRequest(msg.Data)
	if err != nil {
		s.mu.Lock()
		s.m.Refused[nodestore.StatusInvalid]++
		s.mu.Unlock()
		_ = msg.Respond(nodestore.EncodeReply(nodestore.Reply{Status: nodestore.StatusInvalid, Err: err.Error()}))
		return
	}
	rep := s.execute(req)
	_ = msg.Respond(nodestore.EncodeReply(rep))
}

// execute runs what the machine admits. Uploads (create, write, commit,
// abort) hold the lock while they touch their file; reads do not.
func (s *storeServer) execute(req nodestore.Request) nodestore.Reply {
	ctx := context.Background()
	s.mu.Lock()
	a := s.m.Admit(req)
	switch a.Kind {
	case 0:
		s.mu.Unlock()
		return *a.Reply
	case nodestore.OpCreate, nodestore.OpWrite, nodestore.OpCommit, nodestore.OpAbort:
		defer s.mu.Unlock()
		var err error
		switch a.Kind {
		case nodestore.OpCreate:
			var w backend.Writer
			if w, err = s.b.Create(ctx, a.Name); err == nil {
				s.writers[a.Session] = w
			}
		case nodestore.OpWrite:
			w := s.writers[a.Session]
			if w == nil {
				err = errors.New("upload lost")
			} else if _, err = w.Write(a.Data); err != nil {
				w.Abort()
				delete(s.writers, a.Session)
			}
		case nodestore.OpCommit:
			if w := s.writers[a.Session]; w == nil {
				err = errors.New("upload lost")
			} else {
				err = w.Commit() // fsync, rename, fsync of the directory
				delete(s.writers, a.Session)
			}
		case nodestore.OpAbort:
			if w := s.writers[a.Session]; w != nil {
				w.Abort()
				delete(s.writers, a.Session)
			}
		}
		s.m.Done(a, err)
		if a.Reply != nil {
			return *a.Reply
		}
		if err != nil {
			return errReply(err)
		}
		rep := nodestore.Reply{Session: a.Session}
		if a.Kind == nodestore.OpCreate {
			rep.Data = []byte(s.direct)
		}
		return rep
	}
	s.mu.Unlock()
	switch a.Kind {
	case nodestore.OpReplace:
		if err := s.b.Replace(ctx, a.Name, a.Data); err != nil {
			return errReply(err)
		}
		return nodestore.Reply{}
	case nodestore.OpStat:
		fi, err := s.b.Stat(ctx, a.Name)
		if err != nil {
			return errReply(err)
		}
		return nodestore.Reply{Size: fi.Size, IsDir: fi.IsDir}
	case nodestore.OpRead:
		r, err := s.b.Open(ctx, a.Name)
		if err != nil {
			return errReply(err)
		}
		defer r.Close()
		n := max(0, min(int64(a.Length), r.Size()-a.Offset))
		buf := make([]byte, n)
		if n > 0 {
			if _, err := r.ReadAt(buf, a.Offset); err != nil && !errors.Is(err, io.EOF) {
				return errReply(err)
			}
		}
		return nodestore.Reply{Size: r.Size(), Data: buf}
	case nodestore.OpList:
		var rep nodestore.Reply
		stop := errors.New("page full")
		err := s.b.List(ctx, a.Name, func(fi backend.FileInfo) error {
			if a.After != "" && fi.Name <= a.After {
				return nil
			}
			if len(rep.Entries) == nodestore.MaxListEntries {
				rep.More = true
				return stop
			}
			rep.Entries = append(rep.Entries, nodestore.Entry{Name: fi.Name, Size: fi.Size, IsDir: fi.IsDir, Temp: fi.Temp})
			return nil
		})
		if err != nil && !errors.Is(err, stop) {
			return errReply(err)
		}
		return rep
	}
	return nodestore.Reply{Status: nodestore.StatusInvalid, Err: "unknown action"}
}

// remoteBackend is another host's node-local store, reached through the
// ranks on that host. Remove and CreateExclusive are not offered: each
// host collects and creates its own store.
type remoteBackend struct {
	nc      *nats.Conn
	host    string
	subj    string
	timeout time.Duration
	limit   *sharedBucket
	// graceUntil: before then, a host where no rank answers yet is asked
	// again (the job's ranks start together, not at the same instant: a
	// restore may look for a copy before the ranks holding it are up).
	graceUntil time.Time
}

// sharedBucket is one rank's bandwidth bound over all its copies.
type sharedBucket struct {
	mu sync.Mutex
	b  *nodestore.Bucket
}

func (s *sharedBucket) wait(ctx context.Context, n int) error {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	d := s.b.Take(time.Now(), n)
	s.mu.Unlock()
	if d <= 0 {
		return nil
	}
	return pause.For(ctx, d)
}

var _ backend.Backend = (*remoteBackend)(nil)

// errNoServer: no rank serves the host's store (the host is gone, or has
// no rank now). It matches backend.ErrNotExist, so a restore skips the
// host as it skips a missing copy.
var errNoServer = fmt.Errorf("no rank serves that host's node-local store: %w", backend.ErrNotExist)

// errNoAnswer: a host's store did not answer a probe in time (its ranks
// are stopped, or the host is lost and the NATS server does not know yet).
// It matches backend.ErrNotExist too: a restore skips the host.
var errNoAnswer = fmt.Errorf("no rank answered for that host's node-local store: %w", backend.ErrNotExist)

// noGraceKey marks a context whose requests fail at once on a host where
// no rank serves, even within the start grace (withoutGrace).
type noGraceKey struct{}

// withoutGrace is ctx for a first look at every copy: a restore tries the
// hosts that answer now before it waits the start grace for one that may
// still be starting (a dead host would otherwise cost the whole grace
// while another host holds the copy).
func withoutGrace(ctx context.Context) context.Context {
	return context.WithValue(ctx, noGraceKey{}, true)
}

// graceOrder tries candidates 0..n-1 in order, each first without the
// start grace (withoutGrace), then, after all the others, those where no
// rank served yet (errNoServer), within the grace (a host still starting):
// a dead host costs nothing while another candidate answers. try reports
// done to stop (a success, or an error no other candidate can help with);
// failed hears each candidate's last error. It returns whether a try was
// done.
func graceOrder(ctx context.Context, n int, try func(ctx context.Context, i int) (done bool, err error), failed func(i int, err error)) bool {
	quick := withoutGrace(ctx)
	var later []int
	for i := range n {
		done, err := try(quick, i)
		switch {
		case done:
			return true
		case err == nil:
		case errors.Is(err, errNoServer) && ctx.Err() == nil:
			later = append(later, i)
		default:
			failed(i, err)
		}
	}
	for _, i := range later {
		done, err := try(ctx, i)
		if done {
			return true
		}
		if err != nil {
			failed(i, err)
		}
	}
	return false
}

// inGrace: a host where no rank serves yet is asked again (the rank's
// start grace, unless ctx says withoutGrace).
func (b *remoteBackend) inGrace(ctx context.Context) bool {
	return ctx.Value(noGraceKey{}) == nil && time.Now().Before(b.graceUntil)
}

func (b *remoteBackend) String() string { return "node-local store of host " + b.host + " (over NATS)" }

// call sends req to subj and waits for its reply, sending it again (the
// server answers a repeated request without doing it twice) when none
// comes in time.
func (b *remoteBackend) call(ctx context.Context, subj string, req nodestore.Request) (nodestore.Reply, error) {
	data := nodestore.EncodeRequest(req)
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if err = ctx.Err(); err != nil {
			return nodestore.Reply{}, err
		}
		c, cancel := context.WithTimeout(ctx, b.timeout)
		var msg *nats.Msg
		msg, err = b.nc.RequestWithContext(c, subj, data)
		cancel()
		if errors.Is(err, nats.ErrNoResponders) {
			if b.inGrace(ctx) {
				attempt--
				select {
				case <-ctx.Done():
				case <-time.After(100 * time.Millisecond):
				}
				continue
			}
			return nodestore.Reply{}, fmt.Errorf("host %s: %w", b.host, errNoServer)
		}
		if err != nil {
			if errors.Is(err, nats.ErrConnectionClosed) {
				break
			}
			continue
		}
		rep, derr := nodestore.DecodeReply(msg.Data)
		if derr != nil {
			return rep, fmt.Errorf("host %s: %s reply: %w", b.host, req.Op, derr)
		}
		return rep, replyErr(b.host, req, rep)
	}
	return nodestore.Reply{}, fmt.Errorf("host %s: %s %s: %w", b.host, req.Op, req.Name, err)
}

// ping asks host's store for its configuration once, waiting at most
// timeout: any reply proves a rank serves it. It bounds what a host that
// does not answer costs (its processes stopped, or the host lost without
// its connections closing: the NATS server then keeps its subscriptions
// for minutes and every request to it waits out its timeout, three times
// b.timeout per call). A host where no rank serves fails at once, after
// the start grace.
func (b *remoteBackend) ping(ctx context.Context, timeout time.Duration) error {
	data := nodestore.EncodeRequest(nodestore.Request{Op: nodestore.OpStat, Name: nodestore.ConfigName})
	for {
		c, cancel := context.WithTimeout(ctx, timeout)
		_, err := b.nc.RequestWithContext(c, b.subj, data)
		cancel()
		switch {
		case err == nil:
			return nil
		case errors.Is(err, nats.ErrNoResponders) && b.inGrace(ctx):
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
			continue
		case errors.Is(err, nats.ErrNoResponders):
			return fmt.Errorf("host %s: %w", b.host, errNoServer)
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout):
			return fmt.Errorf("host %s: no reply in %v: %w", b.host, timeout, errNoAnswer)
		}
		return fmt.Errorf("host %s: %w", b.host, err)
	}
}

func replyErr(host string, req nodestore.Request, rep nodestore.Reply) error {
	var base error
	switch rep.Status {
	case nodestore.StatusOK:
		return nil
	case nodestore.StatusNotExist:
		base = backend.ErrNotExist
	case nodestore.StatusExist:
		base = backend.ErrExist
	case nodestore.StatusInvalid:
		base = backend.ErrInvalidName
	default:
		base = nodestore.ErrRefused
	}
	return fmt.Errorf("host %s: %s %s: %s: %w", host, req.Op, req.Name, rep.Err, base)
}

func (b *remoteBackend) Create(ctx context.Context, name string) (backend.Writer, error) {
	if err := backend.ValidName(name); err != nil {
		return nil, err
	}
	rep, err := b.call(ctx, b.subj, nodestore.Request{Op: nodestore.OpCreate, Name: name})
	if err != nil {
		return nil, err
	}
	direct := string(rep.Data)
	if !strings.HasPrefix(direct, b.subj+".") || strings.ContainsAny(direct, " *>") {
		return nil, fmt.Errorf("host %s: create %s: the server named subject %q, not one of that host's", b.host, name, direct)
	}
	return &remoteWriter{b: b, ctx: ctx, name: name, direct: direct, up: nodestore.Upload{Session: rep.Session}}, nil
}

func (b *remoteBackend) CreateExclusive(ctx context.Context, name string, data []byte) error {
	return fmt.Errorf("host %s: create %s: a node-local store is created by its own host's ranks: %w", b.host, name, backend.ErrExist)
}

func (b *remoteBackend) Replace(ctx context.Context, name string, data []byte) error {
	if len(data) > nodestore.MaxData {
		return fmt.Errorf("host %s: replace %s: %d bytes, limit %d: %w", b.host, name, len(data), nodestore.MaxData, backend.ErrTooLarge)
	}
	if err := b.limit.wait(ctx, len(data)); err != nil {
		return err
	}
	_, err := b.call(ctx, b.subj, nodestore.Request{Op: nodestore.OpReplace, Name: name, Data: data})
	return err
}

func (b *remoteBackend) Stat(ctx context.Context, name string) (backend.FileInfo, error) {
	rep, err := b.call(ctx, b.subj, nodestore.Request{Op: nodestore.OpStat, Name: name})
	if err != nil {
		return backend.FileInfo{}, err
	}
	return backend.FileInfo{Name: name, Size: rep.Size, IsDir: rep.IsDir}, nil
}

func (b *remoteBackend) Open(ctx context.Context, name string) (backend.Reader, error) {
	fi, err := b.Stat(ctx, name)
	if err != nil {
		return nil, err
	}
	if fi.IsDir {
		return nil, fmt.Errorf("host %s: open %s: a directory: %w", b.host, name, backend.ErrNotRegular)
	}
	// Reads carry no context (io.ReaderAt): each piece has the backend's
	// timeout instead.
	return &remoteReader{b: b, name: name, size: fi.Size}, nil
}

func (b *remoteBackend) ReadFile(ctx context.Context, name string, limit int64) ([]byte, error) {
	r, err := b.Open(ctx, name)
	if err != nil {
		return nil, err
	}
	if r.Size() > limit {
		return nil, fmt.Errorf("host %s: %s: %d bytes, limit %d: %w", b.host, name, r.Size(), limit, backend.ErrTooLarge)
	}
	buf := make([]byte, r.Size())
	if _, err := r.ReadAt(buf, 0); err != nil && !(errors.Is(err, io.EOF) && len(buf) == 0) {
		return nil, err
	}
	return buf, nil
}

func (b *remoteBackend) List(ctx context.Context, dir string, fn func(backend.FileInfo) error) error {
	after := ""
	for {
		rep, err := b.call(ctx, b.subj, nodestore.Request{Op: nodestore.OpList, Name: dir, After: after})
		if err != nil {
			return err
		}
		for _, e := range rep.Entries {
			if e.Name <= after || !strings.HasPrefix(e.Name, dir+"/") {
				return fmt.Errorf("host %s: list %s: entry %q out of order or outside", b.host, dir, e.Name)
			}
			if err := fn(backend.FileInfo{Name: e.Name, Size: e.Size, IsDir: e.IsDir, Temp: e.Temp}); err != nil {
				return err
			}
			after = e.Name
		}
		if !rep.More || len(rep.Entries) == 0 {
			return nil
		}
	}
}

func (b *remoteBackend) Remove(ctx context.Context, name string) error {
	return fmt.Errorf("host %s: remove %s: each host collects its own node-local store", b.host, name)
}

// remoteWriter uploads one file: pieces of at most nodestore.MaxData, up
// to nodestore.Window of them in flight, paced by the bandwidth bound
// piece by piece. It sends them in order from the caller's goroutine to
// the serving rank's own subject (NATS keeps one connection's messages
// in order: they reach the server as sent), each with a reply subject
// naming its offset under an inbox of the upload's, and collects the
// replies whenever the window is full and before the commit. A piece
// whose reply does not come in the backend's timeout is sent again
// (nodestore.MaxSends in all); a refusal (a piece lost on the way leaves
// a gap the server refuses), a timeout, a closed connection or the
// context's end fails the upload: the writer aborts the remote session
// at once and every later call returns the error (callers fall back to
// another host or the shared store).
type remoteWriter struct {
	b      *remoteBackend
	ctx    context.Context
	name   string
	direct string
	up     nodestore.Upload
	buf    []byte
	done   bool
	err    error // the upload failed: returned by every later call

	inbox  string             // a piece's reply comes to inbox.<offset>
	sub    *nats.Subscription // inbox.*, from the first piece on
	flight []sentPiece        // the pieces sent and not acknowledged, in order
}

// sentPiece is one write in flight: its encoded request (kept to send it
// again; the writer's buffer is reused at once) and when its reply is due.
type sentPiece struct {
	off   int64
	msg   []byte
	due   time.Time
	acked bool // its reply came; a piece before it did not yet
}

func (w *remoteWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.done {
		return 0, backend.ErrFinished
	}
	n := len(p)
	for len(p) > 0 {
		if w.buf == nil {
			w.buf = make([]byte, 0, nodestore.MaxData)
		}
		k := min(len(p), nodestore.MaxData-len(w.buf))
		w.buf = append(w.buf, p[:k]...)
		p = p[k:]
		if len(w.buf) == nodestore.MaxData {
			if err := w.flush(); err != nil {
				return n - len(p), err
			}
		}
	}
	return n, nil
}

// fail ends the upload on err: the remote session is aborted (its
// temporary file removed there) and the inbox released.
func (w *remoteWriter) fail(err error) error {
	if w.err == nil {
		w.err = err
		w.done = true
		w.abort()
		w.release()
	}
	return w.err
}

func (w *remoteWriter) release() {
	if w.sub != nil {
		_ = w.sub.Unsubscribe()
		w.sub = nil
	}
	w.flight = nil
}

// flush sends the buffer as the next piece, once the window has room.
func (w *remoteWriter) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	if w.sub == nil {
		w.inbox = w.b.nc.NewInbox() // under the connection's prefix: the job's permissions allow it
		sub, err := w.b.nc.SubscribeSync(w.inbox + ".*")
		if err != nil {
			return w.fail(fmt.Errorf("host %s: upload %s: %w", w.b.host, w.name, err))
		}
		w.sub = sub
	}
	for w.up.Full() {
		if err := w.collect(); err != nil {
			return w.fail(err)
		}
	}
	if err := w.b.limit.wait(w.ctx, len(w.buf)); err != nil {
		return w.fail(err)
	}
	req, err := w.up.Write(w.buf)
	if err != nil {
		return w.fail(err)
	}
	p := sentPiece{off: req.Offset, msg: nodestore.EncodeRequest(req)} // a copy of the buffer
	w.buf = w.buf[:0]
	if err := w.send(&p); err != nil {
		return w.fail(err)
	}
	w.flight = append(w.flight, p)
	return nil
}

func (w *remoteWriter) send(p *sentPiece) error {
	if err := w.b.nc.PublishRequest(w.direct, w.inbox+"."+strconv.FormatInt(p.off, 10), p.msg); err != nil {
		return fmt.Errorf("host %s: write %s at %d: %w", w.b.host, w.name, p.off, err)
	}
	p.due = time.Now().Add(w.b.timeout)
	return nil
}

// collect waits for one reply to a piece in flight, or for the earliest
// due one's timeout, on which every piece overdue is sent again, in
// order.
func (w *remoteWriter) collect() error {
	var due time.Time
	for _, p := range w.flight {
		if !p.acked && (due.IsZero() || p.due.Before(due)) {
			due = p.due
		}
	}
	c, cancel := context.WithDeadline(w.ctx, due)
	msg, err := w.sub.NextMsgWithContext(c)
	cancel()
	switch {
	case w.ctx.Err() != nil:
		return w.ctx.Err()
	case errors.Is(err, context.DeadlineExceeded):
		now := time.Now()
		for i := range w.flight {
			p := &w.flight[i]
			if p.acked || p.due.After(now) {
				continue
			}
			if err := w.up.Resent(p.off); err != nil {
				return fmt.Errorf("host %s: write %s: %w", w.b.host, w.name, err)
			}
			if err := w.send(p); err != nil {
				return err
			}
		}
		return nil
	case err != nil:
		return fmt.Errorf("host %s: write %s: %w", w.b.host, w.name, err)
	}
	if len(msg.Data) == 0 && msg.Header.Get("Status") == "503" {
		// The serving rank's subject is gone: the rank ended.
		return fmt.Errorf("host %s: write %s: %w", w.b.host, w.name, errNoServer)
	}
	off, err := strconv.ParseInt(strings.TrimPrefix(msg.Subject, w.inbox+"."), 10, 64)
	if err != nil {
		return fmt.Errorf("host %s: write %s: reply on %q", w.b.host, w.name, msg.Subject)
	}
	rep, err := nodestore.DecodeReply(msg.Data)
	if err != nil {
		return fmt.Errorf("host %s: write reply: %w", w.b.host, err)
	}
	if err := replyErr(w.b.host, nodestore.Request{Op: nodestore.OpWrite, Name: w.name}, rep); err != nil {
		return err
	}
	if err := w.up.Acked(off, rep); err != nil {
		return fmt.Errorf("host %s: write %s: %w", w.b.host, w.name, err)
	}
	for i := range w.flight {
		if w.flight[i].off == off {
			w.flight[i].acked = true
		}
	}
	for len(w.flight) > 0 && w.flight[0].off < w.up.Size() {
		w.flight[0].msg = nil // not held by the slice's array
		w.flight = w.flight[1:]
	}
	return nil
}

func (w *remoteWriter) Commit() error {
	if w.err != nil {
		return w.err
	}
	if w.done {
		return backend.ErrFinished
	}
	if err := w.flush(); err != nil {
		return err
	}
	for w.up.InFlight() > 0 {
		if err := w.collect(); err != nil {
			return w.fail(err)
		}
	}
	w.release()
	req, err := w.up.Commit()
	if err != nil {
		return w.fail(err)
	}
	w.done = true
	// The reply comes once the file is fsynced and renamed there.
	if _, err := w.b.call(w.ctx, w.direct, req); err != nil {
		// An abort after a commit that was done is answered and does
		// nothing; after one that was not, it ends the session there.
		w.abort()
		return err
	}
	return nil
}

func (w *remoteWriter) Abort() error {
	if w.done {
		return nil
	}
	w.done = true
	w.abort()
	w.release()
	return nil
}

func (w *remoteWriter) abort() {
	ctx, cancel := context.WithTimeout(context.Background(), w.b.timeout)
	defer cancel()
	_, _ = w.b.call(ctx, w.direct, nodestore.Request{Op: nodestore.OpAbort, Session: w.up.Session})
}

// remoteReader reads a file of another host's store in pieces of at most
// nodestore.MaxData: a read of more than one piece has up to
// nodestore.Window of them in flight (reads change nothing there, so they
// may be answered by any of the host's ranks and in any order).
type remoteReader struct {
	b    *remoteBackend
	name string
	size int64
}

func (r *remoteReader) Size() int64  { return r.size }
func (r *remoteReader) Close() error { return nil }

func (r *remoteReader) ReadAt(p []byte, off int64) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if off < 0 {
		return 0, fmt.Errorf("host %s: read %s at %d: negative offset", r.b.host, r.name, off)
	}
	if off >= r.size {
		return 0, io.EOF
	}
	end := min(off+int64(len(p)), r.size)
	var err error
	if end-off <= nodestore.MaxData {
		err = r.readPiece(p[:end-off], off)
	} else {
		err = r.readWindow(p[:end-off], off)
	}
	if err != nil {
		return 0, err
	}
	if end < off+int64(len(p)) {
		return int(end - off), io.EOF
	}
	return len(p), nil
}

// readPiece reads p (at most MaxData bytes, all within the file) at off
// in one request.
func (r *remoteReader) readPiece(p []byte, off int64) error {
	req := nodestore.Request{Op: nodestore.OpRead, Name: r.name, Offset: off, Length: uint32(len(p))}
	rep, err := r.b.call(context.Background(), r.b.subj, req)
	if err != nil {
		return err
	}
	return r.fill(p, off, rep)
}

// fill checks a read's reply and copies its data into p: the file must
// have its size still, and the piece all its bytes (a shorter one means
// the file changed under the read).
func (r *remoteReader) fill(p []byte, off int64, rep nodestore.Reply) error {
	if rep.Size != r.size || len(rep.Data) != len(p) {
		return fmt.Errorf("host %s: read %s at %d: the file changed (%d bytes, was %d; %d bytes read of %d)",
			r.b.host, r.name, off, rep.Size, r.size, len(rep.Data), len(p))
	}
	copy(p, rep.Data)
	return nil
}

// readWindow reads p (within the file) at off in pieces of MaxData, up to
// Window requests in flight, each with a reply subject naming its offset;
// a piece whose reply does not come in the timeout is asked again
// (nodestore.MaxSends times in all), a reply to a piece done already is
// dropped.
func (r *remoteReader) readWindow(p []byte, off int64) error {
	inbox := r.b.nc.NewInbox()
	sub, err := r.b.nc.SubscribeSync(inbox + ".*")
	if err != nil {
		return fmt.Errorf("host %s: read %s: %w", r.b.host, r.name, err)
	}
	defer sub.Unsubscribe()
	type pending struct {
		msg   []byte
		sends int
		due   time.Time
	}
	out := map[int64]*pending{}
	send := func(o int64, q *pending) error {
		if err := r.b.nc.PublishRequest(r.b.subj, inbox+"."+strconv.FormatInt(o, 10), q.msg); err != nil {
			return fmt.Errorf("host %s: read %s at %d: %w", r.b.host, r.name, o, err)
		}
		q.sends++
		q.due = time.Now().Add(r.b.timeout)
		return nil
	}
	end := off + int64(len(p))
	next := off
	for next < end || len(out) > 0 {
		for next < end && len(out) < nodestore.Window {
			k := min(end-next, nodestore.MaxData)
			q := &pending{msg: nodestore.EncodeRequest(nodestore.Request{Op: nodestore.OpRead, Name: r.name, Offset: next, Length: uint32(k)})}
			if err := send(next, q); err != nil {
				return err
			}
			out[next] = q
			next += k
		}
		var due time.Time
		for _, q := range out {
			if due.IsZero() || q.due.Before(due) {
				due = q.due
			}
		}
		c, cancel := context.WithDeadline(context.Background(), due)
		msg, err := sub.NextMsgWithContext(c)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			now := time.Now()
			for o, q := range out {
				if q.due.After(now) {
					continue
				}
				if q.sends >= nodestore.MaxSends {
					return fmt.Errorf("host %s: read %s at %d: sent %d times, no reply: %w", r.b.host, r.name, o, q.sends, nats.ErrTimeout)
				}
				if err := send(o, q); err != nil {
					return err
				}
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("host %s: read %s: %w", r.b.host, r.name, err)
		}
		if len(msg.Data) == 0 && msg.Header.Get("Status") == "503" {
			return fmt.Errorf("host %s: read %s: %w", r.b.host, r.name, errNoServer)
		}
		o, err := strconv.ParseInt(strings.TrimPrefix(msg.Subject, inbox+"."), 10, 64)
		if err != nil || out[o] == nil {
			continue // a second reply to a piece asked twice
		}
		delete(out, o)
		rep, err := nodestore.DecodeReply(msg.Data)
		if err != nil {
			return fmt.Errorf("host %s: read reply: %w", r.b.host, err)
		}
		if err := replyErr(r.b.host, nodestore.Request{Op: nodestore.OpRead, Name: r.name}, rep); err != nil {
			return err
		}
		if err := r.fill(p[o-off:min(o-off+nodestore.MaxData, int64(len(p)))], o, rep); err != nil {
			return err
		}
	}
	return nil
}

// remoteTimeout bounds the wait for one reply from another host's rank
// (a commit's fsync included); a request is sent at most three times.
const remoteTimeout = 10 * time.Second

// probeTimeout bounds the wait for another host's store to answer at all
// before a copy or a restore uses it (a Stat, which waits at most for an
// fsync of that store's uploads in progress).
const probeTimeout = 5 * time.Second

// startGrace is how long after it joined a rank waits for another host's
// ranks to answer at all.
const startGrace = 5 * time.Second

// pacedBackend is the shared store as a rank's flushes see it: the files
// they write are paced by the rank's bandwidth bound, so that a flush
// takes no more of the file system than --redundancy-bandwidth.
type pacedBackend struct {
	backend.Backend
	limit *sharedBucket
	// fault, when set, is passed each step of a file's write (the
	// flush-write, flush-commit, flush-rename and flush-file fault
	// points).
	fault func(string)
}

func (p *pacedBackend) String() string { return fmt.Sprint(p.Backend) }

func (p *pacedBackend) Create(ctx context.Context, name string) (backend.Writer, error) {
	w, err := p.Backend.Create(ctx, name)
	if err != nil {
		return nil, err
	}
	return &pacedWriter{Writer: w, ctx: ctx, limit: p.limit, fault: p.fault}, nil
}

// pacePiece is the most a flush writes at once: the bandwidth bound is
// spent in pieces this large rather than in CopyShard's 4 MiB blocks (a
// burst at every block), and a kill in the middle of a pack (the
// flush-write fault point) lands inside even a small one.
const pacePiece = 32 << 10

type pacedWriter struct {
	backend.Writer
	ctx   context.Context
	limit *sharedBucket
	fault func(string)
}

func (w *pacedWriter) Write(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		p := b[:min(len(b), pacePiece)]
		if err := w.limit.wait(w.ctx, len(p)); err != nil {
			return n, err
		}
		k, err := w.Writer.Write(p)
		n += k
		if w.fault != nil {
			w.fault("flush-write") // a kill with the file half written
		}
		if err != nil {
			return n, err
		}
		b = b[len(p):]
	}
	return n, nil
}

func (w *pacedWriter) Commit() error {
	if w.fault == nil {
		return w.Writer.Commit()
	}
	w.fault("flush-commit") // every byte written, the file not yet in place
	var err error
	if sc, ok := w.Writer.(backend.StagedCommitter); ok {
		// In place, its directory entry not yet durable.
		err = sc.CommitStaged(func() { w.fault("flush-rename") })
	} else {
		err = w.Writer.Commit()
	}
	if err == nil {
		w.fault("flush-file") // the file in place, the next not begun
	}
	return err
}

package coordinator

import (
	"strings"
	"testing"

	"github.com/cutpoint/cutpoint/internal/wire"
)

// TestAdvanceContract: Advance acknowledges only the Ready handed out, and
// inputs made while a Ready is executed go to the next one.
func TestAdvanceContract(t *testing.T) {
	c, err := New(baseConfig(1), Start{Mode: ModeNew, Generation: 1})
	if err != nil {
		t.Fatal(err)
	}
	mustPanic(t, "Advance before Ready", func() { c.Advance(Ready{}) })
	rd := c.Ready()
	if rd.JobRecord == nil {
		t.Fatalf("the first Ready has no job record: %+v", rd)
	}
	// An input while rd is executed: its actions must not be lost with rd
	// nor appear in it.
	c.JobRecordWritten(rd.JobRecord.Seq)
	if again := c.Ready(); again.n != rd.n || len(again.Spawn) != len(rd.Spawn) {
		t.Fatalf("Ready changed before Advance: %+v, then %+v", rd, again)
	}
	mustPanic(t, "Advance of another Ready", func() { c.Advance(Ready{n: rd.n + 1}) })
	c.Advance(rd)
	mustPanic(t, "Advance twice", func() { c.Advance(rd) })
	if !c.HasReady() {
		t.Fatal("the acknowledgement's actions were lost with the Ready before it")
	}
	if next := c.Ready(); len(next.Spawn) != 1 {
		t.Fatalf("after the record, the spawn: %+v", next)
	}
}

// TestExecuteOrder: Execute writes the record first and acknowledges it
// before the actions that depend on it; a write in flight leaves the
// Ready handed out and the next Execute resumes it without writing again.
func TestExecuteOrder(t *testing.T) {
	c, err := New(baseConfig(1), Start{Mode: ModeNew, Generation: 1})
	if err != nil {
		t.Fatal(err)
	}
	p := &logPorts{inFlight: true}
	if _, err := Execute(c, p); err != ErrInFlight {
		t.Fatalf("Execute with the write in flight: %v", err)
	}
	rd := c.Ready()
	c.JobRecordWritten(rd.JobRecord.Seq)
	for c.HasReady() {
		if o, err := Execute(c, p); err != nil || o != nil {
			t.Fatalf("Execute: %v %+v", err, o)
		}
	}
	if got := strings.Join(p.log, " "); !strings.HasPrefix(got, "record ") || !strings.Contains(got, "spawn") || strings.Count(got, "record") != 1 {
		t.Fatalf("executed %q", got)
	}
}

type logPorts struct {
	inFlight bool
	log      []string
}

func (p *logPorts) WriteRecord(wire.JobRecord) error {
	p.log = append(p.log, "record")
	if p.inFlight {
		return ErrInFlight
	}
	return nil
}
func (p *logPorts) Kill(Process)          { p.log = append(p.log, "kill") }
func (p *logPorts) Spawn(s []Spawn) error { p.log = append(p.log, "spawn"); return nil }
func (p *logPorts) Publish(Message)       { p.log = append(p.log, "publish") }
func (p *logPorts) Commit(Manifest)       { p.log = append(p.log, "commit") }
func (p *logPorts) GC(GC)                 { p.log = append(p.log, "gc") }
func (p *logPorts) Event(Event)           { p.log = append(p.log, "event") }
func (p *logPorts) Confirm([]Process)     { p.log = append(p.log, "confirm") }

func mustPanic(t *testing.T, what string, f func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Errorf("%s: no panic", what)
		}
	}()
	f()
}

package rank

import (
	"reflect"
	"testing"
	"time"

	"github.com/cutpoint/cutpoint/internal/jobstats"
)

// TestStatsRecordEveryCounter: every counter of Stats reaches the stats
// file (a counter added to Stats and not to Record fails here), each
// field set alone.
func TestStatsRecordEveryCounter(t *testing.T) {
	typ := reflect.TypeFor[Stats]()
	for i := range typ.NumField() {
		var s Stats
		v := reflect.ValueOf(&s).Elem().Field(i)
		switch v.Kind() {
		case reflect.Int, reflect.Int64:
			if v.Type() == reflect.TypeFor[time.Duration]() {
				v.SetInt(int64(time.Second))
			} else {
				v.SetInt(7)
			}
		case reflect.Map:
			v.Set(reflect.ValueOf(map[string]int64{"local": 7}))
		default:
			t.Fatalf("Stats.%s: kind %s: teach this test its zero", typ.Field(i).Name, v.Kind())
		}
		var f jobstats.Rank
		s.Record(&f)
		if reflect.DeepEqual(f, jobstats.Rank{}) {
			t.Errorf("Stats.%s does not reach the stats file (Record)", typ.Field(i).Name)
		}
	}
}

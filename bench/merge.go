package bench

import "reflect"

var statType = reflect.TypeOf((*Stat)(nil))

// mergeReps folds repetitions of one measurement into one record: every
// figure becomes the median, min and max over the repetitions' values
// (each repetition contributes its median). The first record gives the
// parameters.
func mergeReps(recs []Record) Record {
	out := recs[0]
	out.Reps = len(recs)
	v := reflect.ValueOf(&out).Elem()
	for i := range v.NumField() {
		if v.Field(i).Type() != statType {
			continue
		}
		var xs []float64
		for _, r := range recs {
			if s := reflect.ValueOf(r).Field(i).Interface().(*Stat); s != nil {
				xs = append(xs, s.Median)
			}
		}
		v.Field(i).Set(reflect.ValueOf(statOf(xs...)))
	}
	return out
}

// mergeByName merges records of the same name, keeping the order of
// their first appearance.
func mergeByName(recs []Record) []Record {
	var names []string
	by := map[string][]Record{}
	for _, r := range recs {
		if _, ok := by[r.Name]; !ok {
			names = append(names, r.Name)
		}
		by[r.Name] = append(by[r.Name], r)
	}
	out := make([]Record, 0, len(names))
	for _, n := range names {
		if len(by[n]) == 1 {
			out = append(out, by[n][0]) // already a summary: keep its spread
			continue
		}
		out = append(out, mergeReps(by[n]))
	}
	return out
}

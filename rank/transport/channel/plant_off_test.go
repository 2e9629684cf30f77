//go:build !cutpoint_plant

package channel

import "testing"

// TestNoPlantsWithoutTag: a build without the cutpoint_plant tag cannot
// plant a bug: the plant in force is the constant PlantNone.
func TestNoPlantsWithoutTag(t *testing.T) {
	if plant != PlantNone {
		t.Fatalf("plant %s", plant)
	}
	for p := PlantNone + 1; int(p) < len(PlantNames); p++ {
		if err := SetPlant(p); err == nil {
			t.Errorf("SetPlant(%s) accepted without the tag", p)
		}
	}
	if plant != PlantNone {
		t.Fatalf("plant %s after refused SetPlant calls", plant)
	}
}

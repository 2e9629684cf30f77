//go:build cutpoint_plant

package channel

// plant is the bug in force in this test build. It is read by every
// machine, so set it only while no machine runs.
var plant Plant

// PlantsBuilt reports whether this build can plant bugs (SetPlant works).
const PlantsBuilt = true

// SetPlant plants p in every machine (PlantNone removes it). Call it only
// while no machine runs.
func SetPlant(p Plant) error {
	plant = p
	return nil
}

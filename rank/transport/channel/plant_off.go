//go:build !cutpoint_plant

package channel

import "errors"

// plant is the bug in force: none, in every build without cutpoint_plant.
const plant = PlantNone

// PlantsBuilt reports whether this build can plant bugs (SetPlant works).
const PlantsBuilt = false

// SetPlant plants p. Without the cutpoint_plant build tag nothing can be
// planted: it refuses anything but PlantNone.
func SetPlant(p Plant) error {
	if p != PlantNone {
		return errors.New("channel: plants need the cutpoint_plant build tag")
	}
	return nil
}

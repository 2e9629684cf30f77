//go:build !cutpoint_plant

package channel

import "errors"

const plant = PlantNone

// SetPlant refuses every plant but PlantNone in this build.
func SetPlant(p Plant) error {
	if p != PlantNone {
		return errors.New("channel: plants need the cutpoint_plant build tag")
	}
	return nil
}

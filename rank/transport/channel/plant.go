package channel

// Plant names a bug planted in the machine on purpose, to prove that the
// simulations catch it. Plants exist only in builds with the
// cutpoint_plant tag (plant_on.go); in every other build the plant in
// force is the constant PlantNone and the planted branches compile away.
type Plant uint8

// The planted bugs.
const (
	PlantNone Plant = iota
	// PlantDropRetransmit: the retransmission loop skips the last
	// fragment of every range marked for retransmission and leaves it
	// marked, so it is never marked (nor sent) again.
	PlantDropRetransmit
	// PlantMisnumberFragment: the last fragment of a fragmented message
	// goes out with the sequence number after its own.
	PlantMisnumberFragment
	// PlantAcceptStale: frames of an older incarnation are taken as
	// frames of the current one instead of being dropped.
	PlantAcceptStale
	numPlants
)

// Plants lists the planted bugs (PlantNone excluded).
func Plants() []Plant {
	var out []Plant
	for p := PlantNone + 1; p < numPlants; p++ {
		out = append(out, p)
	}
	return out
}

func (p Plant) String() string {
	switch p {
	case PlantNone:
		return "none"
	case PlantDropRetransmit:
		return "drop-retransmit"
	case PlantMisnumberFragment:
		return "misnumber-fragment"
	case PlantAcceptStale:
		return "accept-stale"
	}
	return "plant?"
}

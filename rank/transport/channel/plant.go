package channel

// Plant names a bug planted in the machine on purpose, to prove that the
// simulations catch it. Only builds with the cutpoint_plant tag can plant
// one (plant_on.go); in every other build the plant is the constant
// PlantNone and the planted branches compile away.
type Plant uint8

// The planted bugs: PlantDropRetransmit skips the last fragment of every
// range marked for retransmission and leaves it marked, so it is never
// sent again; PlantMisnumberFragment sends the last fragment of a
// fragmented message with the next sequence number; PlantAcceptStale
// takes frames of an older incarnation as the current one's.
const (
	PlantNone Plant = iota
	PlantDropRetransmit
	PlantMisnumberFragment
	PlantAcceptStale
)

// PlantNames are the plants' names, by Plant.
var PlantNames = [...]string{"none", "drop-retransmit", "misnumber-fragment", "accept-stale"}

func (p Plant) String() string { return PlantNames[p] }

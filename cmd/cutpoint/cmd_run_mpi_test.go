package main

import (
	"strings"
	"testing"
)

func TestRunMPIWorld(t *testing.T) {
	cases := []struct {
		args       []string
		mpi        bool // --mpi given
		ranks      int  // --ranks value
		ranksGiven bool
		wantMPI    bool
		wantRanks  int
		err        string
	}{
		{args: []string{"mpirun", "--allow-run-as-root", "-np", "3", "./a", "-n", "9"}, ranks: 4, wantMPI: true, wantRanks: 3},
		{args: []string{"/usr/bin/mpiexec", "-n", "2", "./a"}, ranks: 4, wantMPI: true, wantRanks: 2},
		{args: []string{"mpiexec.hydra", "-np=5", "./a"}, ranks: 4, wantMPI: true, wantRanks: 5},
		{args: []string{"srun", "--mpi=pmix", "--ntasks=6", "./a"}, mpi: true, ranks: 4, wantMPI: true, wantRanks: 6},
		{args: []string{"./wrapper.sh"}, mpi: true, ranks: 8, ranksGiven: true, wantMPI: true, wantRanks: 8},
		{args: []string{"./a"}, ranks: 4, wantMPI: false, wantRanks: 4},
		{args: []string{"mpirun", "./a"}, ranks: 4, err: "number of ranks is unknown"},
		{args: []string{"mpirun", "-np", "2", "./a"}, ranks: 4, ranksGiven: true, err: "--ranks 4 but the MPI launcher starts 2"},
		{args: []string{"mpirun", "-np", "x", "./a"}, ranks: 4, err: "not a number"},
		{args: nil, mpi: true, ranks: 4, err: "give the MPI launcher"},
	}
	for _, c := range cases {
		o := runOptions{MPI: c.mpi}
		o.Ranks = c.ranks
		err := o.mpiWorld(c.args, c.ranksGiven)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%v: err %v, want %q", c.args, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%v: %v", c.args, err)
			continue
		}
		if o.MPI != c.wantMPI || o.Ranks != c.wantRanks {
			t.Errorf("%v: mpi %v ranks %d, want %v %d", c.args, o.MPI, o.Ranks, c.wantMPI, c.wantRanks)
		}
	}
}

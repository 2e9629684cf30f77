package rank

import (
	"strings"
	"testing"
)

// clearIdentity unsets every variable OptionsFromEnv takes the identity
// from, so the host's environment (a CI under Slurm or mpirun) does not leak
// into a case.
func clearIdentity(t *testing.T) {
	t.Helper()
	for _, v := range append(append([]string{EnvRank, EnvWorld, envSlurmProcID, envSlurmNTasks, EnvSecrets}, mpiRankVars...), mpiWorldVars...) {
		t.Setenv(v, "")
	}
}

func TestOptionsFromEnvIdentity(t *testing.T) {
	cases := []struct {
		name        string
		env         map[string]string
		rank, world int
		err         string
	}{
		{"cutpoint", map[string]string{EnvRank: "2", EnvWorld: "4"}, 2, 4, ""},
		{"cutpoint wins over mpi", map[string]string{EnvRank: "1", EnvWorld: "4", "OMPI_COMM_WORLD_RANK": "3", "OMPI_COMM_WORLD_SIZE": "2"}, 1, 4, ""},
		{"open mpi", map[string]string{"OMPI_COMM_WORLD_RANK": "3", "OMPI_COMM_WORLD_SIZE": "4"}, 3, 4, ""},
		{"open mpi with the launcher's world", map[string]string{EnvWorld: "4", "OMPI_COMM_WORLD_RANK": "3", "OMPI_COMM_WORLD_SIZE": "4"}, 3, 4, ""},
		{"mpich", map[string]string{EnvWorld: "3", "PMI_RANK": "2", "PMI_SIZE": "3"}, 2, 3, ""},
		{"pmix under srun", map[string]string{"PMIX_RANK": "5", envSlurmNTasks: "8", envSlurmProcID: "5"}, 5, 8, ""},
		{"mpi before slurm", map[string]string{"OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_SIZE": "2", envSlurmProcID: "0", envSlurmNTasks: "1"}, 1, 2, ""},
		{"slurm", map[string]string{envSlurmProcID: "1", envSlurmNTasks: "2"}, 1, 2, ""},
		{"mpi world differs", map[string]string{EnvWorld: "4", "OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_SIZE": "2"}, 0, 0, "MPI world differ"},
		{"bad mpi rank", map[string]string{"PMI_RANK": "x", "PMI_SIZE": "2"}, 0, 0, "PMI_RANK"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			clearIdentity(t)
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			o, err := OptionsFromEnv()
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err %v, want one naming %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if o.Rank != c.rank || o.World != c.world {
				t.Fatalf("rank %d world %d, want %d %d", o.Rank, o.World, c.rank, c.world)
			}
		})
	}
}

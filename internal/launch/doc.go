// Package launch owns the rank processes of a job: it starts them with their
// identity in the environment, reports every exit at once, and kills a rank
// for certain (the process is gone) before a replacement may start, which
// the recovery barrier requires (R13).
//
// Local runs ranks as children of this process (cutpoint run; Detached for
// cutpoint coordinator --spawn local, whose ranks outlive it). Hosts runs
// each rank through a spawn template (ssh {host} -- {cmd}) on a host that
// Placement chooses: block placement, spares, down hosts. Srun runs
// them as Slurm job steps inside the current allocation (the coordinator
// of the Slurm batch script): the whole world as one step whose tasks take
// their rank from SLURM_PROCID, and a rank brought back alone as a step of
// its own.
package launch

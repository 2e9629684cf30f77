! heat1d_mpi.f90: the 1-D heat job of examples/fortran/heat1d.f90 as an MPI
! code in MPI mode: its halos go over MPI (MPI_Sendrecv), and cutpoint only
! takes its cuts, at cp_checkpoint_here after MPI_Barrier on every step. A
! lost process ends the MPI world and cutpoint run relaunches it whole from
! the latest committed cut. Rank 0 gathers the rod (MPI_Gather) and reports
! its SHA-256.
!
!   mpifort -I. heat1d_mpi.f90 cutpoint.o -lcutpoint -o heat1d_mpi
!   cutpoint run --every-steps 200 -- mpirun -np 4 ./heat1d_mpi CELLS STEPS [PACE_US]
!
! PACE_US sleeps that many microseconds after each step (a short run that
! lasts long enough to have a process killed after a cut; same result).
program heat1d_mpi
  use, intrinsic :: iso_c_binding
  use mpi
  use cutpoint
  implicit none
  integer :: cells, me, world, left, right, i, ierr, pace
  interface
     integer(c_int) function usleep(us) bind(C, name="usleep")
       import :: c_int
       integer(c_int), value :: us
     end function usleep
  end interface
  integer(c_int32_t) :: cme, cworld
  integer(c_int64_t) :: steps, step, r
  real(c_double), allocatable, target :: u(:), tmp(:), rod(:)
  real(c_double), parameter :: alpha = 0.25d0
  integer(c_int8_t), target :: digest(32)
  integer(c_int8_t), target :: none(0)
  character(len=32) :: arg

  call MPI_Init(ierr)
  call MPI_Comm_rank(MPI_COMM_WORLD, me, ierr)
  call MPI_Comm_size(MPI_COMM_WORLD, world, ierr)
  if (command_argument_count() < 2 .or. command_argument_count() > 3) then
     if (me == 0) write (0, '(a)') 'usage: heat1d_mpi CELLS STEPS [PACE_US]'
     call MPI_Finalize(ierr)
     stop 2
  end if
  call get_command_argument(1, arg)
  read (arg, *) cells
  call get_command_argument(2, arg)
  read (arg, *) steps
  pace = 0
  if (command_argument_count() == 3) then
     call get_command_argument(3, arg)
     read (arg, *) pace
  end if

  call check(cp_join_mpi(steps, r), 'join')
  call check(cp_identity(r, cme, cworld), 'identity')
  if (cme /= me .or. cworld /= world) then
     write (0, '(a)') 'heat1d_mpi: cutpoint and MPI disagree on the rank or the world'
     call exit(1)
  end if
  left = me - 1
  right = me + 1
  if (left < 0) left = MPI_PROC_NULL
  if (right >= world) right = MPI_PROC_NULL

  ! u(0) and u(cells+1) are ghosts: the neighbours' end cells, or the
  ! fixed ends of the rod (400 on the left, 300 on the right).
  allocate (u(0:cells + 1), tmp(1:cells))
  do i = 1, cells
     u(i) = 300d0 + 100d0 * sin(real(me * cells + i, c_double) / real(cells * world, c_double) * 3.0d0)
  end do
  u(0) = 400d0
  u(cells + 1) = 300d0
  call check(cp_protect(r, 'u', u), 'protect')
  step = 0
  call check(cp_start(r, step), 'start')
  do while (step < steps)
     call MPI_Sendrecv(u(1), 1, MPI_DOUBLE_PRECISION, left, 0, u(cells + 1), 1, MPI_DOUBLE_PRECISION, right, 0, &
          MPI_COMM_WORLD, MPI_STATUS_IGNORE, ierr)
     call MPI_Sendrecv(u(cells), 1, MPI_DOUBLE_PRECISION, right, 1, u(0), 1, MPI_DOUBLE_PRECISION, left, 1, &
          MPI_COMM_WORLD, MPI_STATUS_IGNORE, ierr)
     tmp = u(1:cells) + alpha * ((u(0:cells - 1) + u(2:cells + 1)) - 2d0 * u(1:cells))
     u(1:cells) = tmp
     step = step + 1
     if (pace > 0) ierr = usleep(int(pace, c_int))
     call MPI_Barrier(MPI_COMM_WORLD, ierr)
     call check(cp_checkpoint_here(r, step), 'checkpoint')
  end do
  if (me == 0) then
     allocate (rod(cells * world))
  else
     allocate (rod(1))
  end if
  call MPI_Gather(u(1:cells), cells, MPI_DOUBLE_PRECISION, rod, cells, MPI_DOUBLE_PRECISION, 0, MPI_COMM_WORLD, ierr)
  if (me == 0) then
     call check(cp_sha256(rod, digest), 'sha256')
     call check(cp_finish(r, digest), 'finish')
  else
     call check(cp_finish(r, none), 'finish')
  end if
  ierr = cp_close(r)
  call MPI_Finalize(ierr)

contains

  subroutine check(rc, what)
    integer(c_int), intent(in) :: rc
    character(len=*), intent(in) :: what
    if (rc == CUTPOINT_OK) return
    write (0, '(4a,i0)') 'heat1d_mpi: ', what, ': ', cp_last_error(), rc
    if (rc == CUTPOINT_STOPPED .or. rc == CUTPOINT_FENCED) call exit(cp_exit_code(r))
    call exit(1)
  end subroutine check
end program heat1d_mpi

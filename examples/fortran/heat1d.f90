! heat1d.f90: a 1-D heat-diffusion job in Fortran on cutpoint (cutpoint.f90).
!
! A rod of CELLS*world cells is split into segments, one per rank; each step
! a rank exchanges its end cells with its neighbours and updates its
! segment (explicit scheme). Rank 0 gathers the rod and reports its
! SHA-256, which the launcher prints as "result <hex>": the same with or
! without ranks killed mid-run.
!
!   cutpoint run --ranks 4 -- ./heat1d CELLS STEPS
program heat1d
  use, intrinsic :: iso_c_binding
  use cutpoint
  implicit none
  integer :: cells, me, world, left, right, i, k, rc
  integer(c_int64_t) :: steps, step, r
  real(c_double), allocatable, target :: u(:), tmp(:), rod(:), buf(:)
  real(c_double), parameter :: alpha = 0.25d0
  integer(c_int8_t), target :: digest(32)
  integer(c_int8_t), target :: none(0)
  character(len=32) :: arg
  integer, allocatable :: peers(:)

  if (command_argument_count() /= 2) then
     write (0, '(a)') 'usage: heat1d CELLS STEPS'
     stop 2
  end if
  call get_command_argument(1, arg)
  read (arg, *) cells
  call get_command_argument(2, arg)
  read (arg, *) steps
  call get_environment_variable('CUTPOINT_RANK', arg)
  read (arg, *) me
  call get_environment_variable('CUTPOINT_WORLD', arg)
  read (arg, *) world

  left = me - 1
  right = me + 1
  if (right >= world) right = -1
  ! Neighbours, and rank 0 (everyone for rank 0) for the gather.
  if (me == 0) then
     allocate (peers(world - 1))
     peers = [(k, k = 1, world - 1)]
  else if (right >= 0 .and. left /= 0) then
     allocate (peers(3))
     peers = [left, right, 0]
  else if (right >= 0) then
     allocate (peers(2))
     peers = [left, right]
  else if (left /= 0) then
     allocate (peers(2))
     peers = [left, 0]
  else
     allocate (peers(1))
     peers = [left]
  end if

  rc = cp_join(peers, steps, r)
  call check(rc, 'join')
  ! u(0) and u(cells+1) are ghosts: the neighbours' end cells, or the
  ! fixed ends of the rod (400 on the left, 300 on the right).
  allocate (u(0:cells + 1), tmp(1:cells), buf(1:max(cells, 1)))
  do i = 1, cells
     u(i) = 300d0 + 100d0 * sin(real(me * cells + i, c_double) / real(cells * world, c_double) * 3.0d0)
  end do
  u(0) = 400d0
  u(cells + 1) = 300d0
  call check(cp_protect(r, 'u', u), 'protect')
  step = 0
  call check(cp_start(r, step), 'start')
  do
     do while (step < steps)
        rc = exchange()
        if (rc == CUTPOINT_OK) then
           tmp = u(1:cells) + alpha * ((u(0:cells - 1) + u(2:cells + 1)) - 2d0 * u(1:cells))
           u(1:cells) = tmp
           rc = cp_safe_point(r, step + 1, step)
        end if
        do while (rc == CUTPOINT_ROLLED_BACK)
           rc = cp_safe_point(r, step, step)
        end do
        call check(rc, 'step')
     end do
     rc = gather()
     if (rc == CUTPOINT_OK) then
        if (me == 0) then
           rc = cp_finish(r, digest)
        else
           rc = cp_finish(r, none)
        end if
     end if
     if (rc /= CUTPOINT_ROLLED_BACK) exit
     do
        rc = cp_safe_point(r, step, step)
        if (rc /= CUTPOINT_ROLLED_BACK) exit
     end do
     call check(rc, 'safe point')
  end do
  call check(rc, 'finish')
  rc = cp_close(r)

contains

  subroutine check(rc, what)
    integer(c_int), intent(in) :: rc
    character(len=*), intent(in) :: what
    if (rc == CUTPOINT_OK) return
    write (0, '(4a,i0,a)') 'heat1d: ', what, ': ', cp_last_error(), rc, ''
    if (rc == CUTPOINT_STOPPED .or. rc == CUTPOINT_FENCED) call exit(cp_exit_code(r))
    call exit(1)
  end subroutine check

  integer function exchange() result(rc)
    integer :: got
    rc = CUTPOINT_OK
    if (left >= 0) rc = cp_send(r, left, u(1:1))
    if (rc == CUTPOINT_OK .and. right >= 0) rc = cp_send(r, right, u(cells:cells))
    if (rc == CUTPOINT_OK .and. left >= 0) then
       rc = cp_recv(r, left, buf(1:1), got)
       if (rc == CUTPOINT_OK) u(0) = buf(1)
    end if
    if (rc == CUTPOINT_OK .and. right >= 0) then
       rc = cp_recv(r, right, buf(1:1), got)
       if (rc == CUTPOINT_OK) u(cells + 1) = buf(1)
    end if
  end function exchange

  integer function gather() result(rc)
    integer :: got, src
    if (me /= 0) then
       rc = cp_send(r, 0, u(1:cells))
       return
    end if
    if (.not. allocated(rod)) allocate (rod(cells * world))
    rod(1:cells) = u(1:cells)
    rc = CUTPOINT_OK
    do src = 1, world - 1
       rc = cp_recv(r, src, rod(src * cells + 1:(src + 1) * cells), got)
       if (rc /= CUTPOINT_OK) return
       if (got /= cells) then
          write (0, '(a,i0)') 'heat1d: short block from rank ', src
          call exit(1)
       end if
    end do
    rc = cp_sha256(rod, digest)
  end function gather

end program heat1d

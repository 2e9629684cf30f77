! cutpoint.f90: Fortran bindings of libcutpoint (cutpoint.h) through
! iso_c_binding. cutpoint.h is the reference for every call's contract;
! this module adds Fortran conveniences for real(8) arrays and strings.
!
!   gfortran -c cutpoint.f90                 ! cutpoint.mod, cutpoint.o
!   gfortran job.f90 cutpoint.o -L. -lcutpoint -o job
!
! Every function returns a status: CUTPOINT_OK (0), CUTPOINT_ROLLED_BACK
! (go back to the loop and call cp_safe_point), CUTPOINT_STOPPED and
! CUTPOINT_FENCED (exit with cp_exit_code), or another error whose message
! cp_last_error returns.
!
! Protected arrays are captured at cuts and overwritten in place on a
! rollback, so they must not move until cp_close: declare them with the
! target attribute (or allocatable) and never deallocate them meanwhile.
! Arrays passed to cp_protect, cp_send and cp_recv must be contiguous
! (CUTPOINT_INVALID otherwise: a copy-in temporary would be captured).
module cutpoint
  use, intrinsic :: iso_c_binding
  implicit none
  private

  integer(c_int), parameter, public :: CUTPOINT_OK = 0, CUTPOINT_ROLLED_BACK = 1, &
       CUTPOINT_STOPPED = 2, CUTPOINT_FENCED = 3, CUTPOINT_NOT_STARTED = 4, &
       CUTPOINT_PROTECT_AFTER_START = 5, CUTPOINT_CLOSED = 6, CUTPOINT_INVALID = 7, &
       CUTPOINT_TOO_SMALL = 8, CUTPOINT_NO_CUDA = 9, CUTPOINT_ERROR = 10

  public :: cp_join, cp_identity, cp_protect, cp_start, cp_send, cp_recv, &
       cp_safe_point, cp_finish, cp_exit_code, cp_close, cp_last_error, cp_sha256, &
       cp_join_mpi, cp_checkpoint_here

  ! cp_protect: a real(8) array of rank 1 or 2.
  interface cp_protect
     module procedure cp_protect_1d, cp_protect_2d
  end interface cp_protect

  interface
     integer(c_int) function c_join(peers, npeers, total_steps, out) bind(C, name="cutpoint_join")
       import :: c_int, c_int32_t, c_size_t, c_int64_t
       integer(c_int32_t), intent(in) :: peers(*)
       integer(c_size_t), value :: npeers
       integer(c_int64_t), value :: total_steps
       integer(c_int64_t), intent(out) :: out
     end function c_join

     integer(c_int) function c_identity(r, rank, world) bind(C, name="cutpoint_identity")
       import :: c_int, c_int64_t, c_int32_t
       integer(c_int64_t), value :: r
       integer(c_int32_t), intent(out) :: rank, world
     end function c_identity

     integer(c_int) function c_protect_host(r, name, ptr, size, elem_size) bind(C, name="cutpoint_protect_host")
       import :: c_int, c_int64_t, c_char, c_ptr, c_size_t
       integer(c_int64_t), value :: r
       character(kind=c_char), intent(in) :: name(*)
       type(c_ptr), value :: ptr
       integer(c_size_t), value :: size
       integer(c_int), value :: elem_size
     end function c_protect_host

     integer(c_int) function c_start(r, step) bind(C, name="cutpoint_start")
       import :: c_int, c_int64_t
       integer(c_int64_t), value :: r
       integer(c_int64_t), intent(out) :: step
     end function c_start

     integer(c_int) function c_send(r, to, buf, n) bind(C, name="cutpoint_send")
       import :: c_int, c_int64_t, c_int32_t, c_ptr, c_size_t
       integer(c_int64_t), value :: r
       integer(c_int32_t), value :: to
       type(c_ptr), value :: buf
       integer(c_size_t), value :: n
     end function c_send

     integer(c_int) function c_recv(r, from, buf, cap, n) bind(C, name="cutpoint_recv")
       import :: c_int, c_int64_t, c_int32_t, c_ptr, c_size_t
       integer(c_int64_t), value :: r
       integer(c_int32_t), value :: from
       type(c_ptr), value :: buf
       integer(c_size_t), value :: cap
       integer(c_size_t), intent(out) :: n
     end function c_recv

     integer(c_int) function c_safe_point(r, step, resume) bind(C, name="cutpoint_safe_point")
       import :: c_int, c_int64_t
       integer(c_int64_t), value :: r, step
       integer(c_int64_t), intent(out) :: resume
     end function c_safe_point

     integer(c_int) function c_join_mpi(total_steps, out) bind(C, name="cutpoint_join_mpi")
       import :: c_int, c_int64_t
       integer(c_int64_t), value :: total_steps
       integer(c_int64_t), intent(out) :: out
     end function c_join_mpi

     integer(c_int) function c_checkpoint_here(r, step) bind(C, name="cutpoint_checkpoint_here")
       import :: c_int, c_int64_t
       integer(c_int64_t), value :: r, step
     end function c_checkpoint_here

     integer(c_int) function c_finish(r, result, n) bind(C, name="cutpoint_finish")
       import :: c_int, c_int64_t, c_ptr, c_size_t
       integer(c_int64_t), value :: r
       type(c_ptr), value :: result
       integer(c_size_t), value :: n
     end function c_finish

     integer(c_int) function c_exit_code(r) bind(C, name="cutpoint_exit_code")
       import :: c_int, c_int64_t
       integer(c_int64_t), value :: r
     end function c_exit_code

     integer(c_int) function c_close(r) bind(C, name="cutpoint_close")
       import :: c_int, c_int64_t
       integer(c_int64_t), value :: r
     end function c_close

     type(c_ptr) function c_last_error() bind(C, name="cutpoint_last_error")
       import :: c_ptr
     end function c_last_error

     integer(c_int) function c_sha256(data, n, out) bind(C, name="cutpoint_sha256")
       import :: c_int, c_ptr, c_size_t, c_int8_t
       type(c_ptr), value :: data
       integer(c_size_t), value :: n
       integer(c_int8_t), intent(out) :: out(32)
     end function c_sha256

     integer(c_size_t) function c_strlen(s) bind(C, name="strlen")
       import :: c_size_t, c_ptr
       type(c_ptr), value :: s
     end function c_strlen
  end interface

contains

  ! cp_join: join as the rank the launcher's environment names. peers:
  ! the ranks this one talks to (an empty array: every other rank).
  integer(c_int) function cp_join(peers, total_steps, r) result(rc)
    integer, intent(in) :: peers(:)
    integer(c_int64_t), intent(in) :: total_steps
    integer(c_int64_t), intent(out) :: r
    integer(c_int32_t) :: p(max(1, size(peers)))
    p = 0
    p(1:size(peers)) = int(peers, c_int32_t)
    rc = c_join(p, int(size(peers), c_size_t), total_steps, r)
  end function cp_join

  integer(c_int) function cp_identity(r, rank, world) result(rc)
    integer(c_int64_t), intent(in) :: r
    integer, intent(out) :: rank, world
    integer(c_int32_t) :: a, b
    rc = c_identity(r, a, b)
    rank = a
    world = b
  end function cp_identity

  integer(c_int) function cp_protect_1d(r, name, a) result(rc)
    integer(c_int64_t), intent(in) :: r
    character(len=*), intent(in) :: name
    real(c_double), intent(inout), target :: a(:)
    if (.not. is_contiguous(a) .or. size(a) < 1) then
       rc = CUTPOINT_INVALID
       return
    end if
    rc = c_protect_host(r, name // c_null_char, c_loc(a(lbound(a, 1))), int(8 * size(a), c_size_t), 8_c_int)
  end function cp_protect_1d

  integer(c_int) function cp_protect_2d(r, name, a) result(rc)
    integer(c_int64_t), intent(in) :: r
    character(len=*), intent(in) :: name
    real(c_double), intent(inout), target :: a(:, :)
    if (.not. is_contiguous(a) .or. size(a) < 1) then
       rc = CUTPOINT_INVALID
       return
    end if
    rc = c_protect_host(r, name // c_null_char, c_loc(a(lbound(a, 1), lbound(a, 2))), &
         int(8 * size(a), c_size_t), 8_c_int)
  end function cp_protect_2d

  ! cp_start: step is 0 for a fresh start, the cut's step after a restore.
  integer(c_int) function cp_start(r, step) result(rc)
    integer(c_int64_t), intent(in) :: r
    integer(c_int64_t), intent(out) :: step
    rc = c_start(r, step)
  end function cp_start

  ! cp_send: send the values of a (contiguous real(8)) to rank to.
  integer(c_int) function cp_send(r, to, a) result(rc)
    integer(c_int64_t), intent(in) :: r
    integer, intent(in) :: to
    real(c_double), intent(in), target :: a(:)
    if (.not. is_contiguous(a) .or. size(a) < 1) then
       rc = CUTPOINT_INVALID
       return
    end if
    rc = c_send(r, int(to, c_int32_t), c_loc(a(lbound(a, 1))), int(8 * size(a), c_size_t))
  end function cp_send

  ! cp_recv: receive the next message from rank from into a; n is the
  ! number of real(8) values it held.
  integer(c_int) function cp_recv(r, from, a, n) result(rc)
    integer(c_int64_t), intent(in) :: r
    integer, intent(in) :: from
    real(c_double), intent(inout), target :: a(:)
    integer, intent(out) :: n
    integer(c_size_t) :: bytes
    n = 0
    if (.not. is_contiguous(a) .or. size(a) < 1) then
       rc = CUTPOINT_INVALID
       return
    end if
    rc = c_recv(r, int(from, c_int32_t), c_loc(a(lbound(a, 1))), int(8 * size(a), c_size_t), bytes)
    n = int(bytes / 8)
  end function cp_recv

  ! cp_safe_point: call after finishing step; resume is the step to go on
  ! from (step, or the cut's step after a rollback).
  integer(c_int) function cp_safe_point(r, step, resume) result(rc)
    integer(c_int64_t), intent(in) :: r
    ! step by value and resume inout: cp_safe_point(r, step, step) is the
    ! common call, and neither aliasing nor intent(out) may spoil it.
    integer(c_int64_t), value :: step
    integer(c_int64_t), intent(inout) :: resume
    integer(c_int64_t) :: s
    rc = c_safe_point(r, step, s)
    if (rc == CUTPOINT_OK) resume = s
  end function cp_safe_point

  ! cp_join_mpi: MPI mode (cutpoint.h): join as the rank the MPI launcher
  ! names, with no cutpoint channels; after MPI_Init.
  integer(c_int) function cp_join_mpi(total_steps, r) result(rc)
    integer(c_int64_t), intent(in) :: total_steps
    integer(c_int64_t), intent(out) :: r
    rc = c_join_mpi(total_steps, r)
  end function cp_join_mpi

  ! cp_checkpoint_here: MPI mode: the quiescent point after step, on every
  ! rank at every step, after MPI_Barrier (no MPI message in flight).
  integer(c_int) function cp_checkpoint_here(r, step) result(rc)
    integer(c_int64_t), intent(in) :: r
    integer(c_int64_t), value :: step
    rc = c_checkpoint_here(r, step)
  end function cp_checkpoint_here

  ! cp_finish: hand the job's result (bytes; rank 0's is printed) to the
  ! coordinator and wait for every rank. An empty result: none.
  integer(c_int) function cp_finish(r, result) result(rc)
    integer(c_int64_t), intent(in) :: r
    integer(c_int8_t), intent(in), target :: result(:)
    if (size(result) == 0) then
       rc = c_finish(r, c_null_ptr, 0_c_size_t)
    else
       rc = c_finish(r, c_loc(result(lbound(result, 1))), int(size(result), c_size_t))
    end if
  end function cp_finish

  integer(c_int) function cp_exit_code(r) result(code)
    integer(c_int64_t), intent(in) :: r
    code = c_exit_code(r)
  end function cp_exit_code

  integer(c_int) function cp_close(r) result(rc)
    integer(c_int64_t), intent(in) :: r
    rc = c_close(r)
  end function cp_close

  ! cp_sha256: the SHA-256 of a contiguous real(8) array's bytes.
  integer(c_int) function cp_sha256(a, digest) result(rc)
    real(c_double), intent(in), target :: a(:)
    integer(c_int8_t), intent(out) :: digest(32)
    if (.not. is_contiguous(a)) then
       rc = CUTPOINT_INVALID
       return
    end if
    rc = c_sha256(c_loc(a(lbound(a, 1))), int(8 * size(a), c_size_t), digest)
  end function cp_sha256

  ! cp_last_error: the message of the calling thread's last failing call.
  function cp_last_error() result(msg)
    character(len=:), allocatable :: msg
    type(c_ptr) :: p
    character(kind=c_char), pointer :: s(:)
    integer(c_size_t) :: n
    integer :: i
    p = c_last_error()
    n = c_strlen(p)
    call c_f_pointer(p, s, [n])
    allocate(character(len=n) :: msg)
    do i = 1, int(n)
       msg(i:i) = s(i)
    end do
  end function cp_last_error

end module cutpoint

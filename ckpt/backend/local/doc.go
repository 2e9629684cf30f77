// Package local is the POSIX directory backend of the checkpoint store. It
// relies only on atomic rename within a directory, fsync of files and
// directories, and O_EXCL creation, so it works on local disks and on
// shared file systems (NFS, Lustre, GPFS) alike.
package local

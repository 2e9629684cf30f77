// Package shuffle owns the per-chunk byte-shuffle filter of the checkpoint
// format: the bytes of each fixed-size element are split into planes (all
// first bytes, then all second bytes, ...), as blosc does, so that the slowly
// varying high bytes of smooth floating-point data line up and compress.
//
// The layout is fixed by the store format (docs/format.md) and is produced
// bit for bit by the GPU kernel as well: for a chunk of n bytes and element
// size s in {1, 2, 4, 8}, m = n/s whole elements,
//
//	out[p*m + i] = in[i*s + p]   for p < s, i < m
//
// and the n%s trailing bytes are copied unchanged to the end. s = 1 is the
// identity.
//
// DeltaShuffle and DeltaUnshuffle are the format's second filter,
// delta+shuffle, for s in {2, 4, 8}: each whole element, read as a
// little-endian unsigned integer, is first replaced by its difference from
// the previous element (the first from 0), modulo 2^(8s), and the
// differences are shuffled as above. On smooth data it turns the high
// planes into runs of 0x00 and 0xff. The difference pass runs on 8 KiB
// blocks that the shuffle kernel reads while they are in L1, so it costs
// no extra pass over memory.
//
// The transform is blocked: 64-byte tiles are transposed as 8x8 byte
// matrices held in eight 64-bit registers, so each input byte is loaded and
// stored once as part of a word, never one byte at a time. The package
// imports nothing from the module.
package shuffle

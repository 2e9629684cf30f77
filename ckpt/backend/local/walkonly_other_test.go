//go:build !linux

package local

var walkOnly bool

// Package backendtest is the conformance suite of the checkpoint-store
// Backend contract. Every implementation runs it from its own tests:
//
//	func TestConformance(t *testing.T) {
//		backendtest.Run(t, func(t *testing.T) backend.Backend { return mem.New() })
//	}
package backendtest

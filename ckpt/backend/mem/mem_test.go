package mem

import (
	"testing"

	"github.com/cutpoint/cutpoint/ckpt/backend"
	"github.com/cutpoint/cutpoint/ckpt/backend/backendtest"
)

func TestConformance(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) backend.Backend { return New() })
}

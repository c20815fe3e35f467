package memory

import (
	"testing"
	"time"

	"github.com/signet-dev/signet/limit"
	"github.com/signet-dev/signet/limit/limittest"
)

func TestConformance(t *testing.T) {
	limittest.Run(t, limittest.Harness{
		New: func(t *testing.T, now func() time.Time, l limit.Ledger) limittest.Store {
			return New(Options{Now: now, Ledger: l, Batch: limittest.DefaultBatch})
		},
	})
}

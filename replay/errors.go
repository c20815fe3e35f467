package replay

import (
	"fmt"

	"github.com/signet-dev/signet/httpsig"
)

// ErrUnvouched is returned by a store for a signature created before its
// horizon: the earliest created time from which it holds every pair it may
// have accepted. Before it, the store may have forgotten pairs (a restart, a
// Redis server that lost its data), so the signature may be a replay. It
// wraps [httpsig.ErrReplayed], so that a verifier refuses the message as
// replayed; a server that counts these refusals apart tests for it first.
var ErrUnvouched = fmt.Errorf("replay: signature created before the nonce store's horizon, which cannot vouch for it: %w", httpsig.ErrReplayed)

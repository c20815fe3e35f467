package limit

import "strconv"

// The limiter keys of the scopes a gateway limits, so that the limits of
// one scope never meet another's: a signing key's rate is under
// ForKey(keyID), its owner's under ForOwner(owner), a route's under
// ForRoute(route, keyID). A [Counter] is keyed by the key id itself, as
// its [Ledger] knows it.
//
// Each call builds a string; a caller that limits every request builds
// them once per key, along with what it caches of the key.

// ForKey is the key of the limits of one signing key.
func ForKey(keyID string) string { return "k:" + keyID }

// ForOwner is the key of the limits shared by every key of one owner.
func ForOwner(owner string) string { return "o:" + owner }

// ForRoute is the key of a route's limit for one signing key, or, with
// keyID "", for every client of the route together. The route's name is
// written with its length, so that no pair of route and key id spells
// another's.
func ForRoute(route, keyID string) string {
	return "r:" + strconv.Itoa(len(route)) + ":" + route + keyID
}

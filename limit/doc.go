// Package limit implements the usage controls a gateway applies to a key
// after its signature verifies: rate limits with the generic cell rate
// algorithm ([Limiter], [Rate]), budgets of uses ([Counter], [Ledger]), and
// the RateLimit-Policy and RateLimit header fields of
// draft-ietf-httpapi-ratelimit-headers-11 that tell the client where it
// stands ([Fields]).
//
// There is one package per back end, each a Limiter and a Counter:
//
//   - [github.com/signet-dev/signet/limit/memory] keeps the limits in the
//     process (sharded, bounded, without allocating), for one gateway.
//   - [github.com/signet-dev/signet/limit/redis] keeps them in Redis, or a
//     Redis Cluster, shared by every gateway, one Lua script a decision,
//     on the Redis server's clock.
//
// [github.com/signet-dev/signet/limit/limittest] is the behavioural suite
// both pass.
//
// # Rates
//
// A [Rate] of N per Per with a burst B lets a key that has been idle send B
// requests at once, and then one every Per/N: in any stretch of time d, at
// most B + d×N/Per pass, so over one Per at most N + B. The limiter keeps
// one time per key; a key that is back at a full burst is the same as one
// it never saw, and is forgotten. Changing a key's rate takes effect at
// once, on the time the key has spent. Scopes are only keys: a signing
// key's rate is under [ForKey], its owner's under [ForOwner], a route's
// under [ForRoute].
//
// # Uses
//
// A key may have a budget of uses, each accepted request spending one,
// maybe refilled: Remaining is put back to N at the start of each period
// (UTC, from the zero time of package time: midnight for a day), unspent
// uses not carrying over. The key store is the [Ledger]: it holds the
// budget and its count, and is the source of truth. A Counter takes uses
// from it ahead, a batch at a time, atomically (the key store's
// SpendUses), and spends them request by request: in the process for
// limit/memory, in Redis for every gateway at once for limit/redis. Uses
// taken are spent or lost, never given back, so that none is granted
// twice: a gateway that crashes loses the batch it held (memory), a Redis
// that loses its data loses the batches it held. What the key store shows
// (keys show, the admin API) is its count, which is the uses left less at
// most one batch per holder taken ahead; nothing needs to be written back.
// A Counter asks the ledger nothing more for a key once it has none left,
// until the key's budget is set again (the caller passes its Set, which it
// learns as it learns of any change to the key) or refilled.
//
// # In a gateway
//
// Limits apply only to requests whose signature verified, whose nonce was
// new, and whose key may use the route (scopes): an unsigned flood or a
// replay never spends a client's budget. Then, in order, each rate that
// applies (route, key, owner), stopping at the first refusal, and last
// the key's uses, so that a request refused by a rate spends no use. A
// refusal by a rate is 429 with the problem type rate-limited; by uses,
// 429 with uses-exhausted, the status of the draft's quota-exceeded
// problem type, and a Retry-After when a refill will come. An error from
// a limiter or the ledger is 503, failing closed, as for nonces. Every
// response to a request of a limited key, the upstream's included, carries
// the fields of the limits applied, through [Fields].
package limit

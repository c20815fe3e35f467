// Package replay holds the nonce stores that let a verifier refuse a replayed
// message, using the nonce signature parameter of RFC 9421 (§2.3, §7.2.2).
// Each store implements [github.com/signet-dev/signet/httpsig.NonceStore]: it
// records a (keyid, nonce) pair until the signature that carried it can no
// longer be accepted, and answers httpsig.ErrReplayed for a pair it already
// holds.
//
// There is one package per back end:
//
//   - [github.com/signet-dev/signet/replay/memory] keeps the pairs in the
//     process (sharded, bounded in size, with a fair share for each keyid),
//     for a single instance; a snapshot carries them across a graceful
//     restart.
//   - [github.com/signet-dev/signet/replay/redis] keeps them in Redis, or a
//     Redis Cluster, shared by every instance of a gateway.
//
// A store that may have forgotten pairs it once held (a process that
// restarted, a Redis server that lost its data) has a horizon: the earliest
// created time from which it holds every pair it may have accepted. It
// refuses a signature created before its horizon with [ErrUnvouched], which
// wraps httpsig.ErrReplayed, since the signature may have been used while
// its nonce was held by what was lost.
//
// Both fail closed. A store that cannot answer (a memory store full of live
// entries, a Redis server that is down or slow) returns an error that is not
// ErrReplayed; the verifier then refuses the message, and a server answers 503
// rather than letting a possible replay through.
//
// [github.com/signet-dev/signet/replay/replaytest] is the behavioural suite
// every store passes.
package replay

// Package interop holds the cross-language tests of Signet: requests signed
// by the Node.js client (clients/js) must verify with the Go package
// httpsig, requests signed by the Go client must verify with the Node.js
// client, both must build the same signature bases, and both must refuse
// the same altered requests for the same reason. The tests drive
// clients/js/tools/crosscheck.mjs and need node; under CI=true a missing
// node is a failure, elsewhere a skip.
package interop

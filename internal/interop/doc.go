// Package interop holds the cross-language tests of Signet: requests signed
// by the Node.js client (clients/js) and by the Python client
// (clients/python) must verify with the Go package httpsig, requests signed
// by the Go client must verify with both, all must build the same signature
// bases, and all must refuse the same altered requests for the same reason.
// Presigned URLs must come out the same, byte for byte, from Go, Node.js,
// Python and the CLI, and pass a gateway; responses a gateway signed, as
// received and altered, must be judged alike by Go, Node.js and Python.
// The tests drive clients/js/tools/crosscheck.mjs and
// clients/python/tools/crosscheck.py, and need node and a python3 with the
// cryptography package; under CI=true a missing one is a failure, elsewhere
// a skip.
package interop

// Package signetjs holds the ES modules of the JavaScript client,
// @signet/client (index.js and lib/), as they are in the repository, for Go
// programs that serve them to a browser: the admin console of signet serve
// signs its calls with them. The modules run in browsers as they are, on
// Web Crypto, with no build step; lib/server (Node.js only) is left out.
package signetjs

import "embed"

// Files holds index.js and lib/*.js, under those names.
//
//go:embed index.js lib/*.js
var Files embed.FS

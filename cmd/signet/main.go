// Command signet signs, verifies and authenticates HTTP API requests with
// RFC 9421 HTTP Message Signatures. Run "signet help" for its commands.
package main

import (
	"os"

	"github.com/signet-dev/signet/internal/cli"
)

func main() { os.Exit(cli.Main(os.Args[1:])) }

package cli

import (
	"crypto"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/signet-dev/signet/httpsig"
)

func newCmdThumbprint(e *Env) *cobra.Command {
	return &cobra.Command{
		Use:   "thumbprint FILE",
		Short: "Print the RFC 7638 thumbprint of a public key, to pin it",
		Long: "Print the RFC 7638 JWK thumbprint (SHA-256, base64url) of the public key in FILE\n" +
			"(PEM or JWK; of a private key, its public half): what `signet request\n" +
			"--gateway-pin` takes to pin a gateway's response key.",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageErrorf("give one key file")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := readKeyFile(args[0])
			if err != nil {
				return usageError{err}
			}
			key, _, err := httpsig.ParseKey(data)
			if err != nil {
				return usageError{fmt.Errorf("%s: %w", args[0], err)}
			}
			if priv, ok := key.(interface{ Public() crypto.PublicKey }); ok {
				key = priv.Public()
			}
			tp, err := httpsig.JWKThumbprint(key)
			if err != nil {
				return usageError{fmt.Errorf("%s: %w", args[0], err)}
			}
			fmt.Fprintln(e.Stdout, tp)
			return nil
		},
	}
}

package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/spf13/cobra"

	"github.com/signet-dev/signet/keys"
)

type keysRekeyOptions struct {
	store   storeFlags
	newFile string
}

func newCmdKeysRekey(e *Env, runF func(*keysRekeyOptions) error) *cobra.Command {
	o := &keysRekeyOptions{}
	cmd := &cobra.Command{
		Use:   "rekey --new-master-key-file FILE",
		Short: "Seal every secret under a new master key",
		Args:  noArgs(""),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.newFile == "" {
				return usageErrorf("--new-master-key-file is required")
			}
			if runF != nil {
				return runF(o)
			}
			return keysRekeyRun(e, o)
		},
	}
	f := cmd.Flags()
	o.store.register(f)
	f.StringVar(&o.newFile, "new-master-key-file", "", "the new master key, base64, in `FILE`; made (mode 0600) if it does not exist (required)")
	return cmd
}

func keysRekeyRun(e *Env, o *keysRekeyOptions) error {
	ks, err := o.store.open(e, mustExist)
	if err != nil {
		return err
	}
	defer ks.Close()
	newKey, made, err := loadOrMakeMasterKey(e, o.newFile)
	if err != nil {
		return err
	}
	if err := ks.Rekey(e.Context, newKey, actor(e)); err != nil {
		if made {
			os.Remove(o.newFile)
		}
		return err
	}
	fmt.Fprintf(e.Stdout, "every secret is now sealed under the master key in %s; the old master key opens nothing\n", o.newFile)
	if ks.autoMasterFile == "" {
		fmt.Fprintf(e.Stdout, "from now on give --master-key-file %s (or set %s to its contents), and restart running servers with it\n", o.newFile, masterKeyEnv)
		return nil
	}
	if err := writeFile(ks.autoMasterFile, keys.FormatMasterKey(newKey), 0o600, true); err != nil {
		return fmt.Errorf("the database was rekeyed, but %s still holds the old key (%w): copy %s over it", ks.autoMasterFile, err, o.newFile)
	}
	fmt.Fprintf(e.Stdout, "updated %s, the default master key file of this database\n", ks.autoMasterFile)
	return nil
}

// loadOrMakeMasterKey reads a master key file, or makes one with a new key
// if it does not exist, and reports whether it made it.
func loadOrMakeMasterKey(e *Env, path string) ([]byte, bool, error) {
	key, err := readMasterKeyFile(e, path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return key, false, err
	}
	key = keys.NewMasterKey()
	if err := writeFile(path, keys.FormatMasterKey(key), 0o600, false); err != nil {
		return nil, false, fmt.Errorf("writing %s: %w", path, err)
	}
	fmt.Fprintf(e.Stderr, "signet: made a new master key in %s (mode 0600)\n", path)
	return key, true, nil
}

package cli

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/signet-dev/signet/httpsig"
)

// maxKeyFileBytes bounds what is read of a key file: an RSA private key
// as JWK, the largest kind, is a few KiB.
const maxKeyFileBytes = 64 << 10

// readKeyFile reads a key file: a signing or verifying key, or a master
// key. It is the one reader of key files, so that every kind gets the same
// limit and the same errors.
func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(data) > maxKeyFileBytes {
		return nil, fmt.Errorf("%s is larger than a key file (%d bytes at most)", path, maxKeyFileBytes)
	}
	return data, nil
}

// loadSigningKey reads the signing key in a key file for alg, or the
// algorithm the file names if alg is empty.
func loadSigningKey(alg httpsig.Algorithm, path string) (httpsig.SigningKey, error) {
	data, err := readKeyFile(path)
	if err != nil {
		return nil, err
	}
	k, err := httpsig.LoadSigningKey(alg, data)
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	return k, nil
}

// loadVerifyingKey reads the verifying key in a key file, as
// loadSigningKey does.
func loadVerifyingKey(alg httpsig.Algorithm, path string) (httpsig.VerifyingKey, error) {
	data, err := readKeyFile(path)
	if err != nil {
		return nil, err
	}
	k, err := httpsig.LoadVerifyingKey(alg, data)
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	return k, nil
}

// parseAlg parses an --alg flag; empty is no algorithm, to be inferred.
func parseAlg(alg string) (httpsig.Algorithm, error) {
	if alg == "" {
		return "", nil
	}
	a, err := httpsig.ParseAlgorithm(alg)
	if err != nil {
		return "", usageError{fmt.Errorf("--alg: %w", err)}
	}
	return a, nil
}

// writeFile is the one writer of key and secret files. It writes data to
// path with the permissions perm, which it has from the start, durably,
// and whole or not at all: the data goes to a new file beside path, which
// is then renamed over path if replace, or else linked to path, which
// fails with an error wrapping fs.ErrExist if path exists (so that of two
// processes making the same file, one wins and the other can read it).
func writeFile(path string, data []byte, perm os.FileMode, replace bool) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // gone already after a rename; the link stays
	err = f.Chmod(perm)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if replace {
		err = os.Rename(tmp, path)
	} else if err = os.Link(tmp, path); errors.Is(err, fs.ErrExist) {
		err = &fs.PathError{Op: "create", Path: path, Err: fs.ErrExist}
	}
	if err != nil {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

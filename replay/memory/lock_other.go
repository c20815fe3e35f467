//go:build !unix

package memory

import (
	"errors"
	"os"
)

func flock(*os.File) error {
	return errors.ErrUnsupported
}

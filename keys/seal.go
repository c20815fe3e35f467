package keys

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// MasterKeySize is the size of a master key in bytes: an AES-256 key.
const MasterKeySize = 32

// NewMasterKey returns a new random master key.
func NewMasterKey() []byte {
	k := make([]byte, MasterKeySize)
	rand.Read(k)
	return k
}

// FormatMasterKey returns the text form of a master key: standard padded
// base64 and a newline, as in a master key file or SIGNET_MASTER_KEY.
func FormatMasterKey(key []byte) []byte {
	return []byte(base64.StdEncoding.EncodeToString(key) + "\n")
}

// ParseMasterKey parses the text form of a master key: base64 (standard or
// URL alphabet, padded or not) of 32 bytes. Errors never show the text.
func ParseMasterKey(text []byte) ([]byte, error) {
	s := strings.TrimRight(strings.TrimSpace(string(text)), "=")
	if s == "" {
		return nil, errors.New("keys: master key is empty")
	}
	enc := base64.RawStdEncoding
	if strings.ContainsAny(s, "-_") {
		enc = base64.RawURLEncoding
	}
	key, err := enc.DecodeString(s)
	if err != nil {
		return nil, errors.New("keys: master key is not base64 text")
	}
	if len(key) != MasterKeySize {
		return nil, fmt.Errorf("keys: master key is %d bytes, want %d", len(key), MasterKeySize)
	}
	return key, nil
}

// sealVersion is the first byte of a sealed secret, so that the format can
// change without guessing.
const sealVersion = 1

// The additional data of AES-GCM, kept apart by purpose: a secret is bound
// to its key id; the check value to its own purpose.
const (
	aadSecret = "signet/keys/v1 secret\x00"
	aadCheck  = "signet/keys/v1 master key check"
	checkText = "signet master key check value"
)

// A sealer seals secrets under one master key.
type sealer struct {
	aead cipher.AEAD
	key  []byte
}

func newSealer(master []byte) (*sealer, error) {
	if len(master) != MasterKeySize {
		return nil, fmt.Errorf("%w: master key is %d bytes, want %d", ErrInvalid, len(master), MasterKeySize)
	}
	block, err := aes.NewCipher(master)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead, key: bytes.Clone(master)}, nil
}

func (s *sealer) seal(plain []byte, aad string) []byte {
	out := make([]byte, 1+s.aead.NonceSize(), 1+s.aead.NonceSize()+len(plain)+s.aead.Overhead())
	out[0] = sealVersion
	rand.Read(out[1:])
	return s.aead.Seal(out, out[1:], plain, []byte(aad))
}

var errUnsealable = errors.New("keys: sealed value does not open")

func (s *sealer) open(sealed []byte, aad string) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < 1+n+s.aead.Overhead() || sealed[0] != sealVersion {
		return nil, errUnsealable
	}
	plain, err := s.aead.Open(nil, sealed[1:1+n], sealed[1+n:], []byte(aad))
	if err != nil {
		return nil, errUnsealable
	}
	return plain, nil
}

// sealSecret seals an HMAC secret for the key id.
func (s *sealer) sealSecret(id string, secret []byte) []byte {
	return s.seal(secret, aadSecret+id)
}

// openSecret opens the sealed secret of the key id. It fails if the
// master key is not the one it was sealed under, or if the sealed value
// belongs to another key.
func (s *sealer) openSecret(id string, sealed []byte) ([]byte, error) {
	plain, err := s.open(sealed, aadSecret+id)
	if err != nil {
		return nil, fmt.Errorf("keys: the sealed secret of key %s does not open under the master key (altered, copied from another key, or sealed under another master key)", id)
	}
	return plain, nil
}

// check returns a new check value: a known text sealed under the master
// key, by which a service tells at start-up that it holds the right one.
func (s *sealer) check() []byte { return s.seal([]byte(checkText), aadCheck) }

// opensCheck reports whether check was made under this master key.
func (s *sealer) opensCheck(check []byte) bool {
	plain, err := s.open(check, aadCheck)
	return err == nil && subtle.ConstantTimeCompare(plain, []byte(checkText)) == 1
}

func (s *sealer) sameKey(master []byte) bool {
	return subtle.ConstantTimeCompare(s.key, master) == 1
}

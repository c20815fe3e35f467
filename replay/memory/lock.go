package memory

import (
	"errors"
	"fmt"
	"os"
	"sync"
)

// ErrLocked is wrapped by the error [Lock] returns when another process, or
// another lock in this one, holds the lock.
var ErrLocked = errors.New("memory: lock is held")

// A LockedError is the error [Lock] returns when the lock is held.
type LockedError struct {
	Path string
	// PID is the process that holds the lock, or 0 if it cannot be told.
	PID int
}

func (e *LockedError) Error() string {
	if e.PID > 0 {
		return fmt.Sprintf("memory: %s is locked by process %d", e.Path, e.PID)
	}
	return fmt.Sprintf("memory: %s is locked by another process", e.Path)
}

// Unwrap returns ErrLocked.
func (e *LockedError) Unwrap() error { return ErrLocked }

// A FileLock is an exclusive lock on a file, taken by [Lock].
type FileLock struct {
	f *os.File
}

// held keeps every FileLock reachable until it is unlocked: a lock that
// were garbage collected would close its file, and so release the lock,
// behind its holder's back.
var held sync.Map // *FileLock → struct{}

// Lock takes an exclusive lock on the file at path, creating the file (mode
// 0600) if need be, and writes the process id in it. It does not wait: if
// the lock is held, it returns a [*LockedError] naming the holder. The lock
// is released by [FileLock.Unlock] or when the process ends, however it
// ends; the file stays, as removing it could let two processes each lock a
// file of that name.
//
// A server that keeps nonces in memory takes the lock on a file beside its
// key store, so that a second server on the same keys, which would keep
// nonces of its own and accept the first one's replays, refuses to start.
// The lock is advisory (flock(2)), and holds between processes of one
// machine on a local file system.
func Lock(path string) (*FileLock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("memory: lock: %w", err)
	}
	if err := flock(f); err != nil {
		f.Close()
		if errors.Is(err, ErrLocked) {
			return nil, &LockedError{Path: path, PID: readPID(path)}
		}
		return nil, fmt.Errorf("memory: lock %s: %w", path, err)
	}
	l := &FileLock{f: f}
	if err := l.writePID(); err != nil {
		l.Unlock()
		return nil, fmt.Errorf("memory: lock %s: %w", path, err)
	}
	held.Store(l, struct{}{})
	return l, nil
}

func (l *FileLock) writePID() error {
	if err := l.f.Truncate(0); err != nil {
		return err
	}
	_, err := l.f.WriteAt(fmt.Appendf(nil, "%d\n", os.Getpid()), 0)
	return err
}

func readPID(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	var pid int
	if _, err := fmt.Sscan(string(b), &pid); err != nil || pid <= 0 {
		return 0
	}
	return pid
}

// Unlock releases the lock. It leaves the file in place.
func (l *FileLock) Unlock() error {
	held.Delete(l)
	l.f.Truncate(0)
	if err := l.f.Close(); err != nil {
		return fmt.Errorf("memory: unlock: %w", err)
	}
	return nil
}

package cluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// ErrDataDirInUse is matched (errors.Is) by the error Start returns when another process
// holds the data dir's lock.
var ErrDataDirInUse = errors.New("data dir is in use by another ccsd serve")

// inUseError names the data dir that is locked.
type inUseError struct{ dir string }

func (e *inUseError) Error() string {
	return fmt.Sprintf("data dir %s is in use by another ccsd serve", e.dir)
}

func (e *inUseError) Is(target error) bool { return target == ErrDataDirInUse }

// dirLock is an exclusive flock on DataDir/LOCK, held for the life of an embedded server.
// The kernel releases it when the process dies, so a kill -9 never leaves a stale lock.
type dirLock struct{ f *os.File }

// lockDir takes the lock without waiting.
func lockDir(dir string) (*dirLock, error) {
	f, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, &inUseError{dir: dir}
		}
		return nil, fmt.Errorf("locking data dir %s: %w", dir, err)
	}
	return &dirLock{f: f}, nil
}

// unlock releases the lock; closing the descriptor drops the flock.
func (l *dirLock) unlock() error {
	return l.f.Close()
}

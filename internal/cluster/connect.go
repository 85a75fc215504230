package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// infoFileName is the file in the data dir through which a running embedded server tells
// local tools where it listens and which token to present.
const infoFileName = "nats.json"

// infoWait bounds how long Connect waits for a locked data dir's nats.json to appear.
const infoWait = 10 * time.Second

// connInfo is the content of DataDir/nats.json (mode 0600).
type connInfo struct {
	URL      string `json:"url"`
	Token    string `json:"token"`
	Name     string `json:"name,omitempty"`
	Replicas int    `json:"replicas,omitempty"`
}

// Connect reaches the NATS of the data dir dataDir for a short-lived command: when a ccsd
// serve holds the dir, it connects over TCP to that serve's embedded server with the token
// from nats.json; otherwise it starts an embedded server on the dir (with no client
// listener) for the life of the returned Node. A data dir last used by a clustered serve
// must be reached while that serve runs, and the serve must have its client listener on.
func Connect(ctx context.Context, dataDir string, log *slog.Logger) (*Node, error) {
	cfg := Config{DataDir: dataDir, ClientListen: ClientListenOff, Logger: log}
	n, err := Start(ctx, cfg)
	if !errors.Is(err, ErrDataDirInUse) {
		return n, err
	}
	cfg = cfg.withDefaults()
	// The serve may hold the lock but not have written nats.json yet; one with its client
	// listener off never writes it.
	wctx, cancel := context.WithTimeout(ctx, infoWait)
	defer cancel()
	var info connInfo
	var readErr error
	waitErr := poll(wctx, func() bool {
		info, readErr = readConnInfo(filepath.Join(dataDir, infoFileName))
		return !errors.Is(readErr, os.ErrNotExist)
	}, "waiting for the running serve's "+infoFileName)
	if waitErr != nil {
		return nil, fmt.Errorf("%w (%w)", err, waitErr)
	}
	if readErr != nil {
		return nil, readErr
	}
	n = &Node{Name: info.Name, Replicas: max(1, info.Replicas), log: cfg.Logger, closed: make(chan struct{})}
	nc, err := nats.Connect(info.URL, n.connOptions(nats.Token(info.Token), nats.MaxReconnects(0))...)
	if err != nil {
		return nil, fmt.Errorf("connecting to the running serve at %s: %w", info.URL, err)
	}
	if err := n.attach(nc); err != nil {
		return nil, err
	}
	return n, nil
}

func readConnInfo(path string) (connInfo, error) {
	var info connInfo
	b, err := os.ReadFile(path)
	if err != nil {
		return info, err
	}
	if err := json.Unmarshal(b, &info); err != nil {
		return info, fmt.Errorf("reading %s: %w", path, err)
	}
	if info.URL == "" || info.Token == "" {
		return info, fmt.Errorf("reading %s: url or token missing", path)
	}
	return info, nil
}

// writeConnInfo writes path atomically with mode 0600.
func writeConnInfo(path string, info connInfo) error {
	b, err := json.Marshal(info)
	if err != nil {
		return err
	}
	return writeFileAtomic(path, append(b, '\n'))
}

// writeFileAtomic writes data to a temporary file in path's directory (mode 0600) and
// renames it over path, so readers never see a partial file.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// nodeName is cfg.NodeName or the id kept in DataDir/node-id, created on first use.
func nodeName(cfg Config) (string, error) {
	if cfg.NodeName != "" {
		return cfg.NodeName, nil
	}
	path := filepath.Join(cfg.DataDir, "node-id")
	b, err := os.ReadFile(path)
	if err == nil {
		if id := strings.TrimSpace(string(b)); id != "" {
			return id, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("reading node id: %w", err)
	}
	h, err := randomHex(8)
	if err != nil {
		return "", err
	}
	id := "ccsd-" + h
	if err := writeFileAtomic(path, []byte(id+"\n")); err != nil {
		return "", err
	}
	return id, nil
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("reading random bytes: %w", err)
	}
	return hex.EncodeToString(b), nil
}

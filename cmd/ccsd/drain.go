package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/ccsd/ccsd/internal/cluster"
)

func cmdDrain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("drain", stderr)
	dataDir := fs.String("data-dir", "./ccsd-data", "data directory of the running server")
	if pos, err := parseFlags(fs, args); err != nil {
		return err
	} else if len(pos) != 0 {
		return usageError("drain takes no positional arguments")
	}
	ep, err := readEndpoints(*dataDir)
	if err != nil {
		return fmt.Errorf("is ccsd serve running on %s? %w", *dataDir, err)
	}
	node, err := cluster.Connect(ctx, *dataDir, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer node.Close()
	if _, err := node.NC.Request(drainSubject(ep.Node), nil, 10*time.Second); err != nil {
		return fmt.Errorf("asking node %s to drain: %w", ep.Node, err)
	}
	fmt.Fprintf(stdout, "node %s is draining\n", ep.Node)
	return nil
}

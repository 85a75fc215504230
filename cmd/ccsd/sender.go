package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"text/tabwriter"

	"github.com/ccsd/ccsd/internal/cluster"
	"github.com/ccsd/ccsd/internal/queue"
)

const senderUsage = `usage:
  ccsd sender create [--data-dir DIR] [--name NAME] [--json]
  ccsd sender list   [--data-dir DIR] [--json]
  ccsd sender revoke SENDER_ID [--data-dir DIR]`

func cmdSender(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError(senderUsage)
	}
	sub, args := args[0], args[1:]
	fs := newFlags("sender "+sub, stderr)
	dataDir := fs.String("data-dir", "./ccsd-data", "data directory of the server")
	asJSON := fs.Bool("json", false, "print JSON")
	name := ""
	if sub == "create" {
		fs.StringVar(&name, "name", "", "a name to remember the sender by")
	}
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	switch {
	case sub == "revoke" && len(pos) != 1:
		return usageError(senderUsage)
	case sub != "revoke" && len(pos) != 0:
		return usageError(senderUsage)
	}
	return withQueue(ctx, *dataDir, func(q *queue.Queue) error {
		switch sub {
		case "create":
			s, key, err := q.CreateSender(ctx, name)
			if err != nil {
				return err
			}
			if *asJSON {
				return json.NewEncoder(stdout).Encode(map[string]string{"sender_id": s.ID, "api_key": string(key)})
			}
			fmt.Fprintf(stdout, "sender id: %s\napi key:   %s\n", s.ID, string(key))
			return nil
		case "list":
			list, err := q.Senders(ctx)
			if err != nil {
				return err
			}
			if *asJSON {
				type row struct {
					ID      string `json:"sender_id"`
					Name    string `json:"name"`
					Created string `json:"created"`
					Revoked bool   `json:"revoked"`
				}
				rows := make([]row, 0, len(list))
				for _, s := range list {
					rows = append(rows, row{s.ID, s.Name, s.Created.Format("2006-01-02T15:04:05Z"), s.Revoked})
				}
				return json.NewEncoder(stdout).Encode(rows)
			}
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SENDER ID\tNAME\tCREATED\tSTATE")
			for _, s := range list {
				state := "active"
				if s.Revoked {
					state = "revoked"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.ID, s.Name, s.Created.Format("2006-01-02 15:04:05"), state)
			}
			return tw.Flush()
		case "revoke":
			if err := q.RevokeSender(ctx, pos[0]); errors.Is(err, queue.ErrNotFound) {
				return fmt.Errorf("no sender %s", pos[0])
			} else if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "revoked %s\n", pos[0])
			return nil
		default:
			return usageError(senderUsage)
		}
	})
}

// withQueue opens the store of dataDir — through the running server when
// there is one, or on the data dir itself — runs fn and closes it.
func withQueue(ctx context.Context, dataDir string, fn func(q *queue.Queue) error) error {
	log := slog.New(slog.DiscardHandler)
	node, err := cluster.Connect(ctx, dataDir, log)
	if err != nil {
		return fmt.Errorf("opening %s: %w", dataDir, err)
	}
	defer node.Close()
	q, err := queue.Open(ctx, node, queue.Config{BindOnly: true, Logger: log})
	if err != nil {
		return err
	}
	return fn(q)
}

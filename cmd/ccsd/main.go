// Command ccsd is a self-hostable Cloud Connection Server: the GCM CCS XMPP
// endpoint for app servers, the device endpoints, and durable
// store-and-forward on NATS JetStream. It is the only package that knows
// every other one.
//
// Usage:
//
//	ccsd serve   [--data-dir DIR] [--ccs-addr HOST:PORT] [--http-addr HOST:PORT] [--max-pending N] [--log-level L]
//	ccsd sender  create|list|revoke [--data-dir DIR] ...
//	ccsd send    --data-dir DIR --to REG --json '{"data":{...}}'
//	ccsd drain   [--data-dir DIR]
//	ccsd device  register|listen|send|unregister ...
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
)

const usage = `ccsd: a self-hostable GCM Cloud Connection Server

Commands:
  serve    run the server (no flags needed: data in ./ccsd-data, CCS on 127.0.0.1:5235)
  sender   create | list | revoke SENDER_ID   manage app-server senders and API keys
  send     send one downstream message over CCS and print the ACK or NACK
  drain    ask a running server to drain its connections and exit
  device   register | listen | send | unregister   a simulated device
  bench    ccs | e2e | idle   the load generator against a running server
  version  print the version

Run "ccsd COMMAND -h" for a command's flags.
`

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one command and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch cmd, rest := args[0], args[1:]; cmd {
	case "serve":
		err = cmdServe(ctx, rest, stdout, stderr)
	case "sender":
		err = cmdSender(ctx, rest, stdout, stderr)
	case "send":
		err = cmdSend(ctx, rest, stdout, stderr)
	case "drain":
		err = cmdDrain(ctx, rest, stdout, stderr)
	case "device":
		err = cmdDevice(ctx, rest, stdout, stderr)
	case "bench":
		err = cmdBench(ctx, rest, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "ccsd", version)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "ccsd: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintln(stderr, "ccsd:", err)
		return 2
	}
	if err != nil {
		fmt.Fprintln(stderr, "ccsd:", err)
		return 1
	}
	return 0
}

// usageError is a mistake in the command line (exit code 2).
type usageError string

func (e usageError) Error() string { return string(e) }

// newFlags returns a flag set that reports errors instead of exiting.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("ccsd "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseFlags parses args, allowing flags after positional arguments
// ("revoke ID --data-dir DIR"), and returns the positional ones.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// newLogger returns the structured logger for a level name.
func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(strings.ToUpper(level))); err != nil {
		return nil, usageError(fmt.Sprintf("bad --log-level %q: want debug, info, warn or error", level))
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})), nil
}

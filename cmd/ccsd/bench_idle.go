package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/proto"

	"github.com/ccsd/ccsd/client/device"
	"github.com/ccsd/ccsd/internal/mcs"
	"github.com/ccsd/ccsd/internal/mcs/mcspb"
)

// idleConn is one lean idle MCS connection: no goroutine, the TLS
// connection and a Reader with its small inline buffer.
type idleConn struct {
	tc *tls.Conn
	rd *mcs.Reader
}

// dialIdle opens a TLS connection from src, logs in as an idle device and
// reads the LoginResponse.
func dialIdle(ctx context.Context, addr string, src net.IP, tc *tls.Config, cred device.Credentials) (*idleConn, error) {
	d := net.Dialer{Timeout: 30 * time.Second, KeepAlive: -1}
	if src != nil {
		d.LocalAddr = &net.TCPAddr{IP: src}
	}
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c := &idleConn{tc: tls.Client(raw, tc)}
	_ = raw.SetDeadline(time.Now().Add(60 * time.Second))
	lr := mcs.LoginRequest("ccsd-bench-idle", cred.AndroidID, cred.SecurityToken, nil)
	lr.Status = proto.Int64(1) // idle
	frame, err := mcs.AppendVersionedFrame(nil, mcs.TagLoginRequest, lr)
	if err == nil {
		_, err = c.tc.Write(frame) // runs the handshake first
	}
	var f mcs.Frame
	if err == nil {
		c.rd = mcs.NewReader(c.tc, mcs.ReaderConfig{Tags: mcs.ServerSendTags | 1<<mcs.TagStreamErrorStanza, ReleaseWhenIdle: true})
		f, err = c.rd.Next()
	}
	if err == nil && f.Tag != mcs.TagLoginResponse {
		err = fmt.Errorf("got %s before the login response", mcs.TagName(f.Tag))
	}
	if err == nil {
		var m proto.Message
		if m, err = mcs.Decode(f); err == nil {
			if e := m.(*mcspb.LoginResponse).GetError(); e != nil && e.GetCode() != 0 {
				err = &device.LoginError{Code: e.GetCode(), Message: e.GetMessage()}
			}
		}
	}
	if err != nil {
		raw.Close()
		return nil, fmt.Errorf("mcs login: %w", err)
	}
	c.rd.Release()
	_ = raw.SetDeadline(time.Time{})
	return c, nil
}

// alive pings and waits for the HeartbeatAck, skipping other frames.
func (c *idleConn) alive() error {
	_ = c.tc.SetDeadline(time.Now().Add(30 * time.Second))
	frame, err := mcs.AppendFrame(nil, mcs.TagHeartbeatPing, mcs.HeartbeatPing(1))
	if err != nil {
		return err
	}
	if _, err := c.tc.Write(frame); err != nil {
		return err
	}
	for {
		f, err := c.rd.Next()
		if err != nil {
			return err
		}
		if f.Tag == mcs.TagHeartbeatAck {
			return nil
		}
		if f.Tag == mcs.TagClose {
			return device.ErrServerClose
		}
	}
}

// parseSourceIPs reads "127.0.0.2-127.0.0.9" (a range in the last octet)
// or a comma-separated list of addresses and ranges; "" means none.
func parseSourceIPs(s string) ([]net.IP, error) {
	var ips []net.IP
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		a := net.ParseIP(lo).To4()
		if a == nil {
			return nil, fmt.Errorf("bad source address %q", lo)
		}
		if !isRange {
			ips = append(ips, a)
			continue
		}
		b := net.ParseIP(hi).To4()
		if b == nil || !slices.Equal(a[:3], b[:3]) || b[3] < a[3] {
			return nil, fmt.Errorf("bad source range %q: want a.b.c.x-a.b.c.y with x <= y", part)
		}
		for o := int(a[3]); o <= int(b[3]); o++ {
			ips = append(ips, net.IPv4(a[0], a[1], a[2], byte(o)).To4())
		}
	}
	return ips, nil
}

func benchIdle(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench idle", stderr)
	var tf targetFlags
	tf.add(fs, "idle", 0)
	nDev := fs.Int("devices", 1000, "idle devices to connect and log in")
	srcs := fs.String("source-ips", "", "source addresses of the connections, round-robin, e.g. 127.0.0.2-127.0.0.9 (default: the kernel's choice)")
	hold := fs.Duration("hold", 0, "how long to hold the connections once ready (0: until SIGTERM or SIGINT)")
	par := fs.Int("parallel", 64, "logins in progress at once")
	if pos, err := parseFlags(fs, args); err != nil {
		return err
	} else if len(pos) != 0 || *nDev < 1 || *par < 1 {
		return usageError("bench idle: --devices and --parallel must be at least 1; no positional arguments")
	}
	ips, err := parseSourceIPs(*srcs)
	if err != nil {
		return usageError("bench idle: " + err.Error())
	}
	t, err := tf.load()
	if err != nil {
		return err
	}
	devs, err := provision(ctx, t, tf.devicesPath("idle"), *nDev, stderr)
	if err != nil {
		return err
	}
	conns := make([]*idleConn, len(devs))
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.tc.NetConn().Close()
			}
		}
	}()
	tc := t.tlsFor(t.ep.MCS)
	tc.ClientSessionCache = tls.NewLRUClientSessionCache(64) // resumption saves handshake CPU on both sides
	var failed atomic.Int64
	var firstErr atomic.Value
	start := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(*par)
	for i, d := range devs {
		var src net.IP
		if len(ips) > 0 {
			src = ips[i%len(ips)]
		}
		g.Go(func() error {
			c, err := dialIdle(gctx, t.ep.MCS, src, tc, d.Cred)
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err)
				return nil
			}
			conns[i] = c
			return nil
		})
	}
	_ = g.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	ok := len(devs) - int(failed.Load())
	fmt.Fprintf(stderr, "logged in %d in %.1fs, %d failed\n", ok, time.Since(start).Seconds(), failed.Load())
	if e := firstErr.Load(); e != nil {
		fmt.Fprintln(stderr, "first login error:", e)
	}
	if s, err := readProc(os.Getpid()); err == nil && ok > 0 {
		fmt.Fprintf(stderr, "generator rss %d MB: %.1f KB per connection\n", s.rss>>20, float64(s.rss)/1024/float64(ok))
	}
	fmt.Fprintf(stdout, "ready %d\n", ok)
	if *hold > 0 {
		hctx, cancel := context.WithTimeout(ctx, *hold)
		defer cancel()
		<-hctx.Done()
	} else {
		<-ctx.Done()
	}
	// Check that the server kept every connection, then close them.
	var alive atomic.Int64
	g = &errgroup.Group{}
	g.SetLimit(*par)
	for _, c := range conns {
		if c != nil {
			g.Go(func() error {
				if c.alive() == nil {
					alive.Add(1)
				}
				return nil
			})
		}
	}
	_ = g.Wait()
	fmt.Fprintf(stdout, "alive %d\n", alive.Load())
	if int(alive.Load()) != len(devs) {
		return fmt.Errorf("%d of %d idle connections alive at the end", alive.Load(), len(devs))
	}
	return nil
}

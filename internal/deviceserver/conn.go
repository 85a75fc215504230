package deviceserver

import (
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/ccsd/ccsd/internal/gcm"
	"github.com/ccsd/ccsd/internal/mcs"
	"github.com/ccsd/ccsd/internal/queue"
)

// Reasons a connection ended (the label of metrics.MCSClosed) or a login
// failed (metrics.MCSLoginFails).
const (
	reasonShutdown     = "shutdown"
	reasonServerClosed = "server_closed"
	reasonKicked       = "kicked"
	reasonClientClose  = "client_close"
	reasonEOF          = "eof"
	reasonReadError    = "read_error"
	reasonWriteError   = "write_error"
	reasonIdle         = "idle_timeout"
	reasonProtocol     = "protocol_error"
	reasonBadTag       = "bad_tag"
	reasonFrameSize    = "frame_too_large"
	reasonBadPayload   = "bad_payload"
	reasonFlood        = "heartbeat_flood"
	reasonStore        = "store_error"
	reasonLoginFailed  = "login_failed"
)

// Bounds of a connection's memory.
const (
	liveQueueMax  = 256  // live messages waiting for the window
	ctlQueueMax   = 64   // control frames waiting for the writer; the reader waits beyond
	heldMax       = 1024 // delay_while_idle messages held while idle (sequence numbers)
	heldInMemory  = 16   // of which this many keep the decoded message
	storePage     = 128  // messages per backlog read
	pumpBatch     = 32   // data messages written between looks at the control queue
	maxStoredNonC = 100  // GCM's limit of stored non-collapsible messages
	maxCollapse   = 4    // GCM's limit of stored collapse keys
)

// conn is one device connection. Fields are grouped by owner.
type conn struct {
	// immutable after newConn
	srv *Server
	raw net.Conn // the accepted TCP connection
	num uint64   // server-unique number, for logs

	// set by serve during login, before any other goroutine uses the
	// connection as logged in; immutable afterwards
	nc    net.Conn // TLS over raw (raw itself without TLS)
	aid   uint64   // android id
	leave func()   // leaves presence

	// owned by the reader (serve)
	rd      *mcs.Reader
	pingTAT int64 // heartbeat rate limiter: theoretical arrival time, ns

	// owned by the running writer; handed from one writer run to the next
	// under mu
	p pump

	lastWrite atomic.Int64 // unix ns (real time) of the last write; pings

	mu sync.Mutex
	// guarded by mu
	sess        *mcs.Session    // nil before login
	ctl         []proto.Message // control frames (and send_error messages) to write
	liveQ       []queue.Live    // live messages waiting for the window
	lostFrom    uint64          // lowest sequence dropped from liveQ since the last re-read (0: none)
	lastRead    uint64          // highest sequence returned by a store read: live ones up to it are duplicates
	flights     []flight        // stored messages written and not acknowledged
	held        []held          // delay_while_idle messages held while idle, oldest first
	heldMem     int             // entries of held with the message in memory
	upPending   int32           // client stream id of the upstream message being stored (0: none)
	upRefusal   proto.Message   // the send_error of the refused upstream message upPending names, until written
	closeReason string          // why the connection is closing or closed
	wait        chan struct{}   // made by a waiting reader, closed by the writer on progress
	loggedIn    bool            // LoginResponse queued, presence joined
	writing     bool            // a writer run is active
	closing     bool            // Close queued: the writer sends it and closes
	dead        bool            // the socket is closed
	idle        bool            // the device said it is idle (package doc)
	liveLost    bool            // live messages were dropped: re-read the store
	pumpBusy    bool            // the writer left backlog work (set when a run ends)
	ackQueued   bool            // a StreamAck reply is in ctl already
}

// pump is the writer's delivery cursor.
type pump struct {
	versionSent bool                // the first frame (with the version byte) is written
	scanned     bool                // the login backlog was read
	loginBatch  bool                // batch is the login backlog: delivered even while idle
	reading     bool                // store mode: read from readFrom before taking live messages
	readFrom    uint64              // next sequence to read in store mode
	loginAcks   map[uint64]struct{} // sequences acknowledged by the LoginRequest; used by the scan
	batch       []queue.StoredDown  // read from the store, not yet delivered
}

// busy reports whether the writer has backlog work of its own.
func (p *pump) busy() bool { return !p.scanned || p.reading || len(p.batch) > 0 }

// flight is a stored message written and not yet acknowledged.
type flight struct {
	seq uint64
	rc  *gcm.Message // set when a delivery receipt was requested
	cat string       // category, for the receipt
}

// held is a message held while the device is idle.
type held struct {
	seq uint64
	msg *gcm.Message // nil beyond heldInMemory: read back from the store
}

func newConn(s *Server, raw net.Conn) *conn {
	return &conn{srv: s, raw: raw, num: s.connSeq.Add(1)}
}

// connID is the id the connection joins presence with: unique across nodes.
func (c *conn) connID() string {
	b := make([]byte, 0, 40)
	b = strconv.AppendUint(b, c.srv.nonce, 36)
	b = append(b, '-')
	b = strconv.AppendUint(b, c.num, 36)
	return string(b)
}

// serve runs the TLS handshake and the login. A logged-in connection's
// read loop then runs in a new goroutine: the handshake grows a stack to
// 8 KiB or more, which an idle reader would otherwise keep for good.
func (c *conn) serve() {
	if tc, ok := c.raw.(*net.TCPConn); ok {
		_ = tc.SetKeepAlive(true)
	}
	if reason := c.login(); reason != "" {
		c.teardown(reason, false)
		return
	}
	c.srv.goGo(c.read)
}

// read is the reader goroutine of a logged-in connection.
func (c *conn) read() {
	c.teardown(c.readLoop(), true)
}

// teardown closes the connection and forgets it.
func (c *conn) teardown(reason string, loggedIn bool) {
	c.closeConn(reason, true)
	if c.leave != nil {
		c.leave()
	}
	c.srv.removeConn(c, loggedIn)
}

// kickLocked starts a writer run when there is work and none is running.
func (c *conn) kickLocked() {
	if c.writing || c.dead || !c.hasWorkLocked(c.pumpBusy) {
		return
	}
	c.writing = true
	c.srv.startWriter(c)
}

// hasWorkLocked reports whether a writer has something to do; busy is the
// writer's own backlog state.
func (c *conn) hasWorkLocked(busy bool) bool {
	if c.dead {
		return false
	}
	if c.closing || len(c.ctl) > 0 {
		return true
	}
	if c.sess == nil || c.sess.WindowFull() {
		return false
	}
	return busy || c.liveLost || len(c.liveQ) > 0 || (!c.idle && len(c.held) > 0)
}

// queueCtl queues a control frame and starts the writer.
func (c *conn) queueCtl(m proto.Message) {
	c.mu.Lock()
	c.ctl = append(c.ctl, m)
	c.kickLocked()
	c.mu.Unlock()
}

// waitLocked blocks the reader until the writer makes progress or the
// connection dies; mu is held on entry and on return.
func (c *conn) waitLocked() {
	if c.wait == nil {
		c.wait = make(chan struct{})
	}
	ch := c.wait
	c.mu.Unlock()
	<-ch
	c.mu.Lock()
}

// signalLocked wakes a waiting reader.
func (c *conn) signalLocked() {
	if c.wait != nil {
		close(c.wait)
		c.wait = nil
	}
}

// requestClose makes the writer send Close and close the connection (a
// connection not logged in yet is closed at once).
func (c *conn) requestClose(reason string) {
	c.mu.Lock()
	if c.dead || c.closing {
		c.mu.Unlock()
		return
	}
	if !c.loggedIn {
		c.mu.Unlock()
		c.abort(reason)
		return
	}
	c.closing = true
	c.closeReason = reason
	c.kickLocked()
	c.mu.Unlock()
}

// closeAndWait is requestClose followed by waiting until the writer has
// closed the socket (the reader's exit on a protocol error).
func (c *conn) closeAndWait(reason string) {
	c.requestClose(reason)
	c.mu.Lock()
	for !c.dead {
		c.waitLocked()
	}
	c.mu.Unlock()
}

// abort closes the TCP connection at once, without TLS close_notify.
func (c *conn) abort(reason string) {
	if c.markDead(reason) {
		_ = c.raw.Close()
	}
}

// closeConn closes the connection (TLS close_notify first when logged in).
func (c *conn) closeConn(reason string, graceful bool) {
	if !c.markDead(reason) {
		return
	}
	if graceful && c.nc != nil {
		_ = c.nc.Close()
		return
	}
	_ = c.raw.Close()
}

// markDead records the end of the connection; it reports whether this call
// ended it.
func (c *conn) markDead(reason string) bool {
	c.mu.Lock()
	if c.dead {
		c.mu.Unlock()
		return false
	}
	c.dead = true
	if c.closeReason == "" {
		c.closeReason = reason
	}
	reason = c.closeReason
	c.liveQ, c.ctl, c.held = nil, nil, nil
	c.signalLocked()
	loggedIn := c.loggedIn
	c.mu.Unlock()
	if loggedIn {
		c.srv.met.MCSClosed.WithLabelValues(reason).Inc()
		c.srv.log.Debug("mcs connection closed", "conn", c.num, "android_id", c.aid, "reason", reason)
	}
	return true
}

// Live is the queue.DeviceSink method: a live message for the device. It is
// called from the presence dispatcher and never blocks.
func (c *conn) Live(l queue.Live) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead || c.closing {
		return
	}
	if l.Seq != 0 && l.Seq <= c.lastRead {
		return // read from the store already
	}
	if len(c.liveQ) < liveQueueMax {
		c.liveQ = append(c.liveQ, l)
		c.kickLocked()
		return
	}
	// Overflow: the store is the buffer. Remember where to read from.
	lost := false
	for _, q := range append(c.liveQ, l) {
		if q.Seq != 0 && (c.lostFrom == 0 || q.Seq < c.lostFrom) {
			c.lostFrom = q.Seq
		}
		lost = lost || q.Seq != 0
	}
	c.liveQ = nil
	if lost {
		c.liveLost = true
	}
	c.kickLocked()
}

// Resync is the queue.DeviceSink method: live messages may have been lost
// before they reached Live, so re-read the store after what was read last
// (a message delivered live meanwhile may come again: at least once).
func (c *conn) Resync() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead || c.closing {
		return
	}
	c.liveLost = true
	if c.lostFrom == 0 {
		c.lostFrom = 1 // read from lastRead+1 (see next)
	}
	c.kickLocked()
}

// Kicked is the queue.DeviceSink method: the device logged in elsewhere.
func (c *conn) Kicked() {
	c.requestClose(reasonKicked)
}

// pingIfQuiet queues a server HeartbeatPing when nothing was written since
// limit (unix ns). Called by the server's ticker.
func (c *conn) pingIfQuiet(limit int64) {
	if c.lastWrite.Load() > limit {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.loggedIn || c.dead || c.closing {
		return
	}
	c.lastWrite.Store(time.Now().UnixNano()) // one ping per quiet interval
	c.ctl = append(c.ctl, mcs.HeartbeatPing(0))
	c.kickLocked()
}

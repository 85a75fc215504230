package device

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/ccsd/ccsd/internal/mcs"
	"github.com/ccsd/ccsd/internal/mcs/mcspb"
)

// DefaultClientID is the LoginRequest id a Conn sends unless told otherwise.
const DefaultClientID = "ccsd-device-1"

// Message types of downstream messages (app_data message_type).
const (
	MessageTypeData    = "gcm"              // also when absent
	MessageTypeDeleted = "deleted_messages" // the server dropped stored messages
	MessageTypeSendErr = "send_error"       // an upstream message failed
)

// ErrClosed is returned by a Conn's methods once it is closed, by Close or
// by the server (see Conn.Err for why).
var ErrClosed = errors.New("device connection closed")

// ErrServerClose is the cause when the server sent an MCS Close.
var ErrServerClose = errors.New("server closed the connection")

// LoginError is a LoginResponse that carried an error.
type LoginError struct {
	Code    int32
	Message string
}

func (e *LoginError) Error() string {
	return "mcs login refused: " + strconv.Itoa(int(e.Code)) + " " + e.Message
}

// SendError is an upstream message the server answered with a send_error
// message instead of storing it.
type SendError struct {
	MessageID string
	Code      string // the error app_data value, for example InvalidSender
}

func (e *SendError) Error() string {
	return "upstream message " + e.MessageID + " refused: " + e.Code
}

// Options tunes a Conn. The zero value works.
type Options struct {
	// ClientID is the LoginRequest id; "" means DefaultClientID.
	ClientID string
	// ReceivedIDs are persistent ids of messages received on earlier
	// connections and not yet acknowledged; the login acknowledges them
	// (received_persistent_id).
	ReceivedIDs []string
	// Idle logs in with status bit 0 set (the device is idle).
	Idle bool
	// WriteTimeout bounds each frame write; zero means 30 seconds.
	WriteTimeout time.Duration
	// Buffer is how many downstream messages the Conn holds for Next
	// before its reader stops reading the socket; zero means 256.
	Buffer int
	// MaxFrameBytes is the largest frame accepted; zero means
	// mcs.DefaultMaxFrameBytes.
	MaxFrameBytes int
}

// Message is one downstream DataMessageStanza.
type Message struct {
	PersistentID string // the ack key; pass it to Ack
	ID           string
	From         string // sender id
	Category     string // app package
	CollapseKey  string // stanza token
	TTL          int32  // seconds
	Sent         int64  // as the server stamped it (milliseconds)
	// Data is app_data without message_type.
	Data        map[string]string
	MessageType string // "" (data), "gcm", "deleted_messages" or "send_error"
	RawData     []byte
}

// Upstream is a message from the device to a sender's app servers.
type Upstream struct {
	To        string // "<sender id>@gcm.googleapis.com"
	MessageID string // required, unique per device
	Category  string // the sending app's package
	// RegID is the sending app's registration id; optional, the server
	// otherwise finds the registration from Category.
	RegID string
	// TTL in seconds; zero means 86400 (microG's default).
	TTL  int32
	Data map[string]string
}

// Conn is an MCS connection of one device, logged in.
//
// Ownership: Dial starts exactly one goroutine, the reader, which owns the
// socket's read side: it answers server pings, applies the server's
// acknowledgements, and queues downstream messages for Next (at most
// Options.Buffer; beyond that it stops reading, which is the
// backpressure). Writes come from any goroutine, serialised by wmu, one
// frame per Write. Close (or a read error, or a server Close) ends the
// reader; Close waits for it. Callers must keep calling Next, or the
// reader stalls and with it pings and upstream acknowledgements.
type Conn struct {
	// immutable after Dial
	nc       net.Conn
	opts     Options
	msgs     chan *Message // written by the reader only
	readDone chan struct{} // closed when the reader has returned
	closeCh  chan struct{} // closed by Close

	wmu  sync.Mutex // guards wbuf and the socket's write side; taken before mu
	wbuf []byte     // guarded by wmu

	mu        sync.Mutex
	inCount   int32          // guarded by mu; packets received (the LoginResponse is 1)
	outSeq    int32          // guarded by mu; stream id of the last packet sent (the LoginRequest is 1)
	outAcked  int32          // guarded by mu; highest own stream id the server acknowledged
	unacked   []inMsg        // guarded by mu; data messages received, not yet acked, by stream id
	pending   []*pendingSend // guarded by mu; upstream messages awaiting the server's ack
	pingAcks  uint64         // guarded by mu; HeartbeatAcks received
	changed   chan struct{}  // guarded by mu; closed and replaced on every state change
	err       error          // guarded by mu; why the Conn ended; nil while open
	closing   bool           // guarded by mu; Close was called
	closeOnce sync.Once
}

type inMsg struct {
	seq int32
	pid string
}

type pendingSend struct {
	seq  int32
	id   string
	done bool
	err  error
}

// Dial connects to the MCS endpoint addr over TLS, logs in with cred and
// returns the connection once the server accepted the login. ctx bounds the
// dial and the login only.
func Dial(ctx context.Context, addr string, tlsConfig *tls.Config, cred Credentials, opts Options) (*Conn, error) {
	if opts.ClientID == "" {
		opts.ClientID = DefaultClientID
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = 30 * time.Second
	}
	if opts.Buffer <= 0 {
		opts.Buffer = 256
	}
	if tlsConfig == nil {
		host, _, _ := net.SplitHostPort(addr)
		tlsConfig = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	}
	d := tls.Dialer{Config: tlsConfig}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dialing mcs %s: %w", addr, err)
	}
	c := &Conn{nc: nc, opts: opts, msgs: make(chan *Message, opts.Buffer),
		readDone: make(chan struct{}), closeCh: make(chan struct{}), changed: make(chan struct{})}
	rd := mcs.NewReader(nc, mcs.ReaderConfig{
		MaxFrameBytes: opts.MaxFrameBytes,
		Tags:          mcs.ServerSendTags | 1<<mcs.TagStreamErrorStanza,
	})
	if err := c.login(ctx, rd, cred); err != nil {
		nc.Close()
		return nil, err
	}
	go c.readLoop(rd)
	return c, nil
}

// login writes the LoginRequest and reads the LoginResponse.
func (c *Conn) login(ctx context.Context, rd *mcs.Reader, cred Credentials) error {
	stop := context.AfterFunc(ctx, func() { _ = c.nc.SetDeadline(time.Now()) })
	defer stop()
	lr := mcs.LoginRequest(c.opts.ClientID, cred.AndroidID, cred.SecurityToken, c.opts.ReceivedIDs)
	if c.opts.Idle {
		lr.Status = proto.Int64(1)
	}
	frame, err := mcs.AppendVersionedFrame(nil, mcs.TagLoginRequest, lr)
	if err != nil {
		return fmt.Errorf("encoding login: %w", err)
	}
	c.outSeq = 1
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.opts.WriteTimeout))
	if _, err := c.nc.Write(frame); err != nil {
		return fmt.Errorf("writing login: %w", ctxErr(ctx, err))
	}
	_ = c.nc.SetWriteDeadline(time.Time{})
	f, err := rd.Next()
	if err != nil {
		return fmt.Errorf("reading login response: %w", ctxErr(ctx, err))
	}
	if f.Tag != mcs.TagLoginResponse {
		return fmt.Errorf("mcs login: got %s before the login response", mcs.TagName(f.Tag))
	}
	m, err := mcs.Decode(f)
	if err != nil {
		return fmt.Errorf("mcs login: %w", err)
	}
	resp := m.(*mcspb.LoginResponse)
	if e := resp.GetError(); e != nil && e.GetCode() != 0 {
		return &LoginError{Code: e.GetCode(), Message: e.GetMessage()}
	}
	c.inCount = 1
	c.applyAck(resp.LastStreamIdReceived)
	if err := ctx.Err(); err != nil {
		return err
	}
	return c.nc.SetDeadline(time.Time{})
}

// ctxErr prefers ctx's error over the deadline error it caused.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// readLoop is the reader goroutine; it returns when the socket fails or
// the server closes.
func (c *Conn) readLoop(rd *mcs.Reader) {
	defer close(c.readDone)
	var err error
	for {
		var f mcs.Frame
		if f, err = rd.Next(); err != nil {
			break
		}
		if err = c.handle(f); err != nil {
			break
		}
	}
	c.end(err)
}

// handle processes one frame from the server.
func (c *Conn) handle(f mcs.Frame) error {
	if f.Tag == mcs.TagStreamErrorStanza {
		m, err := mcs.Decode(f)
		if err != nil {
			return err
		}
		se := m.(*mcspb.StreamErrorStanza)
		return fmt.Errorf("mcs stream error: %s %s", se.GetType(), se.GetText())
	}
	m, err := mcs.Decode(f)
	if err != nil {
		return err
	}
	c.mu.Lock()
	if c.inCount < 1<<31-1 {
		c.inCount++
	}
	seq := c.inCount
	c.mu.Unlock()
	switch m := m.(type) {
	case *mcspb.HeartbeatPing:
		c.applyAck(m.LastStreamIdReceived)
		// Answer at once; a write error ends the Conn through the reader.
		if err := c.write(mcs.TagHeartbeatAck, &mcspb.HeartbeatAck{}); err != nil {
			return err
		}
	case *mcspb.HeartbeatAck:
		c.mu.Lock()
		c.pingAcks++
		c.broadcastLocked() // Ping waits for this, whatever the stamp says
		c.mu.Unlock()
		c.applyAck(m.LastStreamIdReceived)
	case *mcspb.IqStanza:
		if ids, ok, err := mcs.SelectiveAckIDs(m); err == nil && ok {
			c.ackSends(ids)
		}
		c.applyAck(m.LastStreamIdReceived)
	case *mcspb.DataMessageStanza:
		msg := toMessage(m)
		c.mu.Lock()
		if msg.PersistentID != "" {
			c.unacked = append(c.unacked, inMsg{seq: seq, pid: msg.PersistentID})
		}
		if msg.MessageType == MessageTypeSendErr {
			c.failSendLocked(msg)
		}
		c.mu.Unlock()
		c.applyAck(m.LastStreamIdReceived)
		select {
		case c.msgs <- msg:
		default:
			// Full: stop reading until Next takes one, or the Conn closes.
			select {
			case c.msgs <- msg:
			case <-c.closeCh:
				return ErrClosed
			}
		}
	case *mcspb.Close:
		return ErrServerClose
	case *mcspb.LoginResponse:
		c.applyAck(m.LastStreamIdReceived)
	}
	return nil
}

func toMessage(m *mcspb.DataMessageStanza) *Message {
	msg := &Message{
		PersistentID: m.GetPersistentId(),
		ID:           m.GetId(),
		From:         m.GetFrom(),
		Category:     m.GetCategory(),
		CollapseKey:  m.GetToken(),
		TTL:          m.GetTtl(),
		Sent:         m.GetSent(),
		RawData:      m.GetRawData(),
		Data:         make(map[string]string, len(m.GetAppData())),
	}
	for _, kv := range m.GetAppData() {
		if kv.GetKey() == "message_type" {
			msg.MessageType = kv.GetValue()
			continue
		}
		msg.Data[kv.GetKey()] = kv.GetValue()
	}
	return msg
}

// failSendLocked resolves the pending upstream message a send_error names.
func (c *Conn) failSendLocked(msg *Message) {
	id := msg.ID
	for _, k := range []string{"google.message_id", "message_id"} {
		if v := msg.Data[k]; v != "" {
			id = v
		}
	}
	code := msg.Data["error"]
	if code == "" {
		code = "send_error"
	}
	for _, p := range c.pending {
		if !p.done && p.id == id {
			p.done, p.err = true, &SendError{MessageID: id, Code: code}
		}
	}
	c.broadcastLocked()
}

// ackSends resolves pending upstream messages a SelectiveAck confirms (their
// persistent id is their message id).
func (c *Conn) ackSends(ids []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range ids {
		for _, p := range c.pending {
			if !p.done && p.id == id {
				p.done = true
			}
		}
	}
	c.broadcastLocked()
}

// applyAck applies a server last_stream_id_received to our sent packets.
func (c *Conn) applyAck(last *int32) {
	if last == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	v := min(*last, c.outSeq)
	if v <= c.outAcked {
		return
	}
	c.outAcked = v
	for _, p := range c.pending {
		if !p.done && p.seq <= v {
			p.done = true
		}
	}
	c.broadcastLocked()
}

func (c *Conn) broadcastLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// stampLocked is the last_stream_id_received we report: every packet
// received up to it is handled, so the server may retire what it carried.
// Data messages not yet acknowledged by the caller hold it back, so a
// crash between Next and Ack leads to redelivery, not loss.
func (c *Conn) stampLocked() int32 {
	if len(c.unacked) > 0 {
		return c.unacked[0].seq - 1
	}
	return c.inCount
}

// write stamps m, numbers it and writes its frame in one Write.
func (c *Conn) write(tag byte, m proto.Message) error {
	_, err := c.writeSeq(tag, m, nil)
	return err
}

// writeSeq is write; before the frame goes out, onSeq (if any) is called
// with its stream id while mu is held.
func (c *Conn) writeSeq(tag byte, m proto.Message, onSeq func(seq int32)) (int32, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return 0, ErrClosed
	}
	stamp := proto.Int32(c.stampLocked())
	switch m := m.(type) {
	case *mcspb.HeartbeatPing:
		m.LastStreamIdReceived = stamp
	case *mcspb.HeartbeatAck:
		m.LastStreamIdReceived = stamp
	case *mcspb.IqStanza:
		m.LastStreamIdReceived = stamp
	case *mcspb.DataMessageStanza:
		m.LastStreamIdReceived = stamp
	}
	var err error
	c.wbuf, err = mcs.AppendFrame(c.wbuf[:0], tag, m)
	if err != nil {
		c.mu.Unlock()
		return 0, err
	}
	c.outSeq++
	seq := c.outSeq
	if onSeq != nil {
		onSeq(seq)
	}
	c.mu.Unlock()
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.opts.WriteTimeout))
	if _, err := c.nc.Write(c.wbuf); err != nil {
		c.nc.Close() // the reader notices and ends the Conn
		return seq, fmt.Errorf("writing %s: %w", mcs.TagName(tag), err)
	}
	if cap(c.wbuf) > 64<<10 {
		c.wbuf = nil
	}
	return seq, nil
}

// Next returns the next downstream message. Messages already queued are
// returned even after the Conn ended; then it returns ErrClosed wrapped
// with the cause (see Err).
func (c *Conn) Next(ctx context.Context) (*Message, error) {
	select {
	case m := <-c.msgs:
		return m, nil
	default:
	}
	select {
	case m := <-c.msgs:
		return m, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.readDone:
		select {
		case m := <-c.msgs:
			return m, nil
		default:
		}
		return nil, c.closedErr()
	}
}

func (c *Conn) closedErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil || errors.Is(c.err, ErrClosed) {
		return ErrClosed
	}
	return fmt.Errorf("%w: %w", ErrClosed, c.err)
}

// Err returns why the Conn ended, or nil while it is open.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Done is closed once the Conn's reader has ended.
func (c *Conn) Done() <-chan struct{} { return c.readDone }

// Ack acknowledges downstream messages by persistent id with a
// SelectiveAck IQ. The server retires them; it will not send them again.
func (c *Conn) Ack(ids ...string) error {
	if len(ids) == 0 {
		return nil
	}
	c.mu.Lock()
	n := 0
	for _, u := range c.unacked {
		acked := false
		for _, id := range ids {
			if u.pid == id {
				acked = true
				break
			}
		}
		if !acked {
			c.unacked[n] = u
			n++
		}
	}
	clear(c.unacked[n:])
	c.unacked = c.unacked[:n]
	c.mu.Unlock()
	return c.write(mcs.TagIqStanza, mcs.SelectiveAckIQ(ids))
}

// Send sends an upstream message and returns once the server acknowledged
// it (a later packet's last_stream_id_received covers it, or a
// SelectiveAck lists it), that is once the server stored it. A send_error
// for its message id that arrives first makes it a *SendError.
func (c *Conn) Send(ctx context.Context, up Upstream) error {
	if up.MessageID == "" || up.To == "" {
		return errors.New("upstream message needs to and message_id")
	}
	ttl := up.TTL
	if ttl == 0 {
		ttl = 86400
	}
	from := up.RegID
	if from == "" {
		from = "gcm@android.com"
	}
	m := &mcspb.DataMessageStanza{
		Id:           proto.String(up.MessageID),
		From:         proto.String(from),
		To:           proto.String(up.To),
		Category:     proto.String(up.Category),
		PersistentId: proto.String(up.MessageID),
		Ttl:          proto.Int32(ttl),
		Sent:         proto.Int64(time.Now().Unix()),
	}
	if up.RegID != "" {
		m.RegId = proto.String(up.RegID)
	}
	for k, v := range up.Data {
		m.AppData = append(m.AppData, &mcspb.AppData{Key: proto.String(k), Value: proto.String(v)})
	}
	p := &pendingSend{id: up.MessageID}
	if _, err := c.writeSeq(mcs.TagDataMessageStanza, m, func(seq int32) {
		p.seq = seq
		c.pending = append(c.pending, p)
	}); err != nil {
		c.dropPending(p)
		return err
	}
	defer c.dropPending(p)
	for {
		c.mu.Lock()
		done, err, cerr, ch := p.done, p.err, c.err, c.changed
		c.mu.Unlock()
		if done {
			return err
		}
		if cerr != nil {
			return fmt.Errorf("upstream message %s not acknowledged: %w", up.MessageID, c.closedErr())
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (c *Conn) dropPending(p *pendingSend) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, q := range c.pending {
		if q == p {
			c.pending = append(c.pending[:i], c.pending[i+1:]...)
			return
		}
	}
}

// SetIdle tells the server whether the device is idle: a HeartbeatPing
// with status bit 0 set (idle) or clear (active).
func (c *Conn) SetIdle(idle bool) error {
	var status int64
	if idle {
		status = 1
	}
	return c.write(mcs.TagHeartbeatPing, &mcspb.HeartbeatPing{Status: proto.Int64(status)})
}

// Ping sends a HeartbeatPing and waits for a HeartbeatAck.
func (c *Conn) Ping(ctx context.Context) error {
	c.mu.Lock()
	before := c.pingAcks
	c.mu.Unlock()
	if err := c.write(mcs.TagHeartbeatPing, &mcspb.HeartbeatPing{}); err != nil {
		return err
	}
	for {
		c.mu.Lock()
		got, cerr, ch := c.pingAcks, c.err, c.changed
		c.mu.Unlock()
		if got > before {
			return nil
		}
		if cerr != nil {
			return c.closedErr()
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Close sends an MCS Close, closes the socket and waits for the reader to
// end. Messages still unacknowledged will be redelivered on the next login.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closing = true
		open := c.err == nil
		c.mu.Unlock()
		close(c.closeCh)
		// Best effort, bounded: the peer may be gone, and a write stuck
		// on a full socket means no Close frame rather than a wait.
		if open && c.wmu.TryLock() {
			_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
			if b, err := mcs.AppendFrame(nil, mcs.TagClose, mcs.Close()); err == nil {
				_, _ = c.nc.Write(b)
			}
			c.wmu.Unlock()
		}
		c.nc.Close()
		<-c.readDone
	})
	return nil
}

// end records why the Conn ended and wakes every waiter.
func (c *Conn) end(err error) {
	c.mu.Lock()
	if c.closing || err == nil {
		err = ErrClosed
	}
	if c.err == nil {
		c.err = err
	}
	c.broadcastLocked()
	c.mu.Unlock()
	c.nc.Close()
}

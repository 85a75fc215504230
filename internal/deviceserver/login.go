package deviceserver

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/ccsd/ccsd/internal/mcs"
	"github.com/ccsd/ccsd/internal/mcs/mcspb"
	"github.com/ccsd/ccsd/internal/queue"
)

// Reasons of failed logins (the label of metrics.MCSLoginFails).
const (
	loginTLS         = "tls"
	loginTimeout     = "timeout"
	loginEOF         = "eof"
	loginVersion     = "version"
	loginFraming     = "framing"
	loginNotLogin    = "not_login_request"
	loginBadRequest  = "bad_request"
	loginAuthService = "auth_service"
	loginBadUser     = "bad_user"
	loginBadToken    = "bad_token"
	loginUnknown     = "unknown_device"
	loginStore       = "store_error"
	loginClosed      = "server_closed"
)

// loginError is a refused login: what the device is told and what is
// counted.
type loginError struct {
	reason  string // metric label
	code    int32  // ErrorInfo.code; 0 means close without a LoginResponse
	message string
}

// login runs the TLS handshake and the LoginRequest within LoginTimeout. It
// returns "" once the device is logged in (LoginResponse queued, presence
// joined, reader state ready), or the reason the connection must close.
func (c *conn) login() string {
	s := c.srv
	_ = c.raw.SetDeadline(time.Now().Add(s.cfg.LoginTimeout))
	c.nc = c.raw
	if s.cfg.TLSConfig != nil {
		tc := tls.Server(c.raw, s.cfg.TLSConfig)
		if err := tc.HandshakeContext(s.ctx); err != nil {
			reason := loginTLS
			if errors.Is(err, os.ErrDeadlineExceeded) {
				reason = loginTimeout
			}
			return c.loginFailed(nil, &loginError{reason: reason}, err)
		}
		c.nc = tc
	}
	rd := mcs.NewReader(c.nc, mcs.ReaderConfig{MaxFrameBytes: s.cfg.MaxFrameBytes, Tags: mcs.ClientSendTags, ReleaseWhenIdle: true})
	f, err := rd.Next()
	if err != nil {
		return c.loginFailed(nil, frameLoginError(err), err)
	}
	if f.Tag != mcs.TagLoginRequest {
		return c.loginFailed(nil, &loginError{loginNotLogin, 400, "expected LoginRequest"}, nil)
	}
	m, err := mcs.Decode(f)
	rd.Release()
	if err != nil {
		return c.loginFailed(nil, &loginError{loginBadRequest, 400, "malformed LoginRequest"}, err)
	}
	req := m.(*mcspb.LoginRequest)
	aid, token, lerr := checkLogin(req)
	if lerr != nil {
		return c.loginFailed(req, lerr, nil)
	}
	if err := s.be.VerifyDevice(s.ctx, aid, token); err != nil {
		switch {
		case errors.Is(err, queue.ErrNotFound):
			lerr = &loginError{loginUnknown, 401, "unknown android id"}
		case errors.Is(err, queue.ErrBadToken):
			lerr = &loginError{loginBadToken, 401, "bad security token"}
		default:
			lerr = &loginError{loginStore, 503, "service unavailable"}
		}
		return c.loginFailed(req, lerr, err)
	}
	c.aid = aid

	// Reader and session state, then presence, then the LoginResponse: the
	// writer reads the backlog only after Join.
	sess := mcs.NewSession(s.cfg.MaxInFlight)
	acked, _ := sess.Receive(nil, req)
	if len(acked) > 0 {
		c.p.loginAcks = make(map[uint64]struct{}, len(acked))
		for _, pid := range acked {
			if seq, ok := mcs.ParsePersistentID(pid); ok {
				c.p.loginAcks[seq] = struct{}{}
			}
		}
	}
	c.rd = rd
	c.mu.Lock()
	c.sess = sess
	c.idle = req.Status != nil && *req.Status&1 != 0
	c.mu.Unlock()

	leave, err := s.be.Join(aid, c.connID(), c)
	if err != nil {
		return c.loginFailed(req, &loginError{loginStore, 503, "service unavailable"}, err)
	}
	c.leave = leave

	resp := mcs.LoginResponse(req.GetId(), s.nowMs())
	if iv := s.cfg.ClientHeartbeatInterval; iv > 0 {
		resp.HeartbeatConfig = &mcspb.HeartbeatConfig{IntervalMs: proto.Int32(int32(iv.Milliseconds()))}
	}
	s.mu.Lock()
	closed := s.closed
	if !closed {
		s.loggedIn++
	}
	s.mu.Unlock()
	if closed {
		return c.loginFailed(req, &loginError{reason: loginClosed}, nil)
	}
	_ = c.raw.SetDeadline(time.Time{})
	s.met.MCSLogins.Inc()
	c.mu.Lock()
	c.loggedIn = true
	c.ctl = append(c.ctl, resp, mcs.SelectiveAckIQ(nil))
	c.kickLocked()
	c.mu.Unlock()
	return ""
}

// checkLogin validates a LoginRequest's fields (mcs.md §4.1) and returns the
// credentials.
func checkLogin(req *mcspb.LoginRequest) (aid, token uint64, _ *loginError) {
	if req.AuthService != nil && *req.AuthService != mcs.AuthServiceID {
		return 0, 0, &loginError{loginAuthService, 400, "unsupported auth_service"}
	}
	aid, err := strconv.ParseUint(req.GetUser(), 10, 64)
	if err != nil || aid == 0 {
		return 0, 0, &loginError{loginBadUser, 401, "user is not an android id"}
	}
	token, err = strconv.ParseUint(req.GetAuthToken(), 10, 64)
	if err != nil || token == 0 {
		return 0, 0, &loginError{loginBadToken, 401, "bad security token"}
	}
	return aid, token, nil
}

// frameLoginError classifies a failure to read the first frame.
func frameLoginError(err error) *loginError {
	var fe *mcs.FrameError
	switch {
	case errors.As(err, &fe) && fe.Reason == mcs.ReasonVersion:
		return &loginError{reason: loginVersion} // not MCS 38..41: say nothing
	case errors.As(err, &fe):
		return &loginError{loginFraming, 400, "bad frame"}
	case errors.Is(err, os.ErrDeadlineExceeded):
		return &loginError{reason: loginTimeout}
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return &loginError{reason: loginEOF}
	default:
		return &loginError{reason: loginEOF}
	}
}

// loginFailed counts a refused login, tells the device when there is
// something to tell (LoginResponse with error, then Close), and returns the
// close reason.
func (c *conn) loginFailed(req *mcspb.LoginRequest, le *loginError, err error) string {
	s := c.srv
	s.met.MCSLoginFails.WithLabelValues(le.reason).Inc()
	s.log.Info("mcs login refused", "conn", c.num, "remote", c.raw.RemoteAddr().String(), "reason", le.reason, "err", err)
	if le.code != 0 && c.nc != nil {
		_ = c.nc.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
		buf := getBuf()
		b, encErr := mcs.AppendVersionedFrame((*buf)[:0], mcs.TagLoginResponse, mcs.LoginErrorResponse(req.GetId(), le.code, le.message))
		if encErr == nil {
			if _, werr := c.nc.Write(b); werr == nil {
				b, _ = mcs.AppendFrame(b[:0], mcs.TagClose, mcs.Close())
				_, _ = c.nc.Write(b)
			}
		}
		putBuf(buf, b)
	}
	return reasonLoginFailed
}

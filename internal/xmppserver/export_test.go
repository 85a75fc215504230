package xmppserver

// Test-only access for the external tests.

// SetWindowFullHook makes every reader that finds its window full call f.
func SetWindowFullHook(s *Server, f func()) { s.testWindowFull = f }

// ConnState is a snapshot of one connection's bounded queues.
type ConnState struct {
	Pending, Window int // unanswered downstream messages and the window size
	OutboundBytes   int // bytes queued for the writer
	OutboundMax     int // the soft limit on them
}

// ConnStates snapshots every open connection.
func ConnStates(s *Server) []ConnState {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []ConnState
	for c := range s.conns {
		st := ConnState{Pending: c.win.len(), Window: len(c.win.slots), OutboundMax: c.out.max}
		c.out.mu.Lock()
		if c.out.buf != nil {
			st.OutboundBytes = len(c.out.buf.b)
		}
		c.out.mu.Unlock()
		out = append(out, st)
	}
	return out
}

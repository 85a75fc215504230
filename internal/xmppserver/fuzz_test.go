package xmppserver

import (
	"bytes"
	"testing"

	"github.com/ccsd/ccsd/internal/xmltok"
	"github.com/ccsd/ccsd/internal/xmpp"
)

// The server's parsers belong to xmltok, xmpp and gcm (fuzzed there); these
// fuzzers drive the server's own state machines with arbitrary client bytes
// and check they neither panic nor break their invariants.

// FuzzNegotiate feeds arbitrary bytes through the negotiator (every
// authentication succeeds).
func FuzzNegotiate(f *testing.F) {
	f.Add([]byte(hdr + plainAuth("PLAIN", "", testSndr, testKey) + hdr +
		`<iq type="set" id="b"><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"><resource>r</resource></bind></iq>` +
		`<iq type="set" id="s"><session xmlns="urn:ietf:params:xml:ns:xmpp-session"/></iq>` +
		`<iq type="get" id="p"><ping xmlns="urn:xmpp:ping"/></iq></stream:stream>`))
	f.Add([]byte(hdr + `<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="PLAIN">=</auth>`))
	f.Add([]byte(hdr + `<message/>`))
	f.Fuzz(func(t *testing.T, in []byte) {
		var n negotiator
		n.init(testDomain, fixedRandom)
		rd := xmltok.NewReader(bytes.NewReader(in), xmltok.Limits{})
		var tk xmltok.Tokenizer
		var st xmpp.Stanza
		for {
			fr, err := rd.Next()
			if err != nil {
				return
			}
			var a action
			switch fr.Kind {
			case xmltok.StreamStart:
				h, perr := xmpp.ParseStreamHeader(&tk, fr.Raw)
				_, a = n.header(nil, h, perr)
			case xmltok.Stanza:
				if st.Parse(&tk, fr.Raw) != nil {
					return
				}
				if st.Kind == xmpp.KindMessage && n.phase == phaseReady {
					continue
				}
				_, a = n.stanza(nil, &st)
			case xmltok.StreamEnd:
				_, a = n.streamEnd(nil)
			}
			if a == actAuth {
				_, a = n.authDone(nil, nil)
			}
			switch a {
			case actRestart:
				rd.Restart()
			case actClose:
				if n.phase != phaseClosed || n.reason == "" {
					t.Fatalf("close without reason (phase %d)", n.phase)
				}
				return
			case actBound:
				if n.jid == "" || n.phase != phaseReady {
					t.Fatalf("bound without jid")
				}
			}
		}
	})
}

// FuzzBoundConn feeds arbitrary bytes to a bound connection's frame
// handling, answering what it queues after every frame; the window must
// stay within bounds.
func FuzzBoundConn(f *testing.F) {
	f.Add([]byte(string(downstreamStanza) + ` <iq type="get" id="p"><ping xmlns="urn:xmpp:ping"/></iq><presence/>`))
	f.Add([]byte(`<message id="1"><gcm xmlns="google:mobile:data">{"to":"a","message_id":"x","message_type":"ack"}</gcm></message>`))
	f.Add([]byte(`<message><gcm xmlns="google:mobile:data">[1]</gcm></message><message><body/></message>`))
	f.Add([]byte(`<message><gcm xmlns="google:mobile:data">{"to":"a","message_id":"m","data":{"google.x":"1"}}</gcm></message></stream:stream>`))
	f.Fuzz(func(t *testing.T, in []byte) {
		c := boundConn(t)
		// A bound connection's reader is past the stream header.
		rd := xmltok.NewReader(bytes.NewReader(append([]byte(hdr), in...)), xmltok.Limits{})
		if fr, err := rd.Next(); err != nil || fr.Kind != xmltok.StreamStart {
			t.Fatalf("header: %v", err)
		}
		for {
			fr, err := rd.Next()
			if err != nil {
				return
			}
			more := c.frame(fr)
			if n := c.win.len(); n > len(c.win.slots) {
				t.Fatalf("window holds %d of %d", n, len(c.win.slots))
			}
			c.win.mu.Lock()
			first, k := c.win.head, c.win.n
			c.win.mu.Unlock()
			if k > 0 {
				c.answer(first, k)
			}
			ob, _ := c.out.take()
			putOutBuf(ob)
			if !more {
				return
			}
		}
	})
}

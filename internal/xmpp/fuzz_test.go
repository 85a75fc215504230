package xmpp

import (
	"bytes"
	"encoding/base64"
	"testing"

	"github.com/ccsd/ccsd/internal/xmltok"
)

// FuzzStanza parses arbitrary frames: Parse must not panic, must give the
// same view when a Stanza is reused, and GCMRaw must be the bytes of the
// child it came from.
func FuzzStanza(f *testing.F) {
	f.Add([]byte(typicalStanza))
	f.Fuzz(func(t *testing.T, in []byte) {
		var tk xmltok.Tokenizer
		var s Stanza
		err := s.Parse(&tk, in)
		first := view(&s)
		if err != nil {
			return
		}
		if s.HasGCM {
			if !bytes.Contains(in, s.GCMRaw) || len(s.GCMRaw) < 3 || s.GCMRaw[0] != '<' || s.GCMRaw[len(s.GCMRaw)-1] != '>' {
				t.Fatalf("GCMRaw %q is not a child of %q", s.GCMRaw, in)
			}
		}
		if _, err := ParseStreamHeader(&tk, in); err == nil && s.Kind != KindOther {
			t.Fatalf("%q is both a stream header and a stanza of kind %d", in, s.Kind)
		}
		// Reuse: parse something else, then the same frame again.
		if err := s.Parse(&tk, []byte(escapedStanza)); err != nil {
			t.Fatal(err)
		}
		if err := s.Parse(&tk, in); err != nil {
			t.Fatalf("second Parse: %v", err)
		}
		if again := view(&s); again != first {
			t.Fatalf("reused Stanza differs\nfirst %s\nagain %s", first, again)
		}
	})
}

// FuzzParsePlain checks ParsePlain never panics and accepts only canonical
// base64 of a message with exactly two NULs.
func FuzzParsePlain(f *testing.F) {
	f.Add([]byte("AHNlbmRlcgBrZXk="))
	f.Fuzz(func(t *testing.T, in []byte) {
		z, c, p, err := ParsePlain(in, nil)
		if err != nil {
			return
		}
		msg := string(z) + "\x00" + string(c) + "\x00" + string(p)
		if bytes.ContainsAny(in, "\r\n") {
			return // the decoder skips line breaks
		}
		if got := base64.StdEncoding.EncodeToString([]byte(msg)); got != string(bytes.TrimSpace(in)) {
			t.Fatalf("accepted %q, which re-encodes as %q", in, got)
		}
		if bytes.IndexByte([]byte(string(c)+string(p)+string(z)), 0) >= 0 {
			t.Fatalf("a field holds NUL: %q %q %q", z, c, p)
		}
	})
}

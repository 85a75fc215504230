package xmpp

import (
	"encoding/base64"
	"testing"
)

func TestParsePlain(t *testing.T) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	for _, tt := range []struct {
		name, in                 string
		authzid, authcid, passwd string
		wantErr                  bool
	}{
		{"go-xmpp: empty authzid", b64("\x00123456\x00AIzaKey"), "", "123456", "AIzaKey", false},
		{"smack 3: qualified twice", b64("1@gcm.googleapis.com\x001@gcm.googleapis.com\x00k"), "1@gcm.googleapis.com", "1@gcm.googleapis.com", "k", false},
		{"empty password", b64("\x00u\x00"), "", "u", "", false},
		{"surrounding whitespace", " " + b64("\x00u\x00p") + "\n", "", "u", "p", false},
		{"one NUL", b64("\x00up"), "", "", "", true},
		{"three NULs", b64("\x00u\x00p\x00"), "", "", "", true},
		{"no NUL", b64("userpass"), "", "", "", true},
		{"= is an empty response", "=", "", "", "", true},
		{"empty", "", "", "", "", true},
		{"bad base64", "!!!!", "", "", "", true},
		{"missing padding", "AHUAcA", "", "", "", true},
		{"non-canonical padding bits", "AHUAcB==", "", "", "", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			z, c, p, err := ParsePlain([]byte(tt.in), make([]byte, 0, 64))
			if (err != nil) != tt.wantErr {
				t.Fatalf("error %v, want error %v", err, tt.wantErr)
			}
			if err == nil && (string(z) != tt.authzid || string(c) != tt.authcid || string(p) != tt.passwd) {
				t.Errorf("got %q %q %q, want %q %q %q", z, c, p, tt.authzid, tt.authcid, tt.passwd)
			}
		})
	}
}

func TestAppendBase64(t *testing.T) {
	for _, parts := range [][]string{{}, {"a"}, {"ab"}, {"abc"}, {"", "\x00", "123", "\x00", "AIza-key_long/+="}, {"\xff\xfe", "\xfd"}} {
		all := ""
		for _, p := range parts {
			all += p
		}
		if got, want := string(appendBase64(nil, parts...)), base64.StdEncoding.EncodeToString([]byte(all)); got != want {
			t.Errorf("appendBase64(%q) = %q, want %q", parts, got, want)
		}
	}
}

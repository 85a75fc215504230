package gcm

import (
	"strings"
	"testing"
)

func TestDataPairs(t *testing.T) {
	tests := []struct {
		name string
		data string
		want []KV
	}{
		{"empty", `{}`, nil},
		{"strings", `{"a":"b","c":"d"}`, []KV{{"a", "b"}, {"c", "d"}}},
		{"escapes", ` { "k\u0041" : "a\"b\u00e9\ud83d\ude00\n" } `, []KV{{"kA", "a\"bé😀\n"}}},
		{"non-strings as JSON text", `{"n":42,"f":-1.5e3,"t":true,"z":null,"o":{"x": [1, 2]},"a":[]}`,
			[]KV{{"n", "42"}, {"f", "-1.5e3"}, {"t", "true"}, {"z", "null"}, {"o", `{"x": [1, 2]}`}, {"a", "[]"}}},
		{"duplicates in order", `{"k":"1","k":"2"}`, []KV{{"k", "1"}, {"k", "2"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := []byte(tt.data)
			var got []KV
			if err := DataPairs(data, func(k, v string) { got = append(got, KV{k, v}) }); err != nil {
				t.Fatalf("DataPairs(%s) = %v", tt.data, err)
			}
			if !equalKV(got, tt.want) {
				t.Errorf("DataPairs(%s)\n got %q\nwant %q", tt.data, got, tt.want)
			}
			if string(data) != tt.data {
				t.Errorf("DataPairs rewrote its input to %s", data)
			}
		})
	}
}

func TestDataPairsRejects(t *testing.T) {
	tests := []struct {
		data string
		want string
	}{
		{``, "data is not a JSON object"},
		{`[]`, "data is not a JSON object"},
		{`"x"`, "data is not a JSON object"},
		{`{"a":1`, "invalid data object: expected ',' or '}' at offset 6"},
		{`{"a":1} {}`, "invalid data object: trailing data after the JSON object at offset 8"},
		{`{"a":"\q"}`, "invalid data object: invalid escape in string at offset 6"},
		{"{\"a\":\"\xff\"}", "invalid data object: invalid UTF-8 in string at offset 6"},
	}
	for _, tt := range tests {
		calls := 0
		err := DataPairs([]byte(tt.data), func(k, v string) { calls++ })
		if err == nil {
			t.Errorf("DataPairs(%q) = nil, want %q", tt.data, tt.want)
			continue
		}
		if got := err.Error(); got != tt.want {
			t.Errorf("DataPairs(%q) = %q, want %q", tt.data, got, tt.want)
		}
		if calls != 0 {
			t.Errorf("DataPairs(%q) called fn %d times before failing", tt.data, calls)
		}
	}
}

func TestReservedKey(t *testing.T) {
	for key, want := range map[string]bool{
		"from": true, "gcm": true, "google": true, "google.c.a.e": true, "googleX": true,
		"": false, "fro": false, "fromage": false, "gc": false, "gcmx": false, "goog": false,
		"Google": false, "FROM": false, "xgoogle": false,
	} {
		pfx := key[:min(len(key), 6)]
		if got := reservedKey([]byte(pfx), len(key)); got != want {
			t.Errorf("reservedKey(%q) = %v, want %v", key, got, want)
		}
	}
}

func TestDataSize(t *testing.T) {
	tests := []struct {
		data string
		want int
	}{
		{`{}`, 0},
		{`{"ab":"cd"}`, 4},
		{`{"a":"\u00e9"}`, 3},
		{`{"a" : 12 , "b":{"c": 1}}`, 1 + 2 + 1 + 8},
		{`{"a":"` + strings.Repeat(`\n`, 10) + `"}`, 11},
	}
	for _, tt := range tests {
		s := scanner{b: []byte(tt.data)}
		got, _, ok := scanData(&s, 2)
		if !ok {
			t.Errorf("scanData(%s) failed: %s", tt.data, s.err)
			continue
		}
		if got != tt.want {
			t.Errorf("scanData(%s) size = %d, want %d", tt.data, got, tt.want)
		}
	}
}

func equalKV(a, b []KV) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

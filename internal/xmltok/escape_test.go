package xmltok

import "testing"

func TestUnescape(t *testing.T) {
	for _, tt := range []struct {
		in, want, cond string
	}{
		{"plain", "plain", ""},
		{"", "", ""},
		{"&amp;&lt;&gt;&quot;&apos;", `&<>"'`, ""},
		{"{&quot;to&quot;:&quot;x&quot;}", `{"to":"x"}`, ""},
		{"&#X43;", "", "not-well-formed"}, // only a lower-case x starts hex
		{"&#65;&#x42;&#x20ac;&#128512;", "AB€😀", ""},
		{"a&#9;b&#10;", "a\tb\n", ""},
		{"&nbsp;", "", "restricted-xml"},
		{"&averyveryverylongentityname;", "", "restricted-xml"},
		{"&", "", "not-well-formed"},
		{"&amp", "", "not-well-formed"},
		{"&#;", "", "not-well-formed"},
		{"&#x;", "", "not-well-formed"},
		{"&#1;", "", "not-well-formed"},
		{"&#xFFFE;", "", "not-well-formed"},
		{"&;", "", "not-well-formed"},
		{"& amp;", "", "not-well-formed"},
	} {
		got, err := Unescape(nil, []byte(tt.in))
		if c := condOf(err); c != tt.cond {
			t.Errorf("Unescape(%q) condition %q (%v), want %q", tt.in, c, err, tt.cond)
			continue
		}
		if err == nil && string(got) != tt.want {
			t.Errorf("Unescape(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestAppendEscapes(t *testing.T) {
	for _, tt := range []struct {
		in, text, attr string
	}{
		{`{"a":"<b>&c'"}`, `{"a":"&lt;b&gt;&amp;c'"}`, `{&quot;a&quot;:&quot;&lt;b&gt;&amp;c&apos;&quot;}`},
		{"plain", "plain", "plain"},
		{"", "", ""},
		{"é&", "é&amp;", "é&amp;"},
	} {
		if got := string(AppendText([]byte("x"), []byte(tt.in))); got != "x"+tt.text {
			t.Errorf("AppendText(%q) = %q, want %q", tt.in, got, "x"+tt.text)
		}
		if got := string(AppendTextString(nil, tt.in)); got != tt.text {
			t.Errorf("AppendTextString(%q) = %q, want %q", tt.in, got, tt.text)
		}
		if got := string(AppendAttr(nil, tt.in)); got != tt.attr {
			t.Errorf("AppendAttr(%q) = %q, want %q", tt.in, got, tt.attr)
		}
		// Round trip.
		if got, err := Unescape(nil, AppendAttr(nil, tt.in)); err != nil || string(got) != tt.in {
			t.Errorf("Unescape(AppendAttr(%q)) = %q, %v", tt.in, got, err)
		}
	}
}

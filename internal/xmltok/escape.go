package xmltok

func unescape(dst, raw []byte) ([]byte, error) { return append(dst, raw...), nil }

func appendText(dst, s []byte) []byte { return append(dst, s...) }

func appendTextString(dst []byte, s string) []byte { return append(dst, s...) }

func appendAttr(dst []byte, s string) []byte { return append(dst, s...) }

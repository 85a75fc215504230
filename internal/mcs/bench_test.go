package mcs

import (
	"bytes"
	"io"
	"testing"
)

func BenchmarkReaderNext(b *testing.B) {
	for _, release := range []bool{false, true} {
		name := "keep"
		if release {
			name = "releaseWhenIdle"
		}
		b.Run(name, func(b *testing.B) {
			frames := dataFrames(b, 64)
			in := io.MultiReader(bytes.NewReader([]byte{Version}), &loopReader{data: frames})
			r := NewReader(in, ReaderConfig{ReleaseWhenIdle: release})
			b.SetBytes(int64(len(frames) / 64))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := r.Next(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkReaderNextDecode(b *testing.B) {
	frames := dataFrames(b, 64)
	in := io.MultiReader(bytes.NewReader([]byte{Version}), &loopReader{data: frames})
	r := NewReader(in, ReaderConfig{})
	b.SetBytes(int64(len(frames) / 64))
	b.ReportAllocs()
	for b.Loop() {
		f, err := r.Next()
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Decode(f); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendFrame(b *testing.B) {
	m := testData()
	buf := make([]byte, 0, 4096)
	b.SetBytes(int64(FrameSize(m)))
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = AppendFrame(buf[:0], TagDataMessageStanza, m); err != nil {
			b.Fatal(err)
		}
	}
}

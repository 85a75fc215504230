package xmltok

import (
	"errors"
	"io"
)

// errWouldBlock is returned by reader.next(false) when no complete frame is
// buffered.
var errWouldBlock = errors.New("xmltok: would block")

type reader struct {
	src io.Reader
	lim Limits
}

func (r *reader) init(src io.Reader, lim Limits) { r.src = src; r.lim = lim }

func (r *reader) next(block bool) (Frame, error) {
	return Frame{}, &Error{Condition: "internal-server-error", Reason: "not implemented"}
}

func (r *reader) restart()      {}
func (r *reader) buffered() int { return 0 }
func (r *reader) release()      {}

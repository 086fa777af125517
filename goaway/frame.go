package goaway

import "encoding/binary"

// HTTP/2 framing constants (RFC 9113 §4.1, §6).
const (
	frameHeaderLen = 9
	frameHeaders   = 0x1
	framePush      = 0x5
	frameGoAway    = 0x7
	frameCont      = 0x9
	flagEndHeaders = 0x4
	// blockTypes has bit t set for the frame types that start or continue
	// a field block (HEADERS, PUSH_PROMISE, CONTINUATION).
	blockTypes = 1<<frameHeaders | 1<<framePush | 1<<frameCont
	// maxStreamID is the largest stream identifier, and the last-stream-id
	// of every GOAWAY this package writes: "no stream refused", the same
	// value grpc-go's own first drain GOAWAY carries.
	maxStreamID = 1<<31 - 1
	// clientPrefaceLen is the length of "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
	// which a client sends before its first frame.
	clientPrefaceLen = 24
	// maxDebugData bounds the debug data of an inserted GOAWAY: enough for a
	// reason, small enough to stay one short write.
	maxDebugData = 64
)

// frameCursor follows a byte stream of HTTP/2 frames that arrives split
// into chunks at arbitrary points. It never buffers payload and never
// allocates: it keeps the bytes of a frame header that straddles two chunks
// and the number of payload bytes still to come. Every connection carries
// two (one per direction), so it is kept small (24 bytes).
//
// The cursor is at a frame boundary when it has seen no byte of the next
// frame (hdrN and left are 0): the only place a frame may be inserted.
type frameCursor struct {
	left uint32 // payload bytes of the current frame still to come
	// stream and typ are those of the last completed header.
	stream uint32
	hdr    [frameHeaderLen]byte // header bytes collected so far (hdrN of them)
	hdrN   uint8                // 0 unless a header straddles chunks
	typ    byte
	// inBlock is true between a HEADERS or PUSH_PROMISE frame without
	// END_HEADERS and the CONTINUATION frame that ends the field block: no
	// other frame may come between them (RFC 9113 §6.10).
	inBlock bool
	// started is true once a whole frame has been seen.
	started bool
}

// canInsert reports whether a frame may be inserted here: at a boundary,
// after the first frame (the server's SETTINGS preface must come first),
// and outside a field block.
func (f *frameCursor) canInsert() bool {
	return f.hdrN == 0 && f.left == 0 && f.started && !f.inBlock
}

// next consumes bytes of p up to the end of the current frame (or of the
// next frame, at a boundary). It returns how many bytes it consumed and
// whether it completed a frame header on the way (the header's type and
// stream are then in typ and stream). It consumes at least one byte of a
// non-empty p.
func (f *frameCursor) next(p []byte) (n int, hdr bool) {
	if f.left == 0 {
		var h []byte
		if f.hdrN == 0 && len(p) >= frameHeaderLen {
			h, n = p[:frameHeaderLen], frameHeaderLen
		} else {
			n = copy(f.hdr[f.hdrN:], p)
			f.hdrN += uint8(n)
			if f.hdrN < frameHeaderLen {
				return n, false
			}
			f.hdrN = 0
			h = f.hdr[:]
		}
		f.left = uint32(h[0])<<16 | uint32(h[1])<<8 | uint32(h[2])
		f.typ = h[3]
		f.stream = binary.BigEndian.Uint32(h[5:9]) & maxStreamID
		hdr = true
		switch f.typ {
		case frameHeaders, framePush, frameCont:
			f.inBlock = h[4]&flagEndHeaders == 0
		}
		if f.left == 0 {
			f.started = true
			return n, true
		}
	}
	k := uint32(len(p) - n)
	if k >= f.left {
		n += int(f.left)
		f.left = 0
		f.started = true
	} else {
		n += int(k)
		f.left -= k
	}
	return n, hdr
}

// appendGoAway appends a GOAWAY frame (RFC 9113 §6.8) with last-stream-id
// 2^31-1, error code NO_ERROR and debug as its debug data (cut to
// maxDebugData bytes).
func appendGoAway(b []byte, debug string) []byte {
	if len(debug) > maxDebugData {
		debug = debug[:maxDebugData]
	}
	n := 8 + len(debug)
	b = append(b, byte(n>>16), byte(n>>8), byte(n), frameGoAway, 0, 0, 0, 0, 0)
	b = binary.BigEndian.AppendUint32(b, maxStreamID)
	b = binary.BigEndian.AppendUint32(b, 0) // NO_ERROR
	return append(b, debug...)
}

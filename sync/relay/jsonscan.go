package relay

import (
	"bufio"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"unicode/utf16"
	"unicode/utf8"
)

var base64Std = base64.StdEncoding

// scanner reads JSON (RFC 8259) from a stream one token at a time, so that
// a long string can be passed on in pieces instead of being held whole.
// Only what the outbox answer needs: objects, arrays, strings streamed to
// a callback, and skipping any value.
type scanner struct {
	r   *bufio.Reader
	off int64 // bytes consumed, for error messages
}

func newScanner(r io.Reader) *scanner { return &scanner{r: bufio.NewReaderSize(r, 32<<10)} }

func (s *scanner) syntax(format string, args ...any) error {
	return fmt.Errorf("JSON syntax error at byte %d: %s", s.off, fmt.Sprintf(format, args...))
}

// next consumes one byte.
func (s *scanner) next() (byte, error) {
	c, err := s.r.ReadByte()
	if err == io.EOF {
		return 0, io.ErrUnexpectedEOF
	}
	if err == nil {
		s.off++
	}
	return c, err
}

// peek skips white space and returns the next byte without consuming it.
func (s *scanner) peek() (byte, error) {
	for {
		c, err := s.r.ReadByte()
		if err == io.EOF {
			return 0, io.ErrUnexpectedEOF
		}
		if err != nil {
			return 0, err
		}
		switch c {
		case ' ', '\t', '\r', '\n':
			s.off++
			continue
		}
		s.r.UnreadByte()
		return c, nil
	}
}

// expect skips white space and consumes c.
func (s *scanner) expect(c byte) error {
	got, err := s.peek()
	if err != nil {
		return err
	}
	if got != c {
		return s.syntax("want %q, got %q", c, got)
	}
	s.next()
	return nil
}

// object reads the members of an object whose '{' is consumed, calling
// member for each key (cut to maxKey bytes) with the reader before its
// value; member must consume the value.
func (s *scanner) object(member func(key string) error) error {
	c, err := s.peek()
	if err != nil {
		return err
	}
	if c == '}' {
		s.next()
		return nil
	}
	for {
		if err := s.expect('"'); err != nil {
			return err
		}
		k := &boundedBuffer{max: maxKey}
		if err := s.str(k.write); err != nil {
			return err
		}
		if err := s.expect(':'); err != nil {
			return err
		}
		key := k.buf.String()
		if k.over {
			key = "" // matches no field
		}
		if err := member(key); err != nil {
			return err
		}
		c, err := s.peek()
		if err != nil {
			return err
		}
		s.next()
		switch c {
		case ',':
		case '}':
			return nil
		default:
			return s.syntax("want ',' or '}' after a member, got %q", c)
		}
	}
}

// array reads the elements of an array (its '[' not yet consumed),
// calling elem for each; elem must consume the element.
func (s *scanner) array(elem func() error) error {
	if err := s.expect('['); err != nil {
		return err
	}
	c, err := s.peek()
	if err != nil {
		return err
	}
	if c == ']' {
		s.next()
		return nil
	}
	for {
		if err := elem(); err != nil {
			return err
		}
		c, err := s.peek()
		if err != nil {
			return err
		}
		s.next()
		switch c {
		case ',':
		case ']':
			return nil
		default:
			return s.syntax("want ',' or ']' after an element, got %q", c)
		}
	}
}

// str reads the rest of a string whose opening quote is consumed, passing
// its unescaped bytes to out in pieces (of at most the read buffer's
// size); out must not keep the slice it is given.
func (s *scanner) str(out func([]byte) error) error {
	var buf [4 << 10]byte
	n := 0
	emit := func(b ...byte) error {
		if n+len(b) > len(buf) {
			if err := out(buf[:n]); err != nil {
				return err
			}
			n = 0
		}
		n += copy(buf[n:], b)
		return nil
	}
	for {
		// Pass plain runs on straight from the read buffer.
		if _, err := s.r.Peek(1); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		chunk, _ := s.r.Peek(s.r.Buffered())
		plain := 0
		for plain < len(chunk) && chunk[plain] != '"' && chunk[plain] != '\\' && chunk[plain] >= 0x20 {
			plain++
		}
		if plain > 0 {
			if n > 0 {
				if err := out(buf[:n]); err != nil {
					return err
				}
				n = 0
			}
			if err := out(chunk[:plain]); err != nil {
				return err
			}
			s.r.Discard(plain)
			s.off += int64(plain)
			continue
		}
		c, err := s.next()
		if err != nil {
			return err
		}
		switch {
		case c == '"':
			if n > 0 {
				return out(buf[:n])
			}
			return nil
		case c < 0x20:
			return s.syntax("control character %#x in a string", c)
		case c != '\\':
			if err := emit(c); err != nil {
				return err
			}
			continue
		}
		e, err := s.next()
		if err != nil {
			return err
		}
		var r rune
		switch e {
		case '"', '\\', '/':
			r = rune(e)
		case 'b':
			r = '\b'
		case 'f':
			r = '\f'
		case 'n':
			r = '\n'
		case 'r':
			r = '\r'
		case 't':
			r = '\t'
		case 'u':
			if r, err = s.hex4(); err != nil {
				return err
			}
			if utf16.IsSurrogate(r) {
				r = s.lowSurrogate(r)
			}
		default:
			return s.syntax("invalid escape \\%c", e)
		}
		var enc [utf8.UTFMax]byte
		if err := emit(enc[:utf8.EncodeRune(enc[:], r)]...); err != nil {
			return err
		}
	}
}

// lowSurrogate completes the pair started by hi when a \uDC00-\uDFFF
// escape follows; otherwise hi stands for U+FFFD, as encoding/json reads
// it.
func (s *scanner) lowSurrogate(hi rune) rune {
	if b, err := s.r.Peek(2); err != nil || b[0] != '\\' || b[1] != 'u' {
		return utf8.RuneError
	}
	b, err := s.r.Peek(6)
	if err != nil {
		return utf8.RuneError
	}
	lo, ok := parseHex4(b[2:6])
	if !ok {
		return utf8.RuneError
	}
	if r := utf16.DecodeRune(hi, lo); r != utf8.RuneError {
		s.r.Discard(6)
		s.off += 6
		return r
	}
	return utf8.RuneError
}

func (s *scanner) hex4() (rune, error) {
	var b [4]byte
	for i := range b {
		c, err := s.next()
		if err != nil {
			return 0, err
		}
		b[i] = c
	}
	r, ok := parseHex4(b[:])
	if !ok {
		return 0, s.syntax("invalid \\u escape %q", b[:])
	}
	return r, nil
}

func parseHex4(b []byte) (rune, bool) {
	var r rune
	for _, c := range b {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r*16 + rune(c)
	}
	return r, true
}

// literal consumes word (true, false or null).
func (s *scanner) literal(word string) error {
	for i := 0; i < len(word); i++ {
		c, err := s.next()
		if err != nil {
			return err
		}
		if c != word[i] {
			return s.syntax("invalid literal, want %q", word)
		}
	}
	return nil
}

var errTooDeep = errors.New("JSON nested too deeply")

// skip consumes one value of any kind without keeping it.
func (s *scanner) skip(depth int) error {
	if depth > maxDepth {
		return errTooDeep
	}
	c, err := s.peek()
	if err != nil {
		return err
	}
	switch {
	case c == '{':
		s.next()
		return s.object(func(string) error { return s.skip(depth + 1) })
	case c == '[':
		return s.array(func() error { return s.skip(depth + 1) })
	case c == '"':
		s.next()
		return s.str(func([]byte) error { return nil })
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	case c == '-' || ('0' <= c && c <= '9'):
		return s.number()
	}
	return s.syntax("unexpected %q", c)
}

// number consumes a number (RFC 8259 6).
func (s *scanner) number() error {
	n := 0
	for {
		c, err := s.r.ReadByte()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if !('0' <= c && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E') {
			s.r.UnreadByte()
			break
		}
		s.off++
		n++
		if n > 64 {
			return s.syntax("number longer than 64 characters")
		}
	}
	if n == 0 {
		return s.syntax("empty number")
	}
	return nil
}

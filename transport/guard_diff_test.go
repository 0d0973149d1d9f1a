package transport

import (
	"fmt"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// FuzzGuardAgreesWithTheOldOne feeds a stream, in reads of every size up
// to 64 bytes and whole, to the guard and to the old one, and wants the
// same answer to every read and the same state after it.
func FuzzGuardAgreesWithTheOldOne(f *testing.F) {
	for _, s := range smugglingSeeds {
		f.Add([]byte(s), uint8(255))
		f.Add([]byte(s), uint8(30))
	}
	for _, s := range []string{wrkRequest, browserRequest, chunkedHead + chunkedBody, lengthPost} {
		f.Add([]byte(s+s), uint8(255))
	}
	f.Fuzz(func(t *testing.T, stream []byte, limit uint8) {
		for size := 1; size <= len(stream)+1; size++ {
			if size > 64 && size < len(stream)+1 {
				continue
			}
			l := int(limit) + 1
			if limit >= 200 {
				l = 4096
			}
			guardsAgree(t, stream, size, l)
		}
	})
}

func guardsAgree(t *testing.T, stream []byte, size, limit int) {
	var acc, oldAcc []string
	g := &guard{cfg: &guardConfig{limit: limit, h2c: limit%2 == 0, log: hclog.NewNullLogger(), accepted: func(m, tg string) { acc = append(acc, m+" "+tg) }}}
	o := &oldGuard{cfg: &guardConfig{limit: limit, h2c: limit%2 == 0, log: hclog.NewNullLogger(), accepted: func(m, tg string) { oldAcc = append(oldAcc, m+" "+tg) }}}
	for off := 0; off < len(stream); off += size {
		p := stream[off:min(off+size, len(stream))]
		n, err := g.scan(p)
		on, oerr := o.scan(p)
		got := fmt.Sprintf("n=%d err=%v sticky=%v state=%d rem=%d size=%d heads=%d crlf=%d cr=%v line=%q big=%v acc=%q",
			n, err, g.err != nil, g.state, g.remaining, g.size, g.heads, g.crlf, g.sawCR, g.line, cap(g.line) > keepLine, acc)
		want := fmt.Sprintf("n=%d err=%v sticky=%v state=%d rem=%d size=%d heads=%d crlf=%d cr=%v line=%q big=%v acc=%q",
			on, oerr, o.err != nil, o.state, o.remaining, o.size, o.heads, o.crlf, o.sawCR, o.line, cap(o.line) > keepLine, oldAcc)
		if got != want {
			t.Fatalf("limit %d, reads of %d, read at %d:\nnew %s\nold %s", limit, size, off, got, want)
		}
		if err != nil || g.err != nil || n < len(p) {
			return
		}
	}
}

// TestGuardAgreesWithTheOldOneOnMutants runs guardsAgree over every seed
// with each byte in turn replaced by one of the bytes framing turns on, or
// dropped.
func TestGuardAgreesWithTheOldOneOnMutants(t *testing.T) {
	seeds := append([]string{wrkRequest, browserRequest, chunkedHead + chunkedBody, lengthPost,
		"GET http://a:1/x?y HTTP/1.1\r\nHost:  A:1 \r\n\r\n", "GET https://a#f HTTP/1.0\r\nhost: a\r\n\r\n",
		"OPTIONS * HTTP/1.1\r\nHost: a\r\nUpgrade: x\r\n\r\n", "CONNECT * HTTP/1.1\r\nUpgrade: x\r\n\r\nGET / HTTP/1.1\r\n\r\n"},
		smugglingSeeds...)
	for _, s := range seeds {
		for i := 0; i <= len(s); i++ {
			for _, c := range []string{"", "\r", "\n", " ", "\t", ":", "0", "a", "*", "/", "\r\n"} {
				if i == len(s) && c == "" {
					continue
				}
				m := []byte(s[:i] + c + s[min(i+1, len(s)):])
				for _, size := range []int{1, 2, 5, len(m) + 1} {
					for _, limit := range []int{4096, 40} {
						guardsAgree(t, m, size, limit)
					}
				}
			}
		}
	}
}

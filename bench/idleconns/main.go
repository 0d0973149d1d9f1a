// Command idleconns measures a server's memory per idle keep-alive client
// connection: it reads the server's RSS, opens -n connections to -addr
// (127.0.0.1 only), sends one request on each and reads the answer, holds
// them all open and idle, reads the RSS again, and prints the difference
// per connection. With -cookie N each request also carries a Cookie
// header of N bytes, as a browser's requests often do.
//
//	go run ./bench/idleconns -addr 127.0.0.1:8080 -pid $(pgrep -f 'roundhouse serve') -n 10000
//
// Raise the open-file limit first (ulimit -n 30000): each connection is a
// descriptor here and one (or two) in the server.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/roundhouse/roundhouse/internal/procstat"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "`address` of the server (loopback only)")
	pid := flag.Int("pid", 0, "the server's process id, whose RSS is read from /proc")
	n := flag.Int("n", 10000, "connections to hold")
	settle := flag.Duration("settle", 2*time.Second, "wait before reading the RSS again")
	cookie := flag.Int("cookie", 0, "size in `bytes` of a Cookie header sent with each request; 0: none")
	flag.Parse()
	host, _, err := net.SplitHostPort(*addr)
	if err != nil || (host != "127.0.0.1" && host != "::1") {
		log.Fatalf("-addr %s: want a loopback address", *addr)
	}
	if *pid <= 0 {
		log.Fatal("-pid: required")
	}
	var extra string
	if *cookie > 0 {
		extra = "Cookie: " + strings.Repeat("c", *cookie) + "\r\n"
	}
	before := rss(*pid)
	conns := make([]net.Conn, 0, *n)
	for i := range *n {
		c, err := net.Dial("tcp", *addr)
		if err != nil {
			log.Fatalf("connection %d: %v", i, err)
		}
		fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\n%s\r\n", *addr, extra)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			log.Fatalf("connection %d: %v", i, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		conns = append(conns, c)
	}
	time.Sleep(*settle) // let the server's buffers and GC settle
	after := rss(*pid)
	fmt.Printf("%d idle connections: RSS %.1f MiB before, %.1f MiB after: %.2f KiB per connection\n",
		*n, float64(before)/(1<<20), float64(after)/(1<<20), float64(after-before)/1024/float64(*n))
	for _, c := range conns {
		c.Close()
	}
}

// rss returns a process's resident set size in bytes.
func rss(pid int) int64 {
	n, err := procstat.RSS(pid)
	if err != nil {
		log.Fatal(err)
	}
	return n
}

package transport

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"
	"github.com/sourcegraph/conc"
)

// proxyProtocolBackend serves HTTP behind go-proxyproto's listener, which
// requires a PROXY header on every connection and makes its source the
// request's RemoteAddr. Each request (other than probes) must come from the
// client its X-Test-Client header names; probes are sent on the returned
// channel with the address the backend saw.
func proxyProtocolBackend(t *testing.T) (string, <-chan string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	probes := make(chan string, 16)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		if r.URL.Path == "/health" {
			select {
			case probes <- host:
			default:
			}
			return
		}
		if want := r.Header.Get("X-Test-Client"); host != want {
			t.Errorf("backend: request from client %s arrived with the PROXY address %s", want, host)
		}
		_, _ = io.WriteString(w, host)
	})}
	var wg conc.WaitGroup
	wg.Go(func() { _ = srv.Serve(&proxyproto.Listener{Listener: ln}) })
	t.Cleanup(func() { _ = srv.Close(); wg.Wait() })
	return "http://" + ln.Addr().String(), probes
}

// clientFrom is an HTTP client whose connections come from the loopback
// address src, with keep-alive, so its requests share connections.
func clientFrom(t *testing.T, src string) *http.Client {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}, Timeout: 10 * time.Second}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

func TestPROXYProtocolOut(t *testing.T) {
	for _, v := range []int{1, 2} {
		t.Run(fmt.Sprintf("with v%d two clients sharing the balancer are each named to the backend", v), func(t *testing.T) {
			backend, probes := proxyProtocolBackend(t)
			b := newBalancer(t, balancerOptions{sendProxy: v}, backend)
			if got := <-probes; got != "127.0.0.1" {
				t.Errorf("the health probe arrived as %q, want the balancer itself (a LOCAL or UNKNOWN header)", got)
			}
			var wg conc.WaitGroup
			for _, client := range []string{"127.0.0.2", "127.0.0.3"} {
				c := clientFrom(t, client)
				wg.Go(func() {
					for range 10 {
						ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
						req, _ := http.NewRequestWithContext(ctx, http.MethodGet, b.url+"/", nil)
						req.Header.Set("X-Test-Client", client)
						resp, err := c.Do(req)
						if err != nil {
							cancel()
							t.Errorf("client %s: %v", client, err)
							return
						}
						body, _ := io.ReadAll(resp.Body)
						resp.Body.Close()
						cancel()
						if resp.StatusCode != http.StatusOK || string(body) != client {
							t.Errorf("client %s: status %d, the backend saw %q", client, resp.StatusCode, body)
						}
					}
				})
			}
			wg.Wait()
			if strings.Contains(b.log.String(), "[ERROR]") {
				t.Errorf("errors logged:\n%s", b.log)
			}
		})
	}
}

func TestHeaderAddrs(t *testing.T) {
	tests := []struct {
		name, remote string
		local        net.Addr
		src, dst     string // "": no addresses (a LOCAL header)
	}{
		{"an IPv4 client and listener", "192.0.2.1:5555", &net.TCPAddr{IP: net.ParseIP("10.0.0.1"), Port: 80}, "192.0.2.1:5555", "10.0.0.1:80"},
		{"an IPv6 client", "[2001:db8::1]:5555", &net.TCPAddr{IP: net.ParseIP("2001:db8::2"), Port: 443}, "[2001:db8::1]:5555", "[2001:db8::2]:443"},
		{"an unknown local address gives none", "192.0.2.1:5555", nil, "", ""},
		{"an unparsable client gives none", "pipe", &net.TCPAddr{IP: net.ParseIP("10.0.0.1"), Port: 80}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, dst := headerAddrs(tt.remote, tt.local)
			str := func(a net.Addr) string {
				if a == nil {
					return ""
				}
				return a.String()
			}
			if str(src) != tt.src || str(dst) != tt.dst {
				t.Errorf("headerAddrs = %s, %s; want %s, %s", str(src), str(dst), tt.src, tt.dst)
			}
		})
	}
}

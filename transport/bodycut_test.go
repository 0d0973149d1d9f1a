package transport

import (
	"io"
	"testing"
)

// TestACutBodyIsTheBackendsFailure: a response whose body breaks off after
// its header went to the client is reported as a failed exchange, on both
// paths (ReverseProxy's for a request with a body, the lean one without),
// so that passive health and ejection count it; a whole one is not.
func TestACutBodyIsTheBackendsFailure(t *testing.T) {
	backend := reviewBackend(t)
	lb := newBalancer(t, balancerOptions{}, backend.URL)
	for i, m := range []string{"POST", "GET"} {
		lb.sendCut(t, m)
		if st := lb.settled(t)[0]; st.Failures != uint64(i+1) {
			t.Errorf("after the %s of a cut body: %d failures, want %d", m, st.Failures, i+1)
		}
	}
	resp, err := lb.client.Get(lb.url + "/whole")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if st := lb.settled(t)[0]; st.Failures != 2 {
		t.Errorf("after a whole answer: %d failures, want still 2", st.Failures)
	}
}

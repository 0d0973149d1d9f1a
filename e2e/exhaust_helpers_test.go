package e2e

import (
	"io"
	"net/http"
	"sync"
	"syscall"
	"testing"
	"time"
)

// exLong says whether the exhaustion tests' long variants run: -long, or
// $ROUNDHOUSE_EXHAUST_LONG set.
func exLong() bool { return longVariant("ROUNDHOUSE_EXHAUST_LONG") }

// exRaiseNoFile raises this process's soft RLIMIT_NOFILE to at least n,
// within the hard limit, and skips the test if the hard limit is lower.
func exRaiseNoFile(t *testing.T, n uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Max < n {
		t.Skipf("needs %d file descriptors; the hard limit (ulimit -Hn) is %d", n, lim.Max)
	}
	if lim.Cur < n {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			t.Fatal(err)
		}
	}
}

// exGet sends GET url with client and reports the status (0: no answer)
// and the error.
func exGet(client *http.Client, url string) (int, error) {
	resp, err := client.Get(url)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, err
}

// exHammer sends GET url with client from workers goroutines at once;
// worker w (from 0) sends its request n (from 0) while more(w, n) holds.
// It returns every request's duration and how many failed (no answer, or
// a status other than 200). Its goroutines have ended when it returns.
func exHammer(client *http.Client, url string, workers int, more func(w, n int) bool) (durations []time.Duration, failed int) {
	var mu sync.Mutex // guards durations, failed; test helpers may lock
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for n := 0; more(w, n); n++ {
				t0 := time.Now()
				status, err := exGet(client, url)
				d := time.Since(t0)
				mu.Lock()
				durations = append(durations, d)
				if status != http.StatusOK || err != nil {
					failed++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return durations, failed
}

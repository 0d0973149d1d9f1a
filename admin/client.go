package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// APIError is an answer from the admin API other than 200.
type APIError struct {
	Status  string // "401 Unauthorized"
	Message string // the API's error text; "" if it sent none
}

func (e *APIError) Error() string {
	if e.Message == "" {
		return e.Status
	}
	return e.Status + ": " + oneLine(e.Message, 200)
}

// FetchStatus asks the admin API at addr (host:port) for GET /status,
// sending token as a bearer token unless it is nil. In its answer the
// default pool's entry in Pools, if any, shares its Backends slice with
// the top level. An answer other than
// 200 is an *APIError; any other error means the API could not be asked
// or its answer not read. client nil: a client
// that ignores proxy environment variables.
func FetchStatus(ctx context.Context, client *http.Client, addr string, token []byte) (*StatusResponse, error) {
	if client == nil {
		client = &http.Client{Transport: &http.Transport{Proxy: nil}}
		defer client.CloseIdleConnections()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/status", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	if token != nil {
		req.Header.Set("Authorization", "Bearer "+string(token))
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		e := &APIError{Status: resp.Status}
		var b errorBody
		if json.Unmarshal(body, &b) == nil {
			e.Message = b.Error
		}
		return nil, e
	}
	var st StatusResponse
	if err := json.Unmarshal(body, &st); err != nil {
		return nil, fmt.Errorf("not a status answer: %w", err)
	}
	// The default pool's backends are the top level's, one slice, as the
	// server sent them.
	for i := range st.Pools {
		if st.Pools[i].Name == DefaultPool {
			st.Pools[i].Backends = st.Backends
		}
	}
	return &st, nil
}

// WriteTable writes st as an aligned table for a terminal, one backend a
// line, with probe times as ages relative to the snapshot's time. With
// the default pool alone the table is as it was before pools; otherwise
// its first column, POOL, names each backend's pool, the pools in st's
// order, and a pool without backends has a line saying so.
func WriteTable(w io.Writer, st *StatusResponse) error {
	pools := st.PoolList()
	total := 0
	for _, p := range pools {
		total += len(p.Backends)
	}
	onlyDefault := len(pools) == 1 && pools[0].Name == DefaultPool
	if total == 0 && (onlyDefault || len(pools) == 0) {
		_, err := fmt.Fprintln(w, "no backends")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	header := "ID\tURL\tSTATE\tWEIGHT\tIN-FLIGHT\tREQUESTS\tFAILURES\tLAST PROBE\tPROBE ERROR"
	if !onlyDefault {
		header = "POOL\t" + header
	}
	fmt.Fprintln(tw, header)
	for _, p := range pools {
		pool := ""
		if !onlyDefault {
			pool = oneLine(p.Name, 30) + "\t"
		}
		if len(p.Backends) == 0 {
			fmt.Fprintf(tw, "%s-\t(no backends)\t-\t-\t-\t-\t-\t-\t-\n", pool)
		}
		for _, b := range p.Backends {
			probe := age(b.LastProbe, st.Time)
			if !b.LastProbe.IsZero() {
				if b.LastProbeError != "" {
					probe = "failed " + probe
				} else {
					probe = "passed " + probe
				}
			}
			probeErr := "-"
			if b.LastProbeError != "" {
				probeErr = oneLine(b.LastProbeError, 80)
			}
			fmt.Fprintf(tw, "%s%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\n", pool,
				oneLine(b.ID, 20), oneLine(b.Name, 60), oneLine(b.State, 12), b.Weight,
				b.InFlight, b.Requests, b.Failures, probe, probeErr)
		}
	}
	return tw.Flush()
}

// age says how long before now t was, briefly; "-" for the zero time.
func age(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	switch {
	case d < time.Second:
		return "just now"
	case d < 90*time.Second:
		return strconv.Itoa(int(d.Round(time.Second)/time.Second)) + "s ago"
	case d < 90*time.Minute:
		return strconv.Itoa(int(d.Round(time.Minute)/time.Minute)) + "m ago"
	}
	return strconv.Itoa(int(d.Round(time.Hour)/time.Hour)) + "h ago"
}

// oneLine makes s safe for one table cell: no tabs, newlines or control
// characters, at most n runes.
func oneLine(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if r := []rune(s); len(r) > n {
		s = string(r[:n-1]) + "…"
	}
	return s
}

package acme

import (
	"net"
	"net/http"
)

// Redirect answers every request with a permanent redirect (308, so the
// method and body are kept) to the same host and path over https. tlsPort
// is the TLS listener's port, written into the URL unless it is 443.
func Redirect(tlsPort string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if host == "" {
			http.Error(w, "a Host header is needed to redirect to https", http.StatusBadRequest)
			return
		}
		if tlsPort != "" && tlsPort != "443" {
			host = net.JoinHostPort(host, tlsPort)
		} else if net.ParseIP(host) != nil && net.ParseIP(host).To4() == nil {
			host = "[" + host + "]"
		}
		http.Redirect(w, r, "https://"+host+r.URL.RequestURI(), http.StatusPermanentRedirect)
	})
}

// HTTPHandler answers the CA's HTTP-01 challenges for the managed names
// and passes every other request to next. A nil Manager passes everything.
func (m *Manager) HTTPHandler(next http.Handler) http.Handler {
	if m == nil {
		return next
	}
	return m.issuer.HTTPChallengeHandler(next)
}

package config

// checkHTTP3 refuses --http3 without a certificate to serve it with
// (files or ACME): QUIC always runs TLS 1.3, so there is no cleartext
// HTTP/3.
func checkHTTP3(s *Settings, report func(i int, msg string)) {
	if s.TLS.HTTP3 && s.TLS.Cert == "" && len(s.TLS.ACME.Domains) == 0 {
		report(rowByFlag["http3"], "HTTP/3 runs over TLS only: give --tls-cert and --tls-key, or --acme-domain")
	}
}

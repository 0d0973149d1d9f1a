package parse

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAdminAddrAllowsOnlyLoopbackWithoutAToken(t *testing.T) {
	tests := []struct {
		addr  string
		token bool
		ok    bool
	}{
		{"127.0.0.1:9090", false, true},
		{"127.0.0.2:9090", false, true},
		{"[::1]:9090", false, true},
		{"localhost:9090", false, true},
		{"0.0.0.0:9090", false, false},
		{":9090", false, false},
		{"[::]:9090", false, false},
		{"192.0.2.10:9090", false, false},
		{"admin.example:9090", false, false},
		{"0.0.0.0:9090", true, true},
		{":9090", true, true},
	}
	for _, tt := range tests {
		err := AdminAddr(tt.addr, tt.token)
		if (err == nil) != tt.ok {
			t.Errorf("AdminAddr(%q, token %v) = %v, want ok %v", tt.addr, tt.token, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrNotLoopback) {
			t.Errorf("AdminAddr(%q): %v, want ErrNotLoopback", tt.addr, err)
		}
	}
	if err := AdminAddr("127.0.0.1", false); err == nil {
		t.Error("an address without a port passed")
	}
}

func TestTokenFileTrimsAndRefusesShortOrSpacedTokens(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tok, err := TokenFile(write("good", "  0123456789abcdef\n"))
	if err != nil || string(tok) != "0123456789abcdef" {
		t.Errorf("TokenFile = %q, %v; want the trimmed token", tok, err)
	}
	for name, content := range map[string]string{"short": "0123456789abcde\n", "spaced": "0123456789 abcdef", "empty": "\n"} {
		_, err := TokenFile(write(name, content))
		if err == nil || strings.Contains(err.Error(), strings.TrimSpace(content)) && content != "\n" {
			t.Errorf("%s: TokenFile error %v, want a refusal that does not repeat the token", name, err)
		}
	}
	if _, err := TokenFile(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing file gave no error")
	}
}

package config

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the generated blocks of ../docs/configuration.md")

// referenceFile holds the reference tables, each between its markers.
const referenceFile = "../docs/configuration.md"

// TestReferenceTablesAreCurrent renders the flags and config-keys tables
// from the settings table and compares them with the blocks between the
// markers in docs/configuration.md; with -update it rewrites the blocks.
func TestReferenceTablesAreCurrent(t *testing.T) {
	flags, err := FlagsTable()
	if err != nil {
		t.Fatal(err)
	}
	blocks := map[string]string{"flags": flags, "config-keys": ConfigKeysTable()}
	doc, err := os.ReadFile(referenceFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"flags", "config-keys"} {
		begin := []byte(fmt.Sprintf("<!-- generated:%s -->\n", name))
		end := []byte(fmt.Sprintf("<!-- end generated:%s -->", name))
		i, j := bytes.Index(doc, begin), bytes.Index(doc, end)
		if i < 0 || j < i {
			t.Errorf("%s: no block between %q and %q", referenceFile, begin, end)
			continue
		}
		i += len(begin)
		if got := string(doc[i:j]); got != blocks[name] {
			if *update {
				doc = append(doc[:i:i], append([]byte(blocks[name]), doc[j:]...)...)
				continue
			}
			t.Errorf("%s: the %s table differs from the settings; run go test ./config -run TestReferenceTablesAreCurrent -update\ngot:\n%s\nwant:\n%s",
				referenceFile, name, got, blocks[name])
		}
	}
	if *update {
		if err := os.WriteFile(referenceFile, doc, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

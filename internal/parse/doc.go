// Package parse holds the pure parsers and checks of the values operators
// give Roundhouse: sizes, rates, trusted proxies, --discover URLs, the
// admin API's address and token file. Package config uses them to check
// settings before anything runs, and the code that runs (serve, the status
// command, discovery) calls them too: each parser has one name, here.
//
// It imports no package of ours, so that config can use it without
// importing the machinery. Nothing here starts a goroutine.
package parse

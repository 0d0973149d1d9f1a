// Package parse holds the pure parsers and checks of the values operators
// give Roundhouse: sizes, rates, trusted proxies, --discover URLs, the
// admin API's address and token file. Package config uses them to check
// settings before anything runs; the packages that run (transport, admin,
// discovery) keep their exported names for them as aliases.
//
// It imports no package of ours, so that config can use it without
// importing the machinery.
package parse

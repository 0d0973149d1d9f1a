// Package routing decides which route, and so which pool, serves a
// request. It is data and functions only: it starts no goroutine, holds no
// lock and imports nothing of Roundhouse's. The configuration fills in
// Routes, Compile turns them into an immutable Table, and the proxy asks
// the Table about each request. The configuration checks each route with
// the Check functions (CheckHosts, CheckPathPrefix, CheckMethods,
// CheckHeaders; Check does them all) and the order with Shadowed, so that
// validate reports mistakes before they go live.
//
// # Order
//
// Routes are tried in the order they are written, and the first that
// matches wins. A request no route matches gets 404 from the proxy. A
// route matches when every condition it states holds; a condition it does
// not state holds for every request, so a route with no conditions matches
// everything and belongs last. Shadowed finds a route that can never match
// because an earlier one matches everything it would.
//
// # The conditions
//
// hosts: the request's Host header without its port ("example.com:443" is
// "example.com", "[::1]:8080" is the address ::1), without one trailing dot
// ("example.com." is the same name as "example.com"), compared without
// regard to case (ASCII letters only: hosts on the wire are ASCII). An
// entry is an exact name, an IP address, or "*." and a suffix: the wildcard
// "*.example.com" covers "www.example.com" and "a.b.example.com" but never
// "example.com" itself, nor "badexample.com". IPv6 addresses are compared
// as addresses, so "[2001:DB8:0::1]" matches the entry "2001:db8::1".
//
// path_prefix: without a trailing slash, a prefix matches whole segments:
// "/api" matches "/api", "/api/" and "/api/users", but not "/apix". With a
// trailing slash it matches by bytes: "/static/" matches "/static/app.js"
// and not "/static". Case matters.
//
// methods: the request's method is one of those listed, exactly (methods
// are case-sensitive).
//
// headers: each listed header is present and has exactly the value given.
// A header sent on several lines counts as one value, its lines joined
// with ", ", because HTTP says the two forms mean the same (RFC 9110 §5.3).
//
// # Paths are matched as the backend will see them
//
// Before matching, the proxy cleans the path with CleanPath and forwards
// the cleaned path. Cleaning works on the path as it came on the wire
// (r.URL.EscapedPath()), not on the decoded r.URL.Path:
//
//   - Escapes of letters, digits and "-._~" are decoded, and other escapes
//     are written in upper case: "/%7Ebob" is "/~bob". Each path thus has one
//     spelling, and "/%61dmin" cannot pass for something other than "/admin".
//   - Runs of "/" become one, as nginx does by default, so "//admin" cannot
//     slip past a route for "/admin".
//   - Dot segments are removed (RFC 3986 §5.2.4): "/a/./b/../c" is "/a/c".
//     Because "%2e" is decoded first, "/public/%2e%2e/admin" is "/admin" too,
//     and matches the routes for "/admin", not those for "/public".
//   - A path whose ".." climbs above the root is an error: the proxy
//     answers 400 rather than guess.
//
// "%2F" is not decoded. It is a byte inside a segment, not a separator:
// "/files/a%2Fb" is one segment "a%2Fb" under "/files", and many
// applications give it that meaning (a file name with a slash, a package
// name "@scope/pkg"). Decoding it would change the path's structure: the
// route would be chosen for segments the client never sent, and a backend
// that keeps "%2F" as it is would get a different path from the one
// matched. So a route for "/a/b" does not match "/a%2Fb", and the backend
// gets exactly the bytes that were matched.
//
// # strip_prefix
//
// A route with StripPrefix forwards the path without its prefix (Strip):
// "/api/users" under "/api" or "/api/" goes out as "/users", and "/api"
// itself as "/". What was removed, "/api", goes to the backend in
// X-Forwarded-Prefix.
package routing

package actors

// Policy decides which backend serves the next request. The selector
// goroutine is its only caller, so an implementation keeps its state in plain
// fields: no locks, no shared random source.
//
// The selector may ask Choose several times before anyone takes the answer
// (it offers a pick in advance and recomputes it when health changes), so
// Choose must not change state; Taken records that a choice was handed out.
type Policy interface {
	// Choose returns the index of the backend to use, or -1 when no
	// eligible[i] is true. len(eligible) is the number of backends.
	Choose(eligible []bool) int
	// Taken records that the backend at index i was handed to a handler.
	Taken(i int)
}

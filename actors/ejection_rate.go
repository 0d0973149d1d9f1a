package actors

// failureWindow is one backend's last outcomes, for failure-rate
// ejection (Ejection.FailureRate): a ring of size bits, one per completed
// attempt, set for a gateway failure, and the count of set bits. The
// selector goroutine alone owns it, as the rest of backendState. The zero
// value is an empty window of size 0; add sizes it.
type failureWindow struct {
	bits  []uint64 // the ring; bit i is the i-th slot
	size  int      // slots in the ring
	next  int      // the slot the next outcome goes to
	n     int      // outcomes held, at most size
	fails int      // failures among them
}

// add records one outcome in a window of size slots, dropping the oldest
// once the window is full. A window of another size (the settings were
// reloaded) starts again empty at the new size.
func (w *failureWindow) add(failed bool, size int) {
	if w.size != size {
		*w = failureWindow{bits: make([]uint64, (size+63)/64), size: size}
	}
	word, bit := w.next/64, uint64(1)<<(w.next%64)
	if w.n == w.size {
		if w.bits[word]&bit != 0 {
			w.fails--
		}
	} else {
		w.n++
	}
	if failed {
		w.bits[word] |= bit
		w.fails++
	} else {
		w.bits[word] &^= bit
	}
	if w.next++; w.next == w.size {
		w.next = 0
	}
}

// full reports whether the window holds size outcomes: the minimum volume
// before its failure rate is judged.
func (w *failureWindow) full() bool { return w.size > 0 && w.n == w.size }

// reset empties the window, keeping its size and storage: the backend
// starts afresh (ejected, or its health changed).
func (w *failureWindow) reset() {
	clear(w.bits)
	w.next, w.n, w.fails = 0, 0, 0
}

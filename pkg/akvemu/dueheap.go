package akvemu

import "time"

// heapSlot is embedded by the items of a dueHeap: the item's index in it
// (-1 once popped), for heap.Fix and heap.Remove.
type heapSlot struct{ index int }

func (s *heapSlot) slot() *heapSlot { return s }

// dueItem is an item of a dueHeap.
type dueItem interface {
	slot() *heapSlot
	dueAt() time.Time
}

// dueHeap is a container/heap of items ordered by when they are due,
// earliest first (the retry queue of an event subscription, the expiry
// thresholds).
type dueHeap[T dueItem] []T

func (q dueHeap[T]) Len() int           { return len(q) }
func (q dueHeap[T]) Less(i, j int) bool { return q[i].dueAt().Before(q[j].dueAt()) }
func (q dueHeap[T]) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].slot().index, q[j].slot().index = i, j
}

// Push implements heap.Interface.
func (q *dueHeap[T]) Push(x any) {
	it := x.(T)
	it.slot().index = len(*q)
	*q = append(*q, it)
}

// Pop implements heap.Interface.
func (q *dueHeap[T]) Pop() any {
	old := *q
	it := old[len(old)-1]
	var zero T
	old[len(old)-1] = zero
	*q = old[:len(old)-1]
	it.slot().index = -1
	return it
}

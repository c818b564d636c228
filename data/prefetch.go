package data

// doubleBuffer is the engine behind Prefetcher and ViewPrefetcher: a
// background goroutine fills slot after slot (two of them) for steps
// start, start+1, ... one step ahead of the caller. Next and Close are for
// one goroutine (the training loop); neither allocates.
type doubleBuffer struct {
	free   chan int
	ready  chan int
	done   chan struct{}
	exited chan struct{}
	held   int // slot the caller holds, -1 none
	closed bool
}

// start launches the filler; fill(step, slot) writes step's data into slot.
func (d *doubleBuffer) start(step int, fill func(step, slot int)) {
	*d = doubleBuffer{free: make(chan int, 2), ready: make(chan int, 2),
		done: make(chan struct{}), exited: make(chan struct{}), held: -1}
	d.free <- 0
	d.free <- 1
	go d.run(step, fill)
}

func (d *doubleBuffer) run(step int, fill func(step, slot int)) {
	defer close(d.exited)
	for ; ; step++ {
		var slot int
		select {
		case slot = <-d.free:
		case <-d.done:
			return
		}
		fill(step, slot)
		select {
		case d.ready <- slot:
		case <-d.done:
			return
		}
	}
}

// next hands the previous slot back and returns the next filled one.
func (d *doubleBuffer) next(who string) int {
	if d.closed {
		panic("data: " + who + ".Next after Close")
	}
	if d.held >= 0 {
		d.free <- d.held
	}
	d.held = <-d.ready
	return d.held
}

// close stops the filler and waits for it to exit.
func (d *doubleBuffer) close() {
	if d.closed {
		return
	}
	d.closed = true
	close(d.done)
	<-d.exited
}

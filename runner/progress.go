package runner

import (
	"io"
	"math"
	"strconv"
	"time"
)

// redrawEvery limits how often the terminal progress bar is redrawn.
const redrawEvery = 100 * time.Millisecond

// barWidth is the number of cells in the progress bar.
const barWidth = 24

// progress reports a run as it goes: a one-line bar redrawn in place on a
// terminal, plain lines otherwise. It formats into a reused buffer and does
// not allocate per step.
type progress struct {
	w        io.Writer
	terminal bool
	total    int
	buf      []byte
	last     time.Time // last redraw of the bar
	onScreen bool      // a bar is drawn and its line not yet ended
	shown    int       // the step the bar shows
}

// tick is the state after one training step.
type tick struct {
	done   int     // completed steps
	epoch  float64 // done / steps per epoch
	loss   float64 // mean over the recent steps
	lr     float32
	sps    float64 // samples per second (recent)
	eta    float64 // seconds left, < 0 unknown
	logged bool    // a metrics line was written at this step
}

func newProgress(w io.Writer, terminal bool, total int) *progress {
	return &progress{w: w, terminal: terminal, total: total, buf: make([]byte, 0, 256)}
}

// text writes a line of its own (a header, for instance).
func (p *progress) text(s string) {
	p.clear()
	io.WriteString(p.w, s)
}

// step reports a completed step.
func (p *progress) step(now time.Time, t tick) {
	if !p.terminal {
		if t.logged {
			p.plain(t)
		}
		return
	}
	if t.done != p.total && p.onScreen && now.Sub(p.last) < redrawEvery {
		return
	}
	p.last = now
	p.bar(t)
}

// plain writes "step 500/3750  epoch 1.07  loss 0.4123  lr 0.00098  41203 samples/s".
func (p *progress) plain(t tick) {
	b := append(p.buf[:0], "step "...)
	b = strconv.AppendInt(b, int64(t.done), 10)
	b = append(b, '/')
	b = strconv.AppendInt(b, int64(p.total), 10)
	b = append(b, "  epoch "...)
	b = strconv.AppendFloat(b, t.epoch, 'f', 2, 64)
	b = append(b, "  loss "...)
	b = strconv.AppendFloat(b, t.loss, 'f', 4, 64)
	b = append(b, "  lr "...)
	b = strconv.AppendFloat(b, float64(t.lr), 'g', 3, 32)
	b = append(b, "  "...)
	b = appendInt(b, t.sps)
	b = append(b, " samples/s\n"...)
	p.flush(b)
}

// bar redraws "\r 500/3750 [#####.....] epoch 1.07  loss 0.4123  41203 samples/s  ETA 1:32".
func (p *progress) bar(t tick) {
	b := append(p.buf[:0], '\r')
	b = strconv.AppendInt(b, int64(t.done), 10)
	b = append(b, '/')
	b = strconv.AppendInt(b, int64(p.total), 10)
	b = append(b, " ["...)
	filled := 0
	if p.total > 0 {
		filled = t.done * barWidth / p.total
	}
	for i := range barWidth {
		if i < filled {
			b = append(b, '#')
		} else {
			b = append(b, '.')
		}
	}
	b = append(b, "]  epoch "...)
	b = strconv.AppendFloat(b, t.epoch, 'f', 2, 64)
	b = append(b, "  loss "...)
	b = strconv.AppendFloat(b, t.loss, 'f', 4, 64)
	b = append(b, "  "...)
	b = appendInt(b, t.sps)
	b = append(b, " samples/s  ETA "...)
	b = appendClock(b, t.eta)
	b = append(b, "\x1b[K"...) // clear the rest of the line
	p.onScreen, p.shown = true, t.done
	p.flush(b)
}

// eval writes "eval @ step 469: loss 0.3911  accuracy 86.12%".
func (p *progress) eval(step int, loss, acc float64) {
	if p.onScreen && p.shown == p.total {
		p.end() // keep the finished bar
	}
	p.clear()
	b := append(p.buf[:0], "eval @ step "...)
	b = strconv.AppendInt(b, int64(step), 10)
	b = append(b, ": loss "...)
	b = strconv.AppendFloat(b, loss, 'f', 4, 64)
	if !math.IsNaN(acc) { // NaN: the model has no accuracy
		b = append(b, "  accuracy "...)
		b = strconv.AppendFloat(b, 100*acc, 'f', 2, 64)
		b = append(b, '%')
	}
	b = append(b, '\n')
	p.flush(b)
}

// clear removes a bar from the screen so that a line can take its place.
func (p *progress) clear() {
	if p.onScreen {
		p.flush(append(p.buf[:0], "\r\x1b[K"...))
		p.onScreen = false
	}
}

// end finishes the bar's line.
func (p *progress) end() {
	if p.onScreen {
		p.flush(append(p.buf[:0], '\n'))
		p.onScreen = false
	}
}

func (p *progress) flush(b []byte) {
	p.buf = b
	p.w.Write(b)
}

// appendInt appends v rounded to an integer ("-" when not finite).
func appendInt(b []byte, v float64) []byte {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return append(b, '-')
	}
	return strconv.AppendInt(b, int64(math.Round(v)), 10)
}

// appendClock appends seconds as m:ss or h:mm:ss ("-:--" when unknown).
func appendClock(b []byte, secs float64) []byte {
	if secs < 0 || math.IsNaN(secs) || math.IsInf(secs, 0) {
		return append(b, "-:--"...)
	}
	s := int64(math.Round(secs))
	h, m := s/3600, s/60%60
	s %= 60
	if h > 0 {
		b = strconv.AppendInt(b, h, 10)
		b = append(b, ':')
		b = append2(b, m)
	} else {
		b = strconv.AppendInt(b, m, 10)
	}
	b = append(b, ':')
	return append2(b, s)
}

func append2(b []byte, v int64) []byte {
	if v < 10 {
		b = append(b, '0')
	}
	return strconv.AppendInt(b, v, 10)
}

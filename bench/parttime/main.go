// Command parttime keeps one core partly busy, to measure how the kernels
// take another program that now and then runs on one of the cores they
// use: it touches memory for -busy, sleeps for -idle, and repeats until
// killed. Pin it to a core and time a benchmark beside it:
//
//	taskset -c 1 go run ./bench/parttime & hog=$!
//	GOMAXPROCS=2 go run ./bench/sparse -threads 2 -only fused/2:4
//	kill $hog
//
// Static splits of work between workers wait for the slowed one; dynamic
// ones hand its share to the other.
package main

import (
	"flag"
	"runtime"
	"time"
)

func main() {
	busy := flag.Duration("busy", time.Millisecond, "time busy in each period")
	idle := flag.Duration("idle", 2*time.Millisecond, "time asleep in each period")
	mib := flag.Int("mib", 32, "MiB of memory it touches, a line at a time")
	flag.Parse()
	runtime.GOMAXPROCS(1)
	buf := make([]float32, *mib<<20/4)
	for {
		t := time.Now()
		for time.Since(t) < *busy {
			for i := 0; i < len(buf); i += 16 * 256 {
				buf[i]++
			}
		}
		time.Sleep(*idle)
	}
}

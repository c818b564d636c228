//go:build linux

package cuda

import (
	"os"
	"sync"
	"testing"

	"github.com/expc-dev/expc/backends/cuda/fakecuda"
	"github.com/expc-dev/expc/backends/cuda/ptxcheck"
)

// The fake driver and NVRTC (backends/cuda/fakecuda) are built once per test
// binary, into a directory TestMain removes.
var fake struct {
	once              sync.Once
	dir               string
	libcuda, libnvrtc string
	err               error
	dev               *device
}

func TestMain(m *testing.M) {
	code := m.Run()
	if fake.dir != "" {
		os.RemoveAll(fake.dir)
	}
	os.Exit(code)
}

// resetDevice forgets the process's device, so that the next New opens the
// libraries the environment names then. A forgotten device's goroutine
// stays parked; only tests do this.
func resetDevice() {
	theDevice, deviceErr, openOnce = nil, nil, sync.Once{}
}

// openFake opens the backend on the fake driver and NVRTC, and restores the
// device state (none opened) when the test ends, so tests that expect no
// GPU (TestOpenWithoutGPU) still see none. The environment is set only
// while New loads the libraries: it is read nowhere else, and the tests
// may then run cases in parallel.
func openFake(t *testing.T) *Backend {
	t.Helper()
	clang := ptxcheck.NeedClang(t, ptxcheck.Targets[0].Clang)
	fake.once.Do(func() {
		fake.dir, fake.err = os.MkdirTemp("", "expc-fakecuda")
		if fake.err == nil {
			fake.libcuda, fake.libnvrtc, fake.err = fakecuda.Build(clang, fake.dir)
		}
	})
	if fake.err != nil {
		t.Fatal(fake.err)
	}
	resetDevice()
	t.Cleanup(resetDevice)
	if fake.dev != nil { // the fake device (and its NVRTC cache) is opened once
		openOnce.Do(func() { theDevice = fake.dev })
		return &Backend{d: fake.dev}
	}
	restore := setenv(map[string]string{"EXPC_LIBCUDA": fake.libcuda, "EXPC_NVRTC": fake.libnvrtc})
	b, err := New()
	restore()
	if err != nil {
		t.Fatal(err)
	}
	fake.dev = b.d
	return b
}

func setenv(kv map[string]string) (restore func()) {
	old := map[string]*string{}
	for k, v := range kv {
		if o, ok := os.LookupEnv(k); ok {
			old[k] = &o
		} else {
			old[k] = nil
		}
		os.Setenv(k, v)
	}
	return func() {
		for k, o := range old {
			if o == nil {
				os.Unsetenv(k)
			} else {
				os.Setenv(k, *o)
			}
		}
	}
}

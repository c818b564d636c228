//go:build linux

package cuda

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/expc-dev/expc/backends/cpu"
	"github.com/expc-dev/expc/backends/cuda/codegen"
	"github.com/expc-dev/expc/backends/cuda/hostsim"
	"github.com/expc-dev/expc/backends/cuda/kerneltest"
	"github.com/expc-dev/expc/ir"
)

// fakeCases is the representative subset the fake driver's test runs (every
// case takes ~2 min on 2 cores, mostly clang; scripts/gpu-check.sh --fake
// runs them all): each case whose name starts with one of these.
var fakeCases = []string{
	"matmul ta=false tb=false", "matmul ta=true tb=true", "matmul_bias_act ", "reduce_sum axis 1", "reduce_sum all",
	"softmax_xent 128x10", "softmax_xent_grad in place", "count_correct", "lr_schedule cosine", "adamw", "sgd in place",
	"mask_update nm reselect", "masked_matmul forward", "masked_matmul nm 2:4 dw", "masked_matmul block 5x7 odd input grad",
	"masked_matmul csr bias gelu", "contrastive_xent_fused nt_xent", "moe_ffn_grad relu", "moe_route_grad topk_softmax",
	"attention_grad causal", "layer_norm_grad", "gather",
}

// TestFakeDriverRunsKernels runs kernel cases through the backend's real
// path — NVRTC, cuModuleLoadData, the arena, cuLaunchKernel with the
// prepared parameter blocks, the copies and the status word — on the fake
// driver, against the CPU backend on fresh random inputs, with the GPU
// check's own comparison (kernelTable).
func TestFakeDriverRunsKernels(t *testing.T) {
	gb := openFake(t)
	if !strings.Contains(gb.Device(), "fake CUDA driver") || !strings.Contains(gb.Device(), "sm_80") {
		t.Errorf("Device() = %q, want the fake driver's name and sm_80", gb.Device())
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("input seed %d", seed)
	var cases []kerneltest.Case
	for _, c := range kerneltest.Cases() {
		for _, p := range fakeCases {
			if strings.HasPrefix(c.Name, p) {
				cases = append(cases, c)
				break
			}
		}
	}
	if len(cases) < len(fakeCases) {
		t.Errorf("%d cases match the %d names in fakeCases: a case was renamed", len(cases), len(fakeCases))
	}
	var sb strings.Builder
	failed := kernelTable(&sb, cases, seed, cpu.New(1), gb, false)
	t.Logf("on %s:\n%s", gb.Device(), sb.String())
	if failed > 0 {
		t.Errorf("%d of %d cases failed", failed, len(cases))
	}
}

// TestFakeDriverStatusWord: a label out of range makes the loss kernel
// write the status word; Run reports it naming the kernel, clears it, and
// the next Run with good labels succeeds.
func TestFakeDriverStatusWord(t *testing.T) {
	gb := openFake(t)
	var c kerneltest.Case
	for _, k := range kerneltest.Cases() {
		if strings.HasPrefix(k.Name, "softmax_xent 128x10") {
			c = k
		}
	}
	plan, err := c.Plan("cuda")
	if err != nil {
		t.Fatal(err)
	}
	x, err := gb.Prepare(plan)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	c.FillInputs(1, x.F32, x.I32, plan)
	var labels []int32
	for _, in := range plan.Programs[0].Inputs {
		if plan.Buffers[in.Buffer].Type.DType == ir.I32 {
			labels = x.I32(in.Buffer)
		}
	}
	if labels == nil {
		t.Fatal("the case has no i32 input")
	}
	good := labels[3]
	labels[3] = 1000
	err = x.Run("train")
	if err == nil || !strings.Contains(err.Error(), "softmax_xent") {
		t.Fatalf("Run with label 1000 of 10 classes = %v, want an error naming the kernel", err)
	}
	t.Logf("bad label: %v", err)
	labels[3] = good
	if err := x.Run("train"); err != nil {
		t.Fatalf("Run after fixing the label: %v (the status word was not cleared)", err)
	}
}

// TestFakeNVRTCMatchesHostSource: the fake NVRTC's conversion (C++) is
// hostsim.HostSource's (Go): the library source it writes starts with
// exactly HostSource's output, followed only by the trampolines.
func TestFakeNVRTCMatchesHostSource(t *testing.T) {
	gb := openFake(t)
	for _, c := range kerneltest.Cases() {
		if c.Name != "contrastive_xent_fused nt_xent 200x40" && c.Name != "matmul ta=false tb=false" {
			continue
		}
		plan, err := c.Plan("cuda")
		if err != nil {
			t.Fatal(err)
		}
		u, err := codegen.Generate(plan)
		if err != nil {
			t.Fatal(err)
		}
		want, err := hostsim.HostSource(u.Source)
		if err != nil {
			t.Fatal(err)
		}
		image, err := gb.d.compile(c.Name+".cu", u.Source)
		if err != nil {
			t.Fatal(err)
		}
		lib, ok := strings.CutPrefix(strings.TrimRight(string(image), "\x00"), "expc-fakecuda-library:")
		if !ok {
			t.Fatalf("%s: image %q does not name a library", c.Name, image)
		}
		got, err := os.ReadFile(strings.TrimSuffix(lib, ".so") + ".cc")
		if err != nil {
			t.Fatal(err)
		}
		rest, ok := strings.CutPrefix(string(got), want)
		if !ok {
			t.Fatalf("%s: the fake NVRTC's host source differs from hostsim.HostSource", c.Name)
		}
		for _, e := range u.Entries { // the unit may define more kernels than it launches
			if !strings.Contains(rest, "extern \"C\" void ex_tramp_"+e+"(") {
				t.Errorf("%s: no trampoline for entry %s", c.Name, e)
			}
		}
	}
}

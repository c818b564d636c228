"""Turns bench/run.sh's raw outputs into one table (stdout, bench.md, bench.json).

    python3 bench/report.py machine RAW        print the machine header, write RAW/machine.json
    python3 bench/report.py table RAW OUT      print the table, write OUT/bench.md and OUT/bench.json

Standard library only. A measurement whose raw output is missing or broken
shows as "n/a" (its RAW/*.err says why); the table is still printed.
"""

import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys


def sh(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return ""


def machine(raw):
    lscpu = sh("lscpu")
    field = lambda k: next((l.split(":", 1)[1].strip() for l in lscpu.splitlines() if l.startswith(k + ":")), "?")
    flags = field("Flags").split()
    m = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "cpu": field("Model name"),
        "cores": field("CPU(s)"),
        "avx512": sorted(f for f in flags if f.startswith("avx512")),
        "mem": sh("sh", "-c", "free -g | awk '/Mem:/{print $2\" GiB\"}'"),
        "load_avg": open("/proc/loadavg").read().split()[:3],
        "go": sh("go", "version"),
        "kernel": platform.release(),
    }
    json.dump(m, open(os.path.join(raw, "machine.json"), "w"), indent=1)
    print(header(m))


def header(m):
    return "\n".join([
        f"expc CPU benchmark  {m['date']}",
        f"machine  {m['cpu']}, {m['cores']} cores, {m['mem']}, load average {' '.join(m['load_avg'])} at start",
        f"AVX-512  {' '.join(m['avx512']) or 'none'}",
        f"{m['go']}",
        "shared, noisy machine: compare ratios within this run, not absolute figures across runs",
    ])


def load_json(raw, name):
    """The JSON document in RAW/name, or its last line (a program may log
    before it); None if there is none."""
    try:
        with open(os.path.join(raw, name)) as f:
            text = f.read().strip()
    except OSError:
        return None
    for doc in (text, text.splitlines()[-1] if text else ""):
        try:
            return json.loads(doc)
        except ValueError:
            pass
    return None


def gemmbench(raw):
    """{n: (median GF/s, best GF/s)}, kernel name, from gemmbench's text
    tables (RAW/gemm_expc_<n>.txt, one size each)."""
    rows, kernel = {}, None
    for name in sorted(os.listdir(raw)):
        if not (name.startswith("gemm_expc") and name.endswith(".txt")):
            continue
        text = open(os.path.join(raw, name)).read()
        if k := re.search(r"kernel=(\S+)", text):
            kernel = k.group(1)
        for line in text.splitlines():
            f = line.split()
            if len(f) >= 4 and f[0].isdigit():
                rows[int(f[0])] = (float(f[2]), float(f[3]))
    return rows, kernel


def numpy_gemm(raw):
    """{n: row}, BLAS info, from RAW/gemm_numpy_<n>.json."""
    rows, blas = {}, {}
    for name in sorted(os.listdir(raw)):
        if name.startswith("gemm_numpy") and name.endswith(".json") and (d := load_json(raw, name)):
            blas = d.get("blas") or blas
            rows.update({r["n"]: r for r in d.get("rows", [])})
    return rows, blas


def series(raw, prefix):
    """samples_per_second of RAW/<prefix>1.json, <prefix>2.json, ..."""
    out = []
    for i in range(1, 1000):
        if not os.path.exists(os.path.join(raw, f"{prefix}{i}.json")):
            break
        if (d := load_json(raw, f"{prefix}{i}.json")) and d.get("samples_per_second"):
            out.append(d["samples_per_second"])
    return out


def fmt(v, kind):
    if v is None:
        return "n/a"
    if kind == "rate":
        return f"{v:,.0f}"
    if kind == "gf":
        return f"{v:.1f}"
    if kind == "acc":
        return f"{100 * v:.2f}%"
    if kind == "ms":
        return f"{v:.1f}"
    return str(v)


def ratio(a, b):
    return f"{a / b:.2f}x" if a is not None and b not in (None, 0) else "n/a"


def table(raw, out):
    m = load_json(raw, "machine.json") or {}
    rows = []  # (section, measurement, expc, peer, peer value, ratio, notes)
    data = {"machine": m, "gemm": [], "mlp": {}, "compile": []}

    # 1. GEMM
    ours, kernel = gemmbench(raw)
    theirs, blas = numpy_gemm(raw)
    if ours or theirs:
        core = blas.get("corename") or "?"
        for n in sorted(set(ours) | set(theirs)):
            e = ours.get(n, (None, None))
            p = theirs.get(n, {})
            rows.append(("GEMM fp32, GFLOP/s, 2 threads", f"n={n}", fmt(e[0], "gf") + (f" ({kernel})" if kernel else ""),
                         f"numpy/OpenBLAS ({core})", fmt(p.get("median_gflops"), "gf"),
                         ratio(e[0], p.get("median_gflops")),
                         f"best: expc {fmt(e[1], 'gf')}, OpenBLAS {fmt(p.get('best_gflops'), 'gf')}"))
            data["gemm"].append({"n": n, "expc_gflops": e[0], "expc_best_gflops": e[1], "expc_kernel": kernel,
                                 "openblas_gflops": p.get("median_gflops"), "openblas_best_gflops": p.get("best_gflops"),
                                 "openblas_core": core})
        data["gemm_blas"] = blas

    # 2. MLP
    rates = series(raw, "mlp_expc_rate_")
    trates = series(raw, "mlp_torch_rate_")
    torch = load_json(raw, "mlp_torch_rate_1.json") or load_json(raw, "mlp_torch_acc.json") or {}
    gor = load_json(raw, "mlp_gorgonia.json") or {}
    if rates or trates or torch or gor or os.path.exists(os.path.join(raw, "mlp_expc_acc_1.json")):
        expc_rate = statistics.median(rates) if rates else None
        t_rate = statistics.median(trates) if trates else None
        g_rate = gor.get("samples_per_second")
        tcore = (torch.get("blas") or {}).get("corename") or "?"
        rows.append(("MLP 784-512-256-10 train, samples/s", "batch 256", fmt(expc_rate, "rate"),
                     f"PyTorch {torch.get('torch', '?')} (passive OMP, OpenBLAS {tcore})", fmt(t_rate, "rate"),
                     ratio(expc_rate, t_rate),
                     f"median of {len(rates)} interleaved rounds: expc one epoch each "
                     f"({'/'.join(fmt(r, 'rate') for r in rates)}), PyTorch one warm epoch each "
                     f"({'/'.join(fmt(r, 'rate') for r in trates)})"))
        bps = gor.get("bytes_per_step")
        rows.append(("MLP 784-512-256-10 train, samples/s", "batch 256", fmt(expc_rate, "rate"),
                     f"gorgonia {gor.get('gorgonia', '?')}", fmt(g_rate, "rate"), ratio(expc_rate, g_rate),
                     (f"gorgonia allocates {bps / 2**20:.1f} MiB/step ({gor.get('allocs_per_step', 0):,.0f} allocs); "
                      if bps else "") + "median of 50-step chunks"))
        eaccs = [a for seed in range(1, 100)
                 if (a := ((load_json(raw, f"mlp_expc_acc_{seed}.json") or {}).get("final") or {}).get("eval_accuracy")) is not None]
        taccs = (load_json(raw, "mlp_torch_acc.json") or {}).get("test_accuracies") or []
        if eaccs or taccs:
            ea = statistics.mean(eaccs) if eaccs else None
            ta = statistics.mean(taccs) if taccs else None
            delta = f"{100 * (ea - ta):+.2f} pt" if ea is not None and ta is not None else "n/a"
            rows.append(("MLP test accuracy after 3 epochs", "10k test set, mean of seeds", fmt(ea, "acc"),
                         "PyTorch", fmt(ta, "acc"), delta,
                         f"difference in points; seeds 1/2/3: expc {'/'.join(fmt(a, 'acc') for a in eaccs)}, "
                         f"PyTorch {'/'.join(fmt(a, 'acc') for a in taccs)}"))
        if gor.get("test_accuracy"):
            rows.append(("MLP test accuracy after 3 epochs", "10k test set, seed 1", "-", "gorgonia",
                         fmt(gor["test_accuracy"], "acc"), "-", "bench/gorgonia-mlp -accuracy-epochs 3"))
        data["mlp"] = {"expc_rates": rates, "expc_samples_per_second": expc_rate,
                       "torch_rates": trates, "torch_samples_per_second": t_rate,
                       "expc_accuracies": eaccs, "torch_accuracies": taccs, "torch": torch, "gorgonia": gor}

    # 3. compile time
    try:
        lines = [l.split("\t") for l in open(os.path.join(raw, "compile.tsv")).read().splitlines() if l]
    except OSError:
        lines = []
    by, inproc = {}, {}
    for f in lines:
        by.setdefault(f[0], []).append(int(f[1]) / 1e3)
        if len(f) > 2 and f[2]:
            inproc.setdefault(f[0], []).append(float(f[2]) * 1e3)
    for name, ts in by.items():
        ms = statistics.median(ts)
        layers = int(name.split("-")[1]) if name.startswith("deep-") else 3
        ip = statistics.median(inproc[name]) if inproc.get(name) else None
        note = f"{ms / layers:.2f} ms/layer"
        what = "bench/specs/mlp256.cue (3 layers)" if name == "mlp256" else f"{layers} hidden layers of 64"
        if ip is not None:
            note += f"; in-process build {ip:.1f} ms ({ip / layers:.2f} ms/layer)"
        rows.append(("`expc build` wall time, ms (median of 5)", what, fmt(ms, "ms"), "-", "-", "-", note))
        data["compile"].append({"spec": name, "layers": layers, "median_ms": ms, "runs_ms": ts,
                                "inprocess_median_ms": ip})

    deep = [(c["layers"], c["median_ms"]) for c in data["compile"] if c["spec"].startswith("deep-")]
    if len(deep) >= 2:
        # Least-squares line through the deep MLPs: the slope is the cost of a
        # layer, the intercept the fixed cost (process start, CUE, data meta).
        mx, my = statistics.mean(x for x, _ in deep), statistics.mean(y for _, y in deep)
        slope = sum((x - mx) * (y - my) for x, y in deep) / sum((x - mx) ** 2 for x, _ in deep)
        fit = f"linear fit over {deep[0][0]}..{deep[-1][0]} layers: {my - slope * mx:.0f} ms + {slope:.2f} ms/layer"
        rows.append(("`expc build` wall time, ms (median of 5)", "fit", "-", "-", "-", "-", fit))
        data["compile_fit"] = {"intercept_ms": my - slope * mx, "ms_per_layer": slope}

    try:
        data["total_seconds"] = int(open(os.path.join(raw, "elapsed.txt")).read().split("=")[1])
    except (OSError, ValueError, IndexError):
        pass

    cols = ("benchmark", "case", "expc", "peer", "peer value", "expc/peer", "notes")
    md = ["| " + " | ".join(cols) + " |", "|" + "|".join(["---", "---", "---:", "---", "---:", "---:", "---"]) + "|"]
    md += ["| " + " | ".join(r) + " |" for r in rows]
    text = "\n".join(["```", header(m), "```", "", *md]) if m else "\n".join(md)
    data["load_avg_end"] = open("/proc/loadavg").read().split()[:3]
    if "total_seconds" in data:
        text += f"\n\nbench/run.sh took {data['total_seconds']} s; load average at the end {' '.join(data['load_avg_end'])}."
    print()
    print(text)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "bench.md"), "w") as f:
        f.write(text + "\n")
    data["table"] = [dict(zip(cols, r)) for r in rows]
    with open(os.path.join(out, "bench.json"), "w") as f:
        json.dump(data, f, indent=1)
    print(f"\nwritten: {os.path.join(out, 'bench.md')}, {os.path.join(out, 'bench.json')}", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "machine":
        machine(sys.argv[2])
    elif len(sys.argv) >= 4 and sys.argv[1] == "table":
        table(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)

"""Which BLAS this Python process loaded, and which OpenBLAS kernel it picked.

This is what threadpoolctl does (it is not packaged on this machine): find
the BLAS shared object mapped into the process and ask OpenBLAS for its core
name. Call after numpy/torch has run a matrix product, so the library is
loaded and initialised.
"""

import ctypes


def describe():
    libs = []
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 6 and ("blas" in parts[5] or "lapack" in parts[5]):
                if parts[5] not in libs:
                    libs.append(parts[5])
    info = {"libs": libs, "corename": None, "config": None, "threads": None}
    for path in libs:
        try:
            lib = ctypes.CDLL(path)
            lib.openblas_get_corename.restype = ctypes.c_char_p
            lib.openblas_get_config.restype = ctypes.c_char_p
        except (OSError, AttributeError):
            continue
        info["corename"] = lib.openblas_get_corename().decode()
        info["config"] = lib.openblas_get_config().decode().strip()
        info["threads"] = lib.openblas_get_num_threads()
        info["lib"] = path
        break
    return info

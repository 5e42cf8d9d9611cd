"""Independent check of a `tglml ph` output file with h5py and numpy.

Usage: check_ph.py OUT.h5 FIXTURE.h5

FIXTURE is one of tests/fixtures/ph/*.h5 (input /x and ripser.py's diagrams
/ripser/dim{k}). Checks: the layout of docs/hdf5.md; the diagrams equal
ripser.py's within 1e-6 relative; every critical edge's distance (float64
from /x, rounded to float32) equals its bar's birth or death (within 1e-6
relative: numpy may sum the squares in another order than TGLML).
Prints one line starting with "ok".
"""
import sys

import h5py
import numpy as np


def close(d, value):
    return abs(float(np.float32(d)) - value) <= 1e-6 * value


def main(out, fixture):
    with h5py.File(fixture, "r") as f:
        x = f["x"][()]
        maxdim = int(f.attrs["maxdim"])
        ref = [f[f"ripser/dim{k}"][()] for k in range(maxdim + 1)]
    with h5py.File(out, "r") as g:
        assert int(g.attrs["maxdim"]) == maxdim
        assert int(g.attrs["n_points"]) == x.shape[0]
        for key in ("tglml_version", "git_revision", "config", "n_ranks", "threshold"):
            assert key in g.attrs, key
        dg = [g[f"diagrams/dim{k}"][()] for k in range(maxdim + 1)]
        ce = [g[f"critical_edges/dim{k}"][()] for k in range(maxdim + 1)]
    total = 0
    for k in range(maxdim + 1):
        a, b = dg[k], ref[k]
        assert a.dtype == np.float64 and ce[k].dtype == np.int64
        assert a.shape == b.shape, (k, a.shape, b.shape)
        order = np.lexsort((a[:, 1], a[:, 0]))
        assert (order == np.arange(len(a))).all(), "rows sorted by (birth, death)"
        fin = np.isfinite(b)
        assert (np.isfinite(a) == fin).all()
        assert np.allclose(a[fin], b[fin], rtol=1e-6, atol=0), k
        for row, (birth, death) in zip(ce[k], a):
            i, j, p, q = row
            if k == 0:
                assert i == -1 and j == -1
            else:
                assert i > j >= 0
                assert close(np.linalg.norm(x[i] - x[j]), birth), (k, row, birth)
            if np.isinf(death):
                assert p == -1 and q == -1
            else:
                assert p > q >= 0
                assert close(np.linalg.norm(x[p] - x[q]), death), (k, row, death)
        total += len(a)
    print(f"ok: {total} bars in H0..H{maxdim} equal ripser.py's; critical edges reproduce their values")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

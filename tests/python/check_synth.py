"""Independent read-back of a `tglml data synth` file with h5py and numpy.

Usage: check_synth.py FILE.h5 KIND

Checks the layout of docs/hdf5.md ("Sample matrix") and the geometry of the
points from the parameters recorded in the file's own `config` attribute, so
that neither the reader nor the checks share code with TGLML. Prints one line
starting with "ok" on success; raises (non-zero exit) otherwise.
"""
import sys
import tomllib

import h5py
import numpy as np


def main(path, kind):
    with h5py.File(path, "r") as f:
        attrs = dict(f.attrs)
        for key in ("tglml_version", "git_revision", "command", "config", "n_ranks", "threads_per_rank"):
            assert key in attrs, f"missing root attribute {key}"
        assert attrs["command"] == "data synth", attrs["command"]
        cfg = tomllib.loads(attrs["config"])
        s = cfg["synth"]
        assert s["kind"] == kind, (s["kind"], kind)
        x = f["x"][()]
        assert x.dtype == np.float64, x.dtype
        y = f["y"][()] if "y" in f else None
        params = f["params"][()] if "params" in f else None
        names = [str(n) for n in f["params"].attrs["names"]] if params is not None else []
        centers = f["centers"][()] if "centers" in f else None

    noise = s["noise"]
    tol = 1e-9 if noise == 0 else None
    n = x.shape[0]
    if kind == "torus":
        R, r = s["torus"]["major_radius"], s["torus"]["minor_radius"]
        assert x.shape == (s["n"], 3) and names == ["theta", "phi"] and y is None
        th, ph = params[:, 0], params[:, 1]
        ref = np.stack([(R + r * np.cos(ph)) * np.cos(th), (R + r * np.cos(ph)) * np.sin(th), r * np.sin(ph)], 1)
    elif kind == "circles":
        c = s["circles"]
        assert x.shape == (s["n"], 2) and names == ["angle"] and y.dtype == np.int64
        assert sorted(set(y.tolist())) == list(range(c["count"]))
        a = params[:, 0]
        ref = np.stack([y * c["spacing"] + c["radius"] * np.cos(a), c["radius"] * np.sin(a)], 1)
    elif kind == "swiss-roll":
        assert x.shape == (s["n"], 3) and names == ["t", "height"]
        t, h = params[:, 0], params[:, 1]
        ref = np.stack([t * np.cos(t), h, t * np.sin(t)], 1)
    elif kind == "sphere":
        d = s["sphere"]["dim"] + 1
        assert x.shape == (s["n"], d) and params is None
        norms = np.linalg.norm(x, axis=1)
        ref = None
        if tol is not None:
            assert np.allclose(norms, s["sphere"]["radius"], rtol=0, atol=tol)
    elif kind == "spheres":
        p = s["spheres"]
        d = p["dim"] + 1
        assert x.shape == (p["count"] * p["points_per_sphere"] + p["outer_points"], d)
        assert centers.shape == (p["count"] + 1, d) and not centers[-1].any()
        counts = np.bincount(y)
        assert counts[:-1].tolist() == [p["points_per_sphere"]] * p["count"] and counts[-1] == p["outer_points"]
        radii = np.where(y == p["count"], p["outer_radius"], p["radius"])
        norms = np.linalg.norm(x - centers[y], axis=1)
        ref = None
        if tol is not None:
            assert np.allclose(norms, radii, rtol=0, atol=tol)
    else:
        raise SystemExit(f"unknown kind {kind}")

    if ref is not None:
        err = np.abs(x - ref).max()
        if tol is not None:
            assert err < tol, f"points off their surface by {err}"
        else:
            # Noise of standard deviation sigma: the deviations' std is close.
            sd = (x - ref).std()
            assert abs(sd - noise) < 0.1 * noise, (sd, noise)
    print(f"ok {kind}: {n} points in R^{x.shape[1]}, h5py {h5py.__version__}, numpy {np.__version__}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

#!/usr/bin/env python3
"""Are two HDF5 files the same? Read with h5py (an independent reader).

Usage: h5same.py A.h5 B.h5 [--ignore NAME ...]

The files must hold the same groups and datasets, every dataset with the same
dtype, shape and bytes (so NaNs compare equal and -0.0 differs from 0.0), and
the same attributes with the same values. NAME (repeatable) leaves out an
attribute or dataset by its last path component, for values that
legitimately differ between two runs of the same computation: the rank
count, threads, wall-clock times (`n_ranks`, `threads_per_rank`,
`step_seconds`). Prints every difference; exits 0 when there is none, 1
otherwise, 2 on bad usage.
"""
import argparse
import sys

import h5py
import numpy as np


def attrs(obj, ignore):
    out = {}
    for k in obj.attrs:
        if k in ignore:
            continue
        v = obj.attrs[k]
        out[k] = v.tobytes() if isinstance(v, np.ndarray) else v
    return out


def tree(f, ignore):
    items = {"/": ("group", attrs(f, ignore))}

    def visit(name, obj):
        if name.rsplit("/", 1)[-1] in ignore:
            return
        if isinstance(obj, h5py.Dataset):
            data = obj[()]
            raw = data.tobytes() if isinstance(data, np.ndarray) else repr(data).encode()
            items["/" + name] = ("dataset", str(obj.dtype), obj.shape, raw, attrs(obj, ignore))
        else:
            items["/" + name] = ("group", attrs(obj, ignore))

    f.visititems(visit)
    return items


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--ignore", action="append", default=[])
    args = ap.parse_args()
    ignore = set(args.ignore)
    with h5py.File(args.a, "r") as fa, h5py.File(args.b, "r") as fb:
        ta, tb = tree(fa, ignore), tree(fb, ignore)
    problems = []
    for name in sorted(set(ta) | set(tb)):
        if name not in ta:
            problems.append(f"{name}: only in {args.b}")
        elif name not in tb:
            problems.append(f"{name}: only in {args.a}")
        elif ta[name] != tb[name]:
            x, y = ta[name], tb[name]
            if x[0] == "dataset" and y[0] == "dataset" and x[1:3] != y[1:3]:
                problems.append(f"{name}: dtype/shape {x[1]} {x[2]} vs {y[1]} {y[2]}")
            elif x[0] == "dataset" and y[0] == "dataset" and x[3] != y[3]:
                problems.append(f"{name}: values differ")
            else:
                problems.append(f"{name}: attributes differ: {x[-1]} vs {y[-1]}")
    for p in problems:
        print(p)
    if problems:
        print(f"{args.a} and {args.b} differ in {len(problems)} objects")
        return 1
    print(f"{args.a} and {args.b}: same ({len(ta)} objects; ignored: {', '.join(sorted(ignore)) or 'nothing'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

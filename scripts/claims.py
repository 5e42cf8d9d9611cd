#!/usr/bin/env python3
"""The tables of docs/claims.md from the reports of `make claims`.

Usage: python3 scripts/claims.py [LABEL=REPORT_DIR[:MODEL] ...] > docs/claims-tables.md

Reads comparisons.csv (each setting against the same setting with
train.topo.gamma = 0: Welch's t and a verdict at the 5% level, written by
`tglml report --baseline`) of each report folder (default: the three of
`make claims` under docs/reports/), and writes, per
claim of the seed, a table of every measure that bears on it, per data set
and model, with the claim's verdict for that model under one fixed rule:

- held: at least one of the claim's measures is significantly better with
  the loss and none is significantly worse;
- did not hold: at least one is significantly worse and none better;
- mixed: some better, some worse;
- inconclusive: none differs significantly (3 seeds: only large effects
  can).

Stability across seeds is judged by the ratio of the standard deviations
over seeds (with / without the loss) with the two-sided 5% F test for 3
against 3 seeds (F(2, 2): the ratio of variances beyond 39.0 or below
1/39.0). Stability across hyperparameters: a report folder of a sweep over
several γ (docs/reports/claims-torus-gamma) gives each γ's verdicts; the
claim holds where the verdicts agree in sign over the γ values.
Standard library only.
"""
import csv
import sys
from pathlib import Path

CLAIMS = [
    ("Samples: better FID, IS, precision and recall",
     ["fid", "is", "precision", "recall", "coverage"]),
    ("Topology of the samples: nearer the data's diagrams",
     ["w_h0", "w_h1", "bottleneck_h0", "bottleneck_h1", "betti_h0", "betti_h1", "topo_acc_h1",
      "cubical_tv_b0", "cubical_tv_b1"]),
    ("Topology of the latent space: neighbourhoods and densities of the data kept",
     ["kl_0.1", "trustworthiness", "continuity", "mrre_zx", "stress"]),
    ("Interpolation: smoother, more realistic paths, topology kept along them",
     ["path_curvature", "path_step_cv", "path_realism", "path_betti_changes"]),
    ("Extrapolation: inputs beyond the training distribution (rotated, low-contrast, blurred images) reconstructed as well",
     ["rotation_rise", "contrast_rise", "blur_rise"]),
    ("Robustness: attacks and noise move the codes and reconstructions less",
     ["fgsm_rise", "pgd_rise", "pgd_latent", "noise_rise"]),
]
F_CRIT = 39.0  # F(2, 2) 0.975 quantile: 3 seeds against 3.


def model_of(setting, default):
    for part in setting.split(", "):
        if part.startswith("model.kind"):
            return part.split("=", 1)[1].strip().strip('"')
    return default


def gamma_of(setting):
    for part in setting.split(", "):
        if part.startswith("train.topo.gamma"):
            return part.split("=", 1)[1].strip()
    return "?"


def verdict(vs):
    b, w = "better" in vs, "worse" in vs
    if b and w:
        return "mixed"
    if b:
        return "**held**"
    if w:
        return "**did not hold**"
    return "inconclusive"


def main(dirs):
    """dirs: LABEL=DIR[:MODEL] (MODEL names the one model of a report whose
    settings differ only in γ)."""
    out = ["# The tables of docs/claims.md",
           "",
           "Written by scripts/claims.py from the comparisons.csv of each report "
           "(`make claims`); a rerun replaces this file. Each row: one measure, the "
           "mean ± sample std over 3 seeds with γ = 0 and with the loss, their "
           "difference, Welch's t and the verdict at the two-sided 5% level."]
    rows = {}
    models = {}
    for spec in dirs:
        label, rest = spec.split("=", 1)
        d, _, model = rest.partition(":")
        rows[label] = list(csv.DictReader(open(Path(d) / "comparisons.csv")))
        models[label] = model or "?"
    verdicts = []
    for title, measures in CLAIMS:
        out.append(f"\n### {title}\n")
        out.append("| data | model (γ) | measure | γ = 0 | with the loss | difference | Welch t | verdict |")
        out.append("| --- | --- | --- | --- | --- | --- | --- | --- |")
        per_model = {}
        for data, comp in rows.items():
            for c in comp:
                if c["measure"] not in measures:
                    continue
                m = model_of(c["setting"], models[data])
                per_model.setdefault((data, m, gamma_of(c["setting"])), []).append(c["verdict"])
                out.append(
                    f"| {data} | {m} ({gamma_of(c['setting'])}) | {c['measure']} | "
                    f"{float(c['baseline_mean']):.4g} ± {float(c['baseline_std']):.2g} | "
                    f"{float(c['mean']):.4g} ± {float(c['std']):.2g} | {float(c['difference']):+.3g} | "
                    f"{float(c['welch_t']):.2f} | {c['verdict']} |")
        if not per_model:
            out.append("| – | – | not measured | | | | | |")
        out.append("")
        for (data, m, g), vs in sorted(per_model.items(), key=lambda kv: (kv[0][0], kv[0][1], float(kv[0][2]))):
            v = verdict(vs)
            verdicts.append((title.split(":")[0], data, f"{m} (γ = {g})", v, vs.count("better"),
                             vs.count("worse"), len(vs)))
            out.append(f"- {data}, {m} (γ = {g}): {v} ({vs.count('better')} better, {vs.count('worse')} worse, "
                       f"{vs.count('inconclusive')} inconclusive of {len(vs)})")
    # Stability across seeds: the std ratio of every measure, F test.
    out.append("\n### Stability across seeds: smaller spread over seeds with the loss\n")
    out.append("| data | model | measures | std smaller with the loss | F test: smaller | F test: larger | verdict |")
    out.append("| --- | --- | --- | --- | --- | --- | --- |")
    for data, comp in rows.items():
        by_model = {}
        for c in comp:
            s0, s1 = float(c["baseline_std"]), float(c["std"])
            if int(c["n"]) < 2 or int(c["baseline_n"]) < 2 or (s0 == 0 and s1 == 0):
                continue
            by_model.setdefault(model_of(c["setting"], models[data]) + " (γ = " + gamma_of(c["setting"]) + ")", []).append((c["measure"], s0, s1))
        for m, items in sorted(by_model.items()):
            smaller = sum(s1 < s0 for _, s0, s1 in items)
            f_small = [k for k, s0, s1 in items if s0 > 0 and (s1 / s0) ** 2 < 1 / F_CRIT]
            f_large = [k for k, s0, s1 in items if s0 == 0 or (s1 / s0) ** 2 > F_CRIT]
            v = verdict((["better"] if f_small else []) + (["worse"] if f_large else []))
            verdicts.append(("Stability across seeds", data, m, v, len(f_small), len(f_large), len(items)))
            out.append(f"| {data} | {m} | {len(items)} | {smaller} | {', '.join(f_small) or '–'} | "
                       f"{', '.join(f_large) or '–'} | {v} |")
    out.append("\n### Summary of verdicts\n")
    out.append("| claim | data | model | verdict | better | worse | measures |")
    out.append("| --- | --- | --- | --- | --- | --- | --- |")
    for claim, data, m, v, b, w, n in verdicts:
        out.append(f"| {claim} | {data} | {m} | {v} | {b} | {w} | {n} |")
    print("\n".join(out))


if __name__ == "__main__":
    main(sys.argv[1:] or ["torus=docs/reports/claims-torus", "Fashion-MNIST=docs/reports/claims-fashion",
                          "torus, γ sweep=docs/reports/claims-torus-gamma:vae"])

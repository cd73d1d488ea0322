"""The PNG figures of ``spikeforge bench`` (matplotlib, Agg): one per section present in the report.

Every figure carries the machine and tool versions as a footer and in its PNG ``Description``
text chunk.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["write_figures"]


def _figure(ncols: int, title: str, width: float = 5.2):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, 4.2), squeeze=False)
    fig.suptitle(title, fontsize=11)
    return fig, list(axes[0])


def _save(fig, path: Path, foot: str) -> str:
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter

    for ax in fig.axes:   # log axes: ticks at 1, 2, 5 x 10^k as plain numbers (unless placed by hand)
        for axis in (ax.xaxis, ax.yaxis):
            if axis.get_scale() != "log":
                continue
            axis.set_minor_formatter(NullFormatter())
            if not isinstance(axis.get_major_locator(), FixedLocator):
                axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
                axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.10g}"))
    fig.text(0.005, 0.005, foot, fontsize=5.5, color="0.35", ha="left", va="bottom", wrap=True)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(path, dpi=120, metadata={"Description": foot, "Software": "spikeforge bench"})
    plt.close(fig)
    return path.name


def _scaling(r: dict, path: Path, foot: str) -> str:
    rows = r["rows"]
    x = [100 * row["measured_rate"] for row in rows]
    fig, (a, b, c) = _figure(3, f"Event-driven scaling vs input firing rate (P = {r['lanes']}, RTL cycles)")
    for ax, key, title in ((a, "model", "whole embedded model"), (b, "first_layer", f"one layer: {r['first_layer']}")):
        ax.plot(x, [row[key]["dense_cycles"] for row in rows], "s-", color="tab:red", label="dense baseline")
        ax.plot(x, [row[key]["cycles"] for row in rows], "o-", color="tab:blue", label="event-driven (measured)")
        ax.plot(x, [row[key]["bound_cycles"] for row in rows], "--", color="0.3", label="event-driven bound")
        ax.set(xlabel="input firing rate (%)", ylabel="cycles per inference", title=title, yscale="log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for key, label, style in (("model", "whole model", "o-"), ("first_layer", r["first_layer"], "^-")):
        c.plot(x, [row[key]["speedup"] for row in rows], style, label=label)
    c.axvline(100 * r["digits_input_rate"], color="0.5", ls=":", label="digits test images' rate")
    c.set(xlabel="input firing rate (%)", ylabel="dense cycles / event-driven cycles", title="speed-up over dense",
          ylim=(0, None))
    c.grid(alpha=0.3)
    c.legend(fontsize=8)
    return _save(fig, path, foot)


def _utilisation(r: dict, path: Path, foot: str) -> str:
    layers = [row for row in r["layers"] if row["bound_cycles"]]
    names = [row["name"] for row in layers]
    fig, (a, b) = _figure(2, f"Per-layer cycles vs the event-driven bound (P = {r['lanes']}, "
                             f"{r['event_driven']['images']} digits images)")
    ys = range(len(layers))
    a.barh([y + 0.2 for y in ys], [row["cycles"] for row in layers], 0.4, label="measured", color="tab:blue")
    a.barh([y - 0.2 for y in ys], [row["bound_cycles"] for row in layers], 0.4, label="bound", color="0.6")
    a.set_yticks(list(ys), names, fontsize=7)
    a.invert_yaxis()
    a.set(xlabel="cycles per inference")
    a.legend(fontsize=8)
    b.barh(list(ys), [row["utilization"] for row in layers], color="tab:green")
    b.axvline(r["goal_utilization"], color="tab:red", ls="--", label=f"goal {r['goal_utilization']:.2f}")
    b.axvline(r["event_driven"]["utilization"], color="0.3", ls=":",
              label=f"overall {r['event_driven']['utilization']:.3f}")
    b.set_yticks(list(ys), names, fontsize=7)
    b.invert_yaxis()
    b.set(xlabel="utilisation = SOPs / (P x cycles)", xlim=(0, 1.05))
    b.legend(fontsize=8)
    return _save(fig, path, foot)


def _attention(r: dict, path: Path, foot: str) -> str:
    fig, (a, b) = _figure(2, f"Linear attention: SDSAUnit vs vanilla Q K^T V on P = {r['lanes']} lanes")
    for ax, rows, key, label in ((a, r["vs_tokens"], "tokens", f"tokens N (C = {r['fixed_channels']})"),
                                 (b, r["vs_channels"], "channels", f"channels C (N = {r['fixed_tokens']})")):
        x = [row[key] for row in rows]
        ax.plot(x, [row["cycles"] for row in rows], "o-", label="SDSAUnit (measured)")
        ax.plot(x, [row["model_cycles"] for row in rows], "--", color="0.4", label="(2N + 1) ceil(C / P)")
        ax.plot(x, [row["vanilla_cycles"] for row in rows], "s-", color="tab:red",
                label="vanilla Q K^T V, 2 N^2 C / P MACs (model)")
        ax.set(xlabel=label, ylabel="cycles per time step", xscale="log", yscale="log")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    return _save(fig, path, foot)


def _lanes(r: dict, path: Path, foot: str) -> str:
    rows = r["rows"]
    fig, (a, b, c) = _figure(3, f"Lanes sweep (embedded model, {r['images']} digits images; ECP5 synth_ecp5)")
    p = [row["lanes"] for row in rows]
    a.plot(p, [row["cycles_per_inference"] for row in rows], "o-", label="measured")
    a.plot(p, [row["bound_cycles"] for row in rows], "--", color="0.4", label="bound")
    a.set(xlabel="lanes P", ylabel="cycles per inference", xscale="log", yscale="log")
    a.legend(fontsize=8)
    syn = [row for row in rows if "lut" in row]
    ps = [row["lanes"] for row in syn]
    for key, label in (("lut", "LUT4 (+2 per CCU2C)"), ("ff", "FF")):
        b.plot(ps, [row[key] for row in syn], "o-", label=label)
    b2 = b.twinx()
    b2.plot(ps, [row["bram"] for row in syn], "s--", color="tab:green", label="DP16KD")
    b2.set_ylabel("DP16KD block RAMs")
    b.set(xlabel="lanes P", ylabel="cells", xscale="log")
    b.legend(fontsize=8, loc="upper left")
    b2.legend(fontsize=8, loc="lower right")
    c.plot(ps, [row["sops_per_cycle_per_klut"] for row in syn], "o-", color="tab:purple")
    c.set(xlabel="lanes P", ylabel="SOPs per cycle per kLUT", xscale="log")
    for ax in (a, b, c):
        ax.grid(alpha=0.3)
        ax.set_xticks(p, [str(v) for v in p])
    return _save(fig, path, foot)


def _alternatives(r: dict, path: Path, foot: str) -> str:
    labels, values, colors = [], [], []
    for row in r["cpu"]:
        labels += [f"CPU float, batch {row['batch']}", f"CPU golden, batch {row['batch']}"]
        values += [row["float_s_per_image"], row["golden_s_per_image"]]
        colors += ["tab:orange", "tab:brown"]
    for row in r["boards"]:
        if row.get("latency_s"):
            labels.append(f"{row['board']} P={row['lanes']} @ {row['fmax_mhz']:.1f} MHz Fmax, compute only")
            values.append(row["latency_s"])
            colors.append("tab:blue")
    fig, (a,) = _figure(1, f"Latency per image: CPU (PyTorch) vs the accelerator projected from build reports\n"
                           f"energy estimate {r['energy']['energy_nj']:.1f} nJ per inference "
                           f"(E_AC {r['energy']['e_ac_pj']} pJ, E_MAC {r['energy']['e_mac_pj']} pJ)", width=9)
    a.barh(range(len(values)), [v * 1e6 for v in values], color=colors)
    a.set_yticks(range(len(values)), labels, fontsize=8)
    a.invert_yaxis()
    a.set(xlabel="microseconds per image", xscale="log")
    a.grid(alpha=0.3, axis="x")
    return _save(fig, path, foot)


def _simulation(r: dict, path: Path, foot: str) -> str:
    sims = {k: v for k, v in r["simulators"].items() if v.get("cycles_per_second")}
    fig, (a, b) = _figure(2, f"RTL simulation speed, whole accelerator (P = {r['lanes']})")
    bars = a.bar(list(sims), [v["cycles_per_second"] for v in sims.values()], color="tab:blue")
    a.bar_label(bars, fmt="{:,.0f}")
    a.set(ylabel="simulated cycles per second", yscale="log")
    bars = b.bar(list(sims), [v["images_per_second"] for v in sims.values()], color="tab:green")
    b.bar_label(bars, fmt="{:.3g}")
    b.set(ylabel="images per second (spikeforge sim, end to end)", yscale="log")
    for ax in (a, b):
        ax.grid(alpha=0.3, axis="y")
    return _save(fig, path, foot)


_FIGURES = {"scaling": _scaling, "utilisation": _utilisation, "attention": _attention, "lanes": _lanes,
            "alternatives": _alternatives, "simulation": _simulation}


def write_figures(report: dict, out: Path, foot: str) -> dict[str, str]:
    """Write ``out/<section>.png`` for each section in ``report``; returns ``{section: file name}``."""
    return {name: draw(report[name], Path(out) / f"{name}.png", foot)
            for name, draw in _FIGURES.items() if name in report}

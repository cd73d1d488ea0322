"""``report.md`` of ``spikeforge bench``: the headline figures, one table per section, the figures."""

from __future__ import annotations

from .machine import versions_line

__all__ = ["report_markdown", "headlines"]


def _f(v, fmt: str = ",.0f", none: str = "-") -> str:
    return none if v is None else format(v, fmt)


def _us(seconds) -> str:
    return "-" if seconds is None else f"{seconds * 1e6:,.1f}"


def headlines(report: dict) -> list[str]:
    """The numbers a reader wants first, from whichever sections ran."""
    out = [f"**failed**: {f} (see the section)" for f in report.get("failures", [])]
    u = report.get("utilisation")
    if u:
        e = u["event_driven"]
        out.append(f"utilisation {e['utilization']:.3f} overall (goal {u['goal_utilization']:.2f}; "
                   f"{e['bound_utilization']:.3f} if every layer ran at its bound), "
                   f"{e['cycles_over_bound']:.3f} x the event-driven bound, P = {u['lanes']}, {e['images']} images")
        out.append(f"speed-up over the dense baseline at the digits' firing rate (input {u['input_firing_rate']:.1%}, "
                   f"internal {u['internal_firing_rate']:.1%}): {u['speedup_over_dense']:.2f} x "
                   f"on {u['speedup_images']} images")
    s = report.get("scaling")
    if s:
        lo, hi = s["rows"][0], s["rows"][-1]
        out.append(f"whole-model speed-up over dense: {lo['model']['speedup']:.2f} x at {lo['measured_rate']:.0%} input "
                   f"firing, {hi['model']['speedup']:.2f} x at {hi['measured_rate']:.0%}")
    a = report.get("alternatives")
    if a:
        cpu1 = next(c for c in a["cpu"] if c["batch"] == 1)
        for b in a["boards"]:
            if b.get("latency_s"):
                out.append(f"{b['board']} (P = {b['lanes']}, Fmax {b['fmax_mhz']:.2f} MHz): {_us(b['latency_s'])} us "
                           f"per image projected (compute only, host link not included) vs CPU float batch 1 "
                           f"{_us(cpu1['float_s_per_image'])} us ({cpu1['float_s_per_image'] / b['latency_s']:.1f} x)")
        out.append(f"energy estimate {a['energy']['energy_nj']:.2f} nJ per inference "
                   f"({a['energy']['sops']:,.0f} SOPs, {a['energy']['macs']:,.0f} MACs)")
    t = report.get("attention")
    if t:
        out.append(f"SDSA: {t['fit']['cycles_per_token']:.2f} cycles per token (C = {t['fixed_channels']}), "
                   f"{t['fit']['cycles_per_channel']:.2f} per channel (N = {t['fixed_tokens']}); "
                   f"a vanilla Q K^T V engine on the same lanes (cost model) needs "
                   f"{t['vs_tokens'][-1]['vanilla_cycles'] / t['vs_tokens'][-1]['cycles']:.0f} x the cycles at "
                   f"N = {t['vs_tokens'][-1]['tokens']}")
    return out


def _scaling(s: dict) -> list[str]:
    lines = [f"Synthetic inputs with exactly the given fraction of set pixel bit-plane bits, {s['rows'][0]['images']} "
             f"images per rate, P = {s['lanes']}; the digits test images' input rate is {s['digits_input_rate']:.1%}. "
             f"\"internal\" is the golden model's mean LIF firing rate on the same inputs.", "",
             "| input rate | internal rate | model cycles | bound | cycles / bound | dense cycles | speed-up "
             f"| {s['first_layer']} cycles | bound | dense | speed-up |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in s["rows"]:
        m, f = r["model"], r["first_layer"]
        lines.append(f"| {r['measured_rate']:.1%} | {r['internal_firing_rate']:.1%} | {m['cycles']:,.0f} "
                     f"| {m['bound_cycles']:,.0f} | {m['cycles'] / m['bound_cycles']:.3f} | {m['dense_cycles']:,.0f} "
                     f"| {m['speedup']:.2f} | {f['cycles']:,.0f} | {f['bound_cycles']:,.0f} | {f['dense_cycles']:,.0f} "
                     f"| {f['speedup']:.2f} |")
    return lines


def _utilisation(u: dict) -> list[str]:
    e, d = u["event_driven"], u["dense"]
    lines = [f"{e['images']} digits test images, P = {u['lanes']}: accuracy {e['accuracy']:.4f}, "
             f"{e['cycles_per_inference']:,.0f} cycles per inference against a bound of {e['bound_cycles']:,.0f} "
             f"({e['cycles_over_bound']:.3f} x), utilisation **{e['utilization']:.3f}** (goal {u['goal_utilization']:.2f}; "
             f"at the bound it would be {e['bound_utilization']:.3f}, as layers with fewer channels than lanes leave "
             "lanes idle). "
             f"Dense baseline on {u['speedup_images']} of them: {d['cycles_per_inference']:,.0f} cycles, "
             f"**{u['speedup_over_dense']:.2f} x** the event-driven cycles on the same images.", "",
             "| step | cycles | bound | cycles / bound | events | SOPs | utilisation |", "|---|---|---|---|---|---|---|"]
    for r in u["layers"]:
        lines.append(f"| {r['name']} | {r['cycles']:,.0f} | {r['bound_cycles']:,.0f} | {_f(r['cycles_over_bound'], '.3f')} "
                     f"| {r['events']:,.0f} | {r['sops']:,.0f} | {_f(r['utilization'], '.3f')} |")
    return lines


def _attention(t: dict) -> list[str]:
    lines = [f"SDSAUnit at P = {t['lanes']} in Amaranth's simulator, one time step, Q/K/V firing {t['rate']:.0%}, "
             "every output beat checked against `golden.sdsa`. Vanilla = `ceil(2 N^2 C / P)` MAC cycles "
             "(a cost model of a MAC array on the same lanes, softmax not counted).", "",
             "| N | C | SDSA cycles | (2N + 1) ceil(C/P) | vanilla Q K^T V cycles | vanilla / SDSA |",
             "|---|---|---|---|---|---|"]
    for r in t["vs_tokens"] + t["vs_channels"] + [t["embedded"]]:
        lines.append(f"| {r['tokens']} | {r['channels']} | {r['cycles']:,} | {r['model_cycles']:,} "
                     f"| {r['vanilla_cycles']:,} | {r['vanilla_cycles'] / r['cycles']:.1f} |")
    lines += ["", f"Least-squares slopes: {t['fit']['cycles_per_token']:.3f} cycles per token, "
                  f"{t['fit']['cycles_per_channel']:.3f} cycles per channel. The last row is the embedded model's "
                  "attention shape."]
    return lines


def _lanes(l: dict) -> list[str]:
    lines = [f"{l['images']} digits test images per P; ECP5 cells of the accelerator alone (no host link) from "
             "Yosys `synth_ecp5`; LUT = LUT4 + 2 x CCU2C.", "",
             "| P | cycles / inference | bound | utilisation | SOPs / cycle | LUT | FF | DP16KD | LUT RAM (DPR16X4) "
             "| MULT18X18D | SOPs / cycle / kLUT | synthesis s |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in l["rows"]:
        lines.append(f"| {r['lanes']} | {r['cycles_per_inference']:,.0f} | {r['bound_cycles']:,.0f} "
                     f"| {r['utilization']:.3f} | {r['sops_per_cycle']:.2f} | {_f(r.get('lut'))} | {_f(r.get('ff'))} "
                     f"| {_f(r.get('bram'))} | {_f(r.get('lutram'))} | {_f(r.get('dsp'))} "
                     f"| {_f(r.get('sops_per_cycle_per_klut'), '.3f')} | {_f(r.get('synth_seconds'), '.0f')} |")
    for r in l["rows"]:
        if r.get("synth_error"):
            lines += ["", f"**synth_ecp5 of P = {r['lanes']} failed**: `{r['synth_error'].splitlines()[0][:160]}` "
                          "(report.json has Yosys' whole message)"]
    if len(l["synthesised"]) < len(l["rows"]):
        lines += ["", f"Synthesised in this mode: P = {', '.join(map(str, l['synthesised']))} (the full run does all)."]
    return lines


def _alternatives(a: dict) -> list[str]:
    lines = ["| run | images | s / image | us / image | GOP/s |", "|---|---|---|---|---|"]
    for c in a["cpu"]:
        lines.append(f"| CPU PyTorch float model, batch {c['batch']} ({c['threads']} threads) | {c['batch']} "
                     f"| {c['float_s_per_image']:.6f} | {_us(c['float_s_per_image'])} | {c['float_gops']:.4f} |")
        lines.append(f"| CPU golden model (integer), batch {c['batch']} | {c['batch']} "
                     f"| {c['golden_s_per_image']:.6f} | {_us(c['golden_s_per_image'])} | {c['golden_gops']:.4f} |")
    for b in a["boards"]:
        if b.get("latency_s"):
            lines.append(f"| accelerator on {b['board']} (its build's hardware, P = {b['lanes']}), "
                         f"{b['cycles_per_inference']:,.0f} cycles at Fmax {b['fmax_mhz']:.2f} MHz, compute only "
                         f"| {b['images']} | {b['latency_s']:.6f} | {_us(b['latency_s'])} | {b['gops']:.3f} |")
            if b.get("latency_at_clock_s"):
                lines.append(f"| the same at the build's clock {b['clock_mhz']:.2f} MHz | {b['images']} "
                             f"| {b['latency_at_clock_s']:.6f} | {_us(b['latency_at_clock_s'])} | - |")
    lines += ["", "GOP/s: synaptic operations per image (the golden trace's SOPs plus the first layer's MACs, "
                  "counted on exactly the images of that row) divided by the time per image. The CPU float model "
                  "does the same network with multiply-accumulates, so its figure is SOP-equivalent work per second. "
                  "The accelerator rows are compute only: the host link's transfer time is not included "
                  "(`spikeforge run` measures it).", "",
              "Build reports used (projected latency = cycles per inference measured in this run on the hardware in "
              "the build's manifest / the build's post-route Fmax, the slowest clock domain's):", ""]
    if not a["boards"]:
        lines.append("- none found: run `spikeforge build --board ulx3s-85f --out build/reports/build-ulx3s-85f` "
                     "or pass `--builds DIR`.")
    for b in a["boards"]:
        lines.append(f"- `{b['report']}`: {b['board']} ({b['device']}), status {b['status']}, Fmax "
                     f"{_f(b['fmax_mhz'], '.2f')} MHz, clock {_f(b['clock_mhz'], '.2f')} MHz, timing met "
                     f"{b['timing_met']}" + (f"; {b['note']}" if b.get("note") else ""))
    e = a["energy"]
    lines += ["", f"Energy estimate (45 nm figures of the paper: E_AC = {e['e_ac_pj']} pJ per SOP, "
                  f"E_MAC = {e['e_mac_pj']} pJ per MAC of the real-valued first layer), mean over {e['images']} "
                  f"digits images: {e['sops']:,.0f} SOPs + {e['macs']:,.0f} MACs = **{e['energy_nj']:.2f} nJ** "
                  "per inference. An estimate of the arithmetic, not a measured FPGA power."]
    return lines


def _simulation(s: dict) -> list[str]:
    lines = [f"The whole accelerator at P = {s['lanes']} through cocotb, built in a fresh folder. Cycles per second = "
             "clock cycles simulated in the image loop / its wall time, both taken inside the simulation (no start-up, "
             "no model load); the per-call overhead (Verilog regeneration, simulator start, loading the model) is the "
             "rest of the call's time. Images per second are end to end, overhead included.", "",
             "| simulator | build s | images | run s | images / s | cycles / s | per-call overhead s |",
             "|---|---|---|---|---|---|---|"]
    for name, r in s["simulators"].items():
        if "error" in r:
            lines.append(f"| {name} | not run: {r['error']} | | | | | |")
            continue
        lines.append(f"| {name} | {r['build_s']:.1f} | {r['images']} | {r['run_s']:.1f} | {r['images_per_second']:.2f} "
                     f"| {_f(r['cycles_per_second'])} | {_f(r['overhead_s'], '.1f')} |")
    return lines


_SECTIONS = (("scaling", "Event-driven scaling vs firing rate", _scaling),
             ("utilisation", "Utilisation per layer", _utilisation),
             ("attention", "Linear attention (SDSA) vs vanilla", _attention),
             ("lanes", "Lanes sweep", _lanes),
             ("alternatives", "Against the alternatives: CPU latency, projected board latency, energy", _alternatives),
             ("simulation", "Simulation speed", _simulation))


def report_markdown(report: dict) -> str:
    m = report["machine"]
    lines = [f"# SpikeForge performance report ({report['mode']} run)", "",
             f"Machine: {m['host']}, {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, {m['os']}.", "",
             f"Versions: {versions_line(m)}.", "",
             f"Every number below was measured in this invocation ({report['total_seconds']:.0f} s in all), except "
             "Fmax, which comes from the build reports named in the alternatives section. "
             "`docs/performance.md` explains the metrics and the bound.", "", "## Headlines", ""]
    lines += [f"- {h}" for h in headlines(report)]
    for key, title, fn in _SECTIONS:
        if key not in report:
            continue
        lines += ["", f"## {title}", "", f"![{key}]({report['figures'][key]})", ""] + fn(report[key])
        lines.append(f"\n({report['section_seconds'][key]:.0f} s)")
    return "\n".join(lines) + "\n"

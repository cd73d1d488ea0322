"""Board clocking: PLL parameters for iCE40 and ECP5, and the ``sync`` domain a board build runs in.

``ice40_pll(f_in, f_out)`` and ``ecp5_pll(f_in, f_out)`` search the divider settings of the
SB_PLL40 and EHXPLLL primitives (the same searches as icestorm's ``icepll`` and Trellis'
``ecppll``) within the datasheet ranges and return the achieved frequency, which may differ from the
request. :class:`PLLClockDomain` instantiates the PLL on the board's oscillator and holds ``sync`` in
reset until the PLL reports lock (the reset is released synchronously).
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import ClockSignal, Const, Elaboratable, Instance, Module, Signal
from amaranth.lib import io
from amaranth.lib.cdc import ResetSynchronizer

__all__ = ["PLLSettings", "ice40_pll", "ecp5_pll", "PLLClockDomain", "ClockError"]


class ClockError(ValueError):
    """No PLL setting reaches the requested frequency closely enough."""


@dataclass(frozen=True)
class PLLSettings:
    """One PLL configuration: the primitive's parameters and the frequencies they give (Hz)."""

    family: str
    f_in: float
    f_out: float
    f_vco: float
    params: dict


def _check(f_in: float, f_out: float, best: PLLSettings | None, family: str, tolerance: float) -> PLLSettings:
    if best is None or abs(best.f_out - f_out) > tolerance * f_out:
        got = f"; the closest is {best.f_out / 1e6:.3f} MHz" if best else ""
        raise ClockError(f"{family} PLL: cannot make {f_out / 1e6:.3f} MHz from {f_in / 1e6:.3f} MHz "
                         f"within {100 * tolerance:.0f} %{got}")
    return best


def ice40_pll(f_in: float, f_out: float, tolerance: float = 0.02) -> PLLSettings:
    """SB_PLL40 settings (simple feedback) for ``f_out`` from ``f_in``: PFD 10..133 MHz, VCO 533..1066
    MHz, output 16..275 MHz; ``FILTER_RANGE`` from the PFD frequency as ``icepll`` chooses it."""
    if not 16e6 <= f_out <= 275e6:
        raise ClockError(f"iCE40 PLL: output {f_out / 1e6:.3f} MHz is outside 16..275 MHz")
    best = None
    for divr in range(16):
        f_pfd = f_in / (divr + 1)
        if not 10e6 <= f_pfd <= 133e6:
            continue
        for divf in range(128):
            f_vco = f_pfd * (divf + 1)
            if not 533e6 <= f_vco <= 1066e6:
                continue
            for divq in range(1, 7):
                f = f_vco / (1 << divq)
                if not 16e6 <= f <= 275e6:
                    continue
                if best is None or abs(f - f_out) < abs(best.f_out - f_out):
                    filt = next(i for i, lim in enumerate((17e6, 26e6, 44e6, 66e6, 101e6, float("inf")), 1)
                                if f_pfd < lim)
                    best = PLLSettings("ice40", f_in, f, f_vco,
                                       {"DIVR": divr, "DIVF": divf, "DIVQ": divq, "FILTER_RANGE": filt})
    return _check(f_in, f_out, best, "iCE40", tolerance)


def ecp5_pll(f_in: float, f_out: float, tolerance: float = 0.02) -> PLLSettings:
    """EHXPLLL settings (CLKOP feedback) for ``f_out`` from ``f_in``: PFD 3.125..400 MHz, VCO
    400..800 MHz, output 3.125..400 MHz (Trellis ``ecppll``'s search)."""
    if not 3.125e6 <= f_out <= 400e6:
        raise ClockError(f"ECP5 PLL: output {f_out / 1e6:.3f} MHz is outside 3.125..400 MHz")
    best = None
    for clki_div in range(1, 129):
        f_pfd = f_in / clki_div
        if not 3.125e6 <= f_pfd <= 400e6:
            continue
        for clkfb_div in range(1, 81):
            f = f_pfd * clkfb_div
            if not 3.125e6 <= f <= 400e6:
                continue
            for clkop_div in range(1, 129):
                f_vco = f * clkop_div
                if 400e6 <= f_vco <= 800e6:
                    if best is None or abs(f - f_out) < abs(best.f_out - f_out):
                        best = PLLSettings("ecp5", f_in, f, f_vco,
                                           {"CLKI_DIV": clki_div, "CLKFB_DIV": clkfb_div, "CLKOP_DIV": clkop_div,
                                            "CLKOP_CPHASE": clkop_div - 1})
                    break
    return _check(f_in, f_out, best, "ECP5", tolerance)


class PLLClockDomain(Elaboratable):
    """Drives the ``sync`` domain (defined by the parent) at ``settings.f_out`` from the platform's
    default clock through the family's PLL; ``sync`` stays in reset until the PLL locks. nextpnr
    derives the output's clock constraint from the oscillator pin's."""

    def __init__(self, settings: PLLSettings):
        self.settings = settings

    def elaborate(self, platform):
        m = Module()
        s = self.settings
        lock = Signal()
        clk_in = platform.request(platform.default_clk, dir="-")
        if s.family == "ice40":
            # The oscillator pin of the iCEBreaker is a PLL pad: SB_PLL40_PAD takes the pad itself.
            m.submodules.pll = Instance(
                "SB_PLL40_PAD",
                p_FEEDBACK_PATH="SIMPLE", p_PLLOUT_SELECT="GENCLK",
                **{f"p_{k}": v for k, v in s.params.items()},
                i_PACKAGEPIN=clk_in.io, i_RESETB=Const(1), i_BYPASS=Const(0),
                o_PLLOUTGLOBAL=ClockSignal("sync"), o_LOCK=lock)
        elif s.family == "ecp5":
            m.submodules.clk_buf = buf = io.Buffer("i", clk_in)
            m.submodules.pll = Instance(
                "EHXPLLL",
                a_FREQUENCY_PIN_CLKI=f"{s.f_in / 1e6:g}", a_FREQUENCY_PIN_CLKOP=f"{s.f_out / 1e6:g}",
                a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1", a_MFG_GMCREF_SEL="2",
                p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
                p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_OUTDIVIDER_MUXB="DIVB",
                p_OUTDIVIDER_MUXC="DIVC", p_OUTDIVIDER_MUXD="DIVD", p_CLKOP_ENABLE="ENABLED",
                p_CLKOP_FPHASE=0, p_FEEDBK_PATH="CLKOP",
                **{f"p_{k}": v for k, v in s.params.items()},
                i_CLKI=buf.i, i_CLKFB=ClockSignal("sync"), i_RST=Const(0), i_STDBY=Const(0),
                i_PHASESEL0=Const(0), i_PHASESEL1=Const(0), i_PHASEDIR=Const(1), i_PHASESTEP=Const(1),
                i_PHASELOADREG=Const(1), i_PLLWAKESYNC=Const(0), i_ENCLKOP=Const(0),
                o_CLKOP=ClockSignal("sync"), o_LOCK=lock)
        else:
            raise ValueError(f"PLLClockDomain: no PLL for family {s.family!r}")
        m.submodules.reset_sync = ResetSynchronizer(~lock, domain="sync")
        return m

